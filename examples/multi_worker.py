"""Multi-worker training with a class-balanced loss and `ClassCounter`.

Trains a small classifier on synthetic long-tailed data with
`tf.distribute.MultiWorkerMirroredStrategy`, `CBFocalLoss` built without
counts, and `ClassCounter`, which counts the training labels on every
worker when `fit` starts. Then checks what matters in a cluster:

- every worker ends with the same weights (the gradients were all-reduced);
- every worker's loss holds the counts of the WHOLE training set (not of
  its shard), so all workers use the same class weights.

Two modes:

    # Launcher (default): starts --workers processes on 127.0.0.1 with free
    # ports, a TF_CONFIG each, waits at most --timeout seconds, kills them
    # all at the end, and compares their results.
    python examples/multi_worker.py --workers 2 --epochs 2

    # One worker of a real cluster: TF_CONFIG comes from the environment,
    # as on any multi-worker TensorFlow job (run once per machine).
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/multi_worker.py --worker --output-dir shared/run1

Each worker writes `worker_<index>.json` (counts, class weights, final
weights, history) to `--output-dir`, and the launcher `summary.json`.

Two workarounds for Keras 3 under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585, tensorflow/tensorflow#72388; seen on Keras 3.15
with TensorFlow 2.21), both in `build_model` and marked there:

1. `fit` on a model created inside the strategy scope first all-reduces a
   data batch with a call that the multi-worker strategy cannot handle
   (it does not accept a nested `(x, y)` batch). Create the Model object
   outside the scope, then build its variables, compile and call `fit`
   inside it: the model then takes the strategy from the active scope.
2. `fit` averages the step's scalar logs across workers along axis 0, which
   a scalar does not have. The model's `train_step` returns them as
   1-element vectors.

Neither touches the loss: a class-balanced loss returns per-sample values
and Keras scales them for the replicas, as with its own losses.

References:
    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
    CVPR 2019, arXiv:1901.05555.
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import _long_tail as lt  # next to this file
import numpy as np

NUM_FEATURES = 8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--worker",
        action="store_true",
        help="run one worker, with TF_CONFIG from the "
        "environment (default: launch --workers local ones)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="number of local worker processes to launch",
    )
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument(
        "--n-max", type=int, default=256, help="size of the largest class"
    )
    parser.add_argument(
        "--imbalance",
        type=float,
        default=16.0,
        help="n_max / n_min of the training set",
    )
    parser.add_argument("--beta", type=float, default=0.999)
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="default: one pass over the training set",
    )
    parser.add_argument(
        "--global-batch-size",
        type=int,
        default=32,
        help="batch size summed over all workers",
    )
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="launcher: seconds before every worker is "
        "killed and the run fails",
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("outputs/multi_worker")
    )
    args = parser.parse_args(argv)
    for name in ("workers", "classes", "n_max", "epochs", "global_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.steps_per_epoch is not None and args.steps_per_epoch < 1:
        parser.error("--steps-per-epoch must be >= 1")
    if args.global_batch_size % args.workers:
        parser.error("--global-batch-size must be a multiple of --workers")
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    return args


# --------------------------------------------------------------------------
# Data and model: the same on every worker, and in a single process.
# --------------------------------------------------------------------------


def make_data(num_classes, n_max, imbalance, seed):
    """Long-tailed Gaussian blobs, identical on every worker.

    Returns:
        `(x, y)`: float32 features `[N, NUM_FEATURES]` and int32 labels
        `[N]`, with `lt.long_tail_counts(n_max, num_classes, imbalance)`
        samples per class, in a seeded shuffled order.
    """
    counts = lt.long_tail_counts(n_max, num_classes, imbalance)
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), counts).astype("int32")
    centers = rng.normal(0.0, 2.0, (num_classes, NUM_FEATURES))
    x = centers[y] + rng.normal(0.0, 1.0, (len(y), NUM_FEATURES))
    order = rng.permutation(len(y))
    return x[order].astype("float32"), y[order]


def make_dataset(x, y, global_batch_size):
    """The training pipeline: global batches, sharded by data across workers.

    `fit` splits each global batch between the workers. `drop_remainder`
    keeps every step at the full global batch, so that a step sees the same
    samples as a single-process step.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.batch(global_batch_size, drop_remainder=True)
    options = tf.data.Options()
    # In-memory data has no files to shard by: shard by data (each worker
    # keeps its part of every global batch). Says so explicitly instead of
    # letting AUTO fall back to it with a warning.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    return ds.with_options(options)


def pipeline_counts(y, num_classes, global_batch_size):
    """Per-class counts of the labels `make_dataset` yields.

    The pipeline drops the last partial batch, whose samples are never
    trained on; these are the counts `ClassCounter` must find.
    """
    kept = len(y) // global_batch_size * global_batch_size
    return np.bincount(y[:kept], minlength=num_classes)


def build_model(num_classes, args, strategy=None, class_counts=None):
    """A small classifier compiled with `CBFocalLoss`.

    Args:
        num_classes: Int, output units.
        args: The parsed arguments (beta, gamma, learning rate, seed).
        strategy: A `tf.distribute` strategy or `None` for one process.
        class_counts: Counts for the loss, or `None` (the default) to leave
            them to `ClassCounter`.

    Returns:
        The compiled model. Under a strategy, call `fit` (and `evaluate`,
        `predict`) inside `strategy.scope()` (workaround 1 below).
    """
    import keras

    from keras_cbloss import CBFocalLoss
    from keras_cbloss import prior_bias_initializer

    class Classifier(keras.Sequential):
        # Workaround 2 (keras-team/keras#20585): under the multi-worker
        # strategy, fit averages each log across workers along axis 0,
        # which a scalar lacks; give it 1-element vectors. The average is a
        # scalar again, and the history holds scalars in any case.
        def train_step(self, data):
            logs = super().train_step(data)
            return {k: keras.ops.reshape(v, (1,)) for k, v in logs.items()}

    keras.utils.set_random_seed(args.seed)
    # Workaround 1: the Model object is created outside the strategy scope
    # (its layers are not built yet), its variables inside it.
    model = Classifier(
        [
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(
                num_classes,
                bias_initializer=prior_bias_initializer(num_classes),
            ),
        ]
    )
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    with scope:
        model.build((None, NUM_FEATURES))
        model.compile(
            optimizer=keras.optimizers.SGD(args.learning_rate),
            loss=CBFocalLoss(
                class_counts, args.beta, args.gamma, from_logits=True
            ),
        )
    return model


def train(model, dataset, args, strategy=None, counter=None):
    """Runs `fit`; inside the strategy scope when there is one."""
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    with scope:
        history = model.fit(
            dataset,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            callbacks=[counter] if counter is not None else None,
            shuffle=False,  # a tf.data pipeline shuffles itself
            verbose=0,
        )
    return {
        k: [float(v) for v in values] for k, values in history.history.items()
    }


def model_weights(model):
    return [np.asarray(w).tolist() for w in model.get_weights()]


# --------------------------------------------------------------------------
# One worker.
# --------------------------------------------------------------------------


def run_worker(args):
    """Trains one worker (TF_CONFIG from the environment); returns a dict."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from keras_cbloss import ClassCounter

    if "TF_CONFIG" not in os.environ:
        raise SystemExit(
            "--worker needs TF_CONFIG in the environment (see the module "
            "docstring), or run without --worker to launch local workers."
        )
    # A bounded wait for collectives, so that a lost peer ends the run with
    # an error instead of a hang.
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=max(30.0, args.timeout / 2)
        )
    )
    resolver = strategy.cluster_resolver
    index = resolver.task_id
    x, y = make_data(args.classes, args.n_max, args.imbalance, args.seed)
    dataset = make_dataset(x, y, args.global_batch_size)

    model = build_model(args.classes, args, strategy)
    # Count the WHOLE training set on every worker: `dataset` is the
    # unsharded pipeline (fit shards its own copy), so all workers get the
    # same counts and the same class weights.
    counter = ClassCounter(dataset, args.classes, verbose=0)
    history = train(model, dataset, args, strategy, counter)

    args.output_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "index": index,
        "num_workers": len(resolver.cluster_spec().as_dict()["worker"]),
        "num_replicas_in_sync": strategy.num_replicas_in_sync,
        "class_counts": model.loss.class_counts.tolist(),
        "class_weights": model.loss.class_weights.tolist(),
        "history": history,
        "weights": model_weights(model),
    }
    path = args.output_dir / f"worker_{index}.json"
    path.write_text(json.dumps(result))
    print(
        f"worker {index}: {strategy.num_replicas_in_sync} replicas in "
        f"sync, counts {result['class_counts']}, final loss "
        f"{history['loss'][-1]:.4f}; wrote {path}",
        flush=True,
    )
    return result


# --------------------------------------------------------------------------
# The launcher: local workers on 127.0.0.1.
# --------------------------------------------------------------------------


def free_ports(n):
    """`n` distinct free TCP ports on 127.0.0.1 (free when checked)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    return json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def _stop(processes, grace=5.0):
    """Terminates the launched workers (their process groups), then kills."""
    for p in processes:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _tail(path, lines=30):
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def launch(args, argv):
    """Starts the local workers, waits (bounded), and returns their results.

    Raises:
        RuntimeError: If a worker fails or the run exceeds `--timeout`
            (every worker is stopped first, in both cases).
    """
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("worker_*.json"):
        stale.unlink()
    ports = free_ports(args.workers)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", *argv]
    processes, logs = [], []
    deadline = time.monotonic() + args.timeout
    try:
        for index in range(args.workers):
            log = open(out / f"worker_{index}.log", "w")
            logs.append(log)
            processes.append(
                subprocess.Popen(
                    command,
                    env=dict(env, TF_CONFIG=tf_config(ports, index)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    # a process group, to stop as a whole
                    start_new_session=True,
                )
            )
        while any(p.poll() is None for p in processes):
            failed = [
                i for i, p in enumerate(processes) if p.poll() not in (None, 0)
            ]
            if failed:
                raise RuntimeError(
                    f"worker {failed[0]} exited with code "
                    f"{processes[failed[0]].returncode}:\n"
                    + _tail(out / f"worker_{failed[0]}.log")
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the workers did not finish within --timeout "
                    f"{args.timeout:g} s; stopped them. Last lines of worker "
                    f"0's log:\n" + _tail(out / "worker_0.log")
                )
            time.sleep(0.2)
        failed = [i for i, p in enumerate(processes) if p.returncode != 0]
        if failed:
            raise RuntimeError(
                f"worker {failed[0]} exited with code "
                f"{processes[failed[0]].returncode}:\n"
                + _tail(out / f"worker_{failed[0]}.log")
            )
    finally:
        _stop(processes)
        for log in logs:
            log.close()
    return [
        json.loads((out / f"worker_{i}.json").read_text())
        for i in range(args.workers)
    ]


def compare(results, global_counts):
    """Checks the workers' results; returns a summary dict."""
    weights = [[np.asarray(w) for w in r["weights"]] for r in results]
    max_diff = max(
        (
            float(np.max(np.abs(a - b)))
            for other in weights[1:]
            for a, b in zip(weights[0], other)
        ),
        default=0.0,
    )
    counts_ok = all(
        r["class_counts"] == list(map(float, global_counts)) for r in results
    )
    return {
        "workers": len(results),
        "replicas_in_sync": results[0]["num_replicas_in_sync"],
        "global_counts": [int(c) for c in global_counts],
        "counts_equal_global": counts_ok,
        "max_weight_difference": max_diff,
        "identical_weights": max_diff == 0.0,
        "final_loss": [r["history"]["loss"][-1] for r in results],
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return None
    start = time.perf_counter()
    _, y = make_data(args.classes, args.n_max, args.imbalance, args.seed)
    global_counts = pipeline_counts(y, args.classes, args.global_batch_size)
    print(
        f"launching {args.workers} workers on 127.0.0.1; class sizes of "
        f"the training pipeline {global_counts.tolist()}",
        flush=True,
    )
    results = launch(args, argv)
    summary = compare(results, global_counts)
    (args.output_dir / "summary.json").write_text(json.dumps(summary))
    print(
        f"{summary['workers']} workers, {summary['replicas_in_sync']} "
        f"replicas in sync, {time.perf_counter() - start:.0f} s"
    )
    print(
        f"counts on every worker equal the global counts: "
        f"{summary['counts_equal_global']}"
    )
    print(
        f"identical final weights on every worker: "
        f"{summary['identical_weights']} (max difference "
        f"{summary['max_weight_difference']:.3g})"
    )
    if not (summary["counts_equal_global"] and summary["identical_weights"]):
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main()
