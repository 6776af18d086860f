"""Distributed training with the CB losses: tf.distribute and JAX.

- `MirroredStrategy` on two logical CPU devices: one `fit` step of a small
  model with each CB loss on a fixed global batch gives the weights and the
  reported loss of the same step without a strategy.
- `MultiWorkerMirroredStrategy`, two worker processes on 127.0.0.1: the
  `examples/multi_worker.py` launcher, with `CBFocalLoss` and `ClassCounter`;
  both workers end with identical weights, each counted the global counts,
  and the result equals single-process training.
- JAX: `keras.distribution.DataParallel` over two CPU devices gives the
  single-device step.
- `reduction="mean_with_sample_weight"`: the CB loss gives what Keras' own
  `SparseCategoricalCrossentropy` gives with `sample_weight=w[y]`, on each
  replica setup. Under `MirroredStrategy` both divide each replica's sum by
  that replica's sum of weights and average the replicas (as PyTorch DDP
  averages the per-replica weighted means); JAX's `DataParallel` computes
  the global weighted mean.

Devices must be configured before TensorFlow or JAX initialises. The
TensorFlow scenario (`_child_mirrored` below; this module imports nothing
heavy at the top) runs in the session's child process with two logical CPUs
(tests/children.py), bounded by a timeout. The JAX one runs in the JAX run
of tests/backend_runs.py, which starts with two CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=2`); alone:
`KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2
python -m pytest tests/test_distributed.py`.
"""

import json
import os
from pathlib import Path

import children
import numpy as np
import pytest
import reference

CHILD_TIMEOUT_S = 300  # a guard against hangs; the run takes well under 60 s

pytestmark = pytest.mark.slow

COUNTS = [300, 60, 12, 3]
C = len(COUNTS)
FEATURES = 6
GLOBAL_BATCH = 16
LEARNING_RATE = 0.5

# name: (loss kind for `backend_utils.make_loss`, its keyword arguments,
# label form, final activation, with sample weights)
CONFIGS = {
    "softmax_sparse": (
        "softmax",
        {"beta": 0.99, "from_logits": True},
        "sparse",
        None,
        False,
    ),
    "softmax_probs_sample_weight": (
        "softmax",
        {"beta": 0.9999},
        "onehot",
        "softmax",
        True,
    ),
    "sigmoid_onehot": (
        "sigmoid",
        {"beta": 0.999, "from_logits": True},
        "onehot",
        None,
        False,
    ),
    "focal_sparse": (
        "focal",
        {"beta": 0.999, "gamma": 2.0, "from_logits": True},
        "sparse",
        None,
        False,
    ),
    "focal_class_multihot": (
        "focal",
        {"beta": 0.99, "gamma": 0.5, "from_logits": True, "weighting": "class"},
        "multihot",
        None,
        False,
    ),
    "focal_probs_segmentation": (
        "focal",
        {"beta": 0.999, "gamma": 1.0},
        "sparse_map",
        "sigmoid",
        False,
    ),
}


# --------------------------------------------------------------------------
# Shared by the children and the parent: data, initial weights, one step.
# --------------------------------------------------------------------------


def _data(form):
    rng = np.random.default_rng(0)
    spatial = (3, 3) if form == "sparse_map" else ()
    x = rng.normal(size=(GLOBAL_BATCH, *spatial, FEATURES)).astype("f4")
    ids = rng.integers(0, C, (GLOBAL_BATCH, *spatial))
    if form in ("sparse", "sparse_map"):
        y = ids.astype("int32")
    elif form == "onehot":
        y = np.eye(C, dtype="f4")[ids]
    else:  # multihot, with an all-negative row
        y = (rng.random((GLOBAL_BATCH, C)) < 0.4).astype("f4")
        y[0] = 0.0
    sample_weight = rng.uniform(0.2, 2.0, GLOBAL_BATCH).astype("f4")
    return x, y, sample_weight


def _initial_weights():
    rng = np.random.default_rng(1)
    return [
        rng.normal(0, 0.5, (FEATURES, C)).astype("f4"),
        rng.normal(0, 0.1, (C,)).astype("f4"),
    ]


def _one_step(name, scope):
    """One `fit` step from fixed weights; returns a dict.

    `scope()` returns the context to build, compile and evaluate in.
    """
    import keras
    from backend_utils import make_loss

    kind, kwargs, form, activation, weighted = CONFIGS[name]
    x, y, sample_weight = _data(form)
    with scope():
        model = keras.Sequential(
            [
                keras.Input(x.shape[1:]),
                keras.layers.Dense(C, activation=activation),
            ]
        )
        model.set_weights(_initial_weights())
        loss = make_loss(kind, COUNTS, **kwargs)
        model.compile(keras.optimizers.SGD(LEARNING_RATE), loss=loss)
    history = model.fit(
        x,
        y,
        sample_weight=sample_weight if weighted else None,
        batch_size=GLOBAL_BATCH,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    with scope():
        evaluated = model.evaluate(
            x,
            y,
            sample_weight=sample_weight if weighted else None,
            batch_size=GLOBAL_BATCH,
            verbose=0,
        )
    return {
        "loss": float(history.history["loss"][0]),
        "evaluate": float(evaluated),
        "weights": [np.asarray(w).tolist() for w in model.get_weights()],
        "copies": _copies(model.weights[0]),
    }


def _copies(variable):
    """On how many devices the variable lives (1 without a distribution)."""
    value = variable.value
    if hasattr(value, "sharding"):  # JAX array
        return len(value.sharding.device_set)
    return len(getattr(value, "values", [value]))  # tf MirroredVariable


def _scalar_mean_control(scope):
    """A loss whose `call()` reduces itself: what the test must catch.

    Returns the loss reported by a one-step `fit` inside `scope()`.
    """
    import keras

    class ScalarMeanLoss(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return keras.ops.mean(
                keras.losses.sparse_categorical_crossentropy(
                    y_true, y_pred, from_logits=True
                )
            )

    x, y, _ = _data("sparse")
    with scope():
        model = keras.Sequential(
            [keras.Input(x.shape[1:]), keras.layers.Dense(C)]
        )
        model.set_weights(_initial_weights())
        model.compile(
            keras.optimizers.SGD(LEARNING_RATE), loss=ScalarMeanLoss()
        )
    history = model.fit(x, y, batch_size=GLOBAL_BATCH, verbose=0)
    return float(history.history["loss"][0])


WEIGHTED_BETA = 0.99


def _weighted_mean_step(scope, builtin):
    """One `fit` step with `reduction="mean_with_sample_weight"`.

    `builtin`: Keras' `SparseCategoricalCrossentropy` with the class weights
    passed as `sample_weight=w[y]`; else `CBSoftmaxLoss`.
    """
    import keras

    from keras_cbloss import CBSoftmaxLoss

    x, y, _ = _data("sparse")
    weights = reference.cb_weights(COUNTS, WEIGHTED_BETA)
    sample_weight = weights[y].astype("f4") if builtin else None
    with scope():
        model = keras.Sequential(
            [keras.Input(x.shape[1:]), keras.layers.Dense(C)]
        )
        model.set_weights(_initial_weights())
        if builtin:
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"
            )
        else:
            loss = CBSoftmaxLoss(
                COUNTS,
                WEIGHTED_BETA,
                from_logits=True,
                reduction="mean_with_sample_weight",
            )
        model.compile(keras.optimizers.SGD(LEARNING_RATE), loss=loss)
    history = model.fit(
        x,
        y,
        sample_weight=sample_weight,
        batch_size=GLOBAL_BATCH,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    with scope():
        evaluated = model.evaluate(
            x,
            y,
            sample_weight=sample_weight,
            batch_size=GLOBAL_BATCH,
            verbose=0,
        )
    return {
        "loss": float(history.history["loss"][0]),
        "evaluate": float(evaluated),
        "weights": [np.asarray(w).tolist() for w in model.get_weights()],
    }


def _weighted_mean_runs(distributed_scope):
    import contextlib

    return {
        f"{where}_{which}": _weighted_mean_step(scope, which == "keras")
        for where, scope in (
            ("single", contextlib.nullcontext),
            ("distributed", distributed_scope),
        )
        for which in ("package", "keras")
    }


def _child_mirrored(strategy):
    """The runs with `strategy`, a `MirroredStrategy` over two logical CPUs
    (tests/children.py); returns a JSON-able dict."""
    import contextlib

    from keras_cbloss import _kernels

    # New kernel clusters: the traces counted below are this run's own
    # (the child may have run other scripts).
    _kernels._tf_cluster.cache_clear()
    results = {"replicas": strategy.num_replicas_in_sync}
    results["control"] = {
        "single": _scalar_mean_control(contextlib.nullcontext),
        "distributed": _scalar_mean_control(strategy.scope),
    }
    for name in CONFIGS:
        # The strategy's step runs first, so that the kernel's XLA cluster
        # (one per target form and gamma) is traced there if it is used.
        distributed = _one_step(name, strategy.scope)
        results[name] = {
            "distributed": distributed,
            "xla_cluster_traces": _cluster_traces(name),
            "single": _one_step(name, contextlib.nullcontext),
        }
    results["weighted_mean"] = _weighted_mean_runs(strategy.scope)
    return results


# The fused kernel's XLA cluster of each config with logits (TensorFlow):
# (target form, gamma, weighted), see `keras_cbloss._kernels._tf_cluster`.
CLUSTERS = {
    "sigmoid_onehot": ("soft", 0.0, False),
    "focal_sparse": ("ids", 2.0, False),
    "focal_class_multihot": ("soft", 0.5, True),
}


def _cluster_traces(name):
    from keras_cbloss import _kernels

    if name not in CLUSTERS:
        return None
    cluster = _kernels._tf_cluster(*CLUSTERS[name])
    return cluster.experimental_get_tracing_count()


def _jax_data_parallel():
    import contextlib

    import jax
    import keras

    devices = jax.devices("cpu")
    distribution = keras.distribution.DataParallel(devices=devices)
    results = {"replicas": len(devices)}
    for name in CONFIGS:
        results[name] = {
            "single": _one_step(name, contextlib.nullcontext),
            "distributed": _one_step(name, distribution.scope),
        }
    results["weighted_mean"] = _weighted_mean_runs(distribution.scope)
    return results


# --------------------------------------------------------------------------
# What the reported loss must be: the reference loss at the initial weights.
# --------------------------------------------------------------------------


def _reference_loss(name):
    kind, kwargs, form, activation, weighted = CONFIGS[name]
    x, y, sample_weight = _data(form)
    kernel, bias = _initial_weights()
    z = x.astype("f8") @ kernel + bias
    if activation == "softmax":
        e = np.exp(z - z.max(-1, keepdims=True))
        z = e / e.sum(-1, keepdims=True)
    elif activation == "sigmoid":
        z = 1 / (1 + np.exp(-z))
    weights = reference.cb_weights(COUNTS, kwargs["beta"])
    from_logits = kwargs.get("from_logits", False)
    per_sample = reference.loss_by_kind(
        kind,
        y,
        z,
        weights,
        from_logits,
        kwargs.get("gamma", 0.0),
        kwargs.get("weighting", "sample"),
    )
    if weighted:
        per_sample = per_sample * sample_weight
    return per_sample.mean()  # sum over the batch / batch size


def _check_same_step(run, name):
    single, distributed = run[name]["single"], run[name]["distributed"]
    for got, want in zip(distributed["weights"], single["weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the initial weights moved: the step did something
    assert not np.allclose(single["weights"][0], _initial_weights()[0])
    assert single["copies"] == 1 and distributed["copies"] == 2
    # the reported loss is the single-device one (no 1/replicas scaling),
    # and both are the class-balanced loss of the initial model
    np.testing.assert_allclose(distributed["loss"], single["loss"], rtol=1e-5)
    np.testing.assert_allclose(single["loss"], _reference_loss(name), rtol=1e-5)
    np.testing.assert_allclose(
        distributed["evaluate"], single["evaluate"], rtol=1e-5
    )


def _tensorflow_run_only():
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute: the TensorFlow run covers it")


@pytest.fixture(scope="module")
def mirrored_run():
    _tensorflow_run_only()
    return children.run(
        "tensorflow_two_cpus",
        "import test_distributed\n"
        "result = test_distributed._child_mirrored(strategy)",
        timeout=CHILD_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def jax_run():
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("runs in the JAX run of tests/backend_runs.py")
    import jax

    if len(jax.devices("cpu")) < 2:
        pytest.skip(
            "needs two CPU devices: "
            "XLA_FLAGS=--xla_force_host_platform_device_count=2"
        )
    return _jax_data_parallel()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_mirrored_strategy_step_equals_single_device(mirrored_run, name):
    assert mirrored_run["replicas"] == 2
    _check_same_step(mirrored_run, name)


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_mirrored_strategy_step_runs_the_kernel_as_an_xla_cluster(
    mirrored_run, name
):
    # Keras turns XLA off under tf.distribute; the fused kernel (value and
    # gradient) still runs as its own compiled cluster in each replica.
    assert mirrored_run[name]["xla_cluster_traces"] >= 1


def test_mirrored_setup_catches_a_loss_that_reduces_itself(mirrored_run):
    # Control: Keras does not scale a scalar that `call()` already reduced
    # by 1/replicas, but the gradients are summed over the replicas and the
    # reported loss is un-scaled: twice the loss (REFERENCE.md). The CB
    # losses above return per-sample values and give the single-device step.
    control = mirrored_run["control"]
    np.testing.assert_allclose(
        control["distributed"], 2 * control["single"], rtol=1e-5
    )


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_jax_data_parallel_step_equals_single_device(jax_run, name):
    assert jax_run["replicas"] == 2
    _check_same_step(jax_run, name)


def _weighted_means_at_the_initial_weights():
    """The global weighted mean, and the mean of the two replicas' weighted
    means (each replica takes half of the global batch, in order)."""
    x, y, _ = _data("sparse")
    kernel, bias = _initial_weights()
    z = x.astype("f8") @ kernel + bias
    w = reference.cb_weights(COUNTS, WEIGHTED_BETA)[y]
    ce = reference.softmax_loss(y, z, np.ones(C), True)
    half = GLOBAL_BATCH // 2
    per_replica = [
        (w[p] * ce[p]).sum() / w[p].sum()
        for p in (slice(0, half), slice(half, None))
    ]
    return (w * ce).sum() / w.sum(), float(np.mean(per_replica))


def _check_weighted_mean(run, distributed_is_global):
    runs = run["weighted_mean"]
    # The package's loss gives Keras' own weighted mean, step and weights.
    for where in ("single", "distributed"):
        package, builtin = runs[f"{where}_package"], runs[f"{where}_keras"]
        for key in ("loss", "evaluate"):
            np.testing.assert_allclose(package[key], builtin[key], rtol=1e-5)
        for got, want in zip(package["weights"], builtin["weights"]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    global_mean, replica_mean = _weighted_means_at_the_initial_weights()
    assert abs(global_mean - replica_mean) > 1e-3  # the two differ here
    np.testing.assert_allclose(
        runs["single_package"]["loss"], global_mean, rtol=1e-5
    )
    want = global_mean if distributed_is_global else replica_mean
    np.testing.assert_allclose(
        runs["distributed_package"]["loss"], want, rtol=1e-5
    )


def test_mirrored_weighted_mean_is_keras_per_replica_weighted_mean(
    mirrored_run,
):
    _check_weighted_mean(mirrored_run, distributed_is_global=False)


def test_jax_data_parallel_weighted_mean_is_the_global_one(jax_run):
    _check_weighted_mean(jax_run, distributed_is_global=True)


# --------------------------------------------------------------------------
# MultiWorkerMirroredStrategy: the shipped example, two local workers.
# --------------------------------------------------------------------------

MULTI_WORKER_ARGS = [
    "--workers",
    "2",
    "--classes",
    "4",
    "--n-max",
    "96",
    "--imbalance",
    "12",
    "--epochs",
    "1",
    "--steps-per-epoch",
    "3",
    "--global-batch-size",
    "16",
    "--beta",
    "0.999",
    "--gamma",
    "2.0",
    "--learning-rate",
    "0.2",
    "--timeout",
    "240",
]


def _example():
    import multi_worker  # examples/ is on the test path (pyproject.toml)

    return multi_worker


def test_multi_worker_example_workers_agree_and_count_globally(tmp_path):
    _tensorflow_run_only()
    example = _example()
    out = tmp_path / "run"
    argv = [*MULTI_WORKER_ARGS, "--output-dir", str(out)]
    # main() launches the workers and, whatever happens, stops them all
    # before it returns or raises (bounded by --timeout).
    summary = example.main(argv)

    args = example.parse_args(argv)
    x, y = example.make_data(
        args.classes, args.n_max, args.imbalance, args.seed
    )
    global_counts = np.bincount(y[: len(y) // 16 * 16], minlength=args.classes)
    assert 0 < len(y) % 16  # the pipeline drops a partial batch ...
    assert global_counts.sum() < len(y)  # ... whose labels are not counted
    assert summary["workers"] == 2 and summary["replicas_in_sync"] == 2
    assert summary["global_counts"] == global_counts.tolist()
    assert summary["counts_equal_global"] and summary["identical_weights"]
    workers = [
        json.loads((out / f"worker_{i}.json").read_text()) for i in range(2)
    ]
    for worker in workers:
        assert worker["num_workers"] == 2
        np.testing.assert_array_equal(worker["class_counts"], global_counts)
        np.testing.assert_allclose(
            worker["class_weights"],
            reference.cb_weights(global_counts, args.beta),
            rtol=1e-12,
        )
        assert np.isfinite(worker["history"]["loss"]).all()
    assert workers[0]["weights"] == workers[1]["weights"]

    # The same training in this process, without a strategy and with the
    # counts given up front: the same weights and losses.
    model = example.build_model(args.classes, args, class_counts=global_counts)
    history = example.train(
        model, example.make_dataset(x, y, args.global_batch_size), args
    )
    for got, want in zip(workers[0]["weights"], model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        workers[0]["history"]["loss"], history["loss"], rtol=1e-5
    )


def test_multi_worker_launcher_rejects_bad_arguments():
    example = _example()
    for argv in (
        ["--workers", "0"],
        ["--workers", "3", "--global-batch-size", "16"],
        ["--timeout", "0"],
    ):
        with pytest.raises(SystemExit):
            example.parse_args(argv)


def test_multi_worker_launcher_stops_every_worker_on_timeout(tmp_path):
    _tensorflow_run_only()
    example = _example()
    out = tmp_path / "timed_out_run"
    # One second is far too short to start TensorFlow: the launcher must
    # give up, stop both workers and say why.
    with pytest.raises(RuntimeError, match=r"did not finish within --timeout"):
        example.main(
            [*MULTI_WORKER_ARGS, "--timeout", "1", "--output-dir", str(out)]
        )
    assert not _processes_mentioning(str(out))  # no worker is left


def _processes_mentioning(text):
    """Pids of live processes whose command line contains `text` (Linux)."""
    proc = Path("/proc")
    if not proc.is_dir():
        pytest.skip("no /proc to look for leftover processes")
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # not a process, or it just ended
            continue
        if text.encode() in cmdline:
            pids.append(int(entry.name))
    return pids
