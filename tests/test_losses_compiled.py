"""The losses in compiled training: what must not happen per step.

One traced function serves every step (no retracing per call, none per
`fit` step), eager steps reuse one weight tensor instead of copying the
weights each time, and gradients stay accurate where they are tiny. The
module runs on the active backend; tests/backend_runs.py reruns it under
JAX and PyTorch.
"""

import keras
import numpy as np
import pytest
import reference
from backend_utils import BACKEND
from backend_utils import fit_kwargs
from backend_utils import make_loss
from backend_utils import to_numpy
from backend_utils import value_and_grad
from keras import ops

from keras_cbloss import CBFocalLoss
from keras_cbloss import CBSoftmaxLoss

COUNTS = np.array([500, 120, 40, 9, 2])
C = len(COUNTS)
KINDS = ["softmax", "sigmoid", "focal"]


def _loss(kind, counts=COUNTS, **kwargs):
    return make_loss(kind, counts, 0.999, 2.0, from_logits=True, **kwargs)


def _batch(form, seed, batch=8, dtype="float32"):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, C, batch)
    y = ids if form == "sparse" else np.eye(C, dtype="float32")[ids]
    z = rng.normal(0.0, 3.0, (batch, C)).astype("float32")
    return ops.convert_to_tensor(y), ops.convert_to_tensor(z, dtype)


def _compiled_with_trace_count(fn):
    """`fn(y, z)` compiled with its value and gradient, and its trace log.

    The Python body runs only while tracing, so the log grows by one entry
    per trace.
    """
    traces = []

    def counted(y, z):
        traces.append(tuple(z.shape))
        return fn(y, z)

    if BACKEND == "tensorflow":
        import tensorflow as tf

        def step(y, z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = counted(y, z)
            return value, tape.gradient(value, z)

        return [tf.function(step), tf.function(step, jit_compile=True)], traces
    import jax

    grad = jax.jit(jax.value_and_grad(lambda z, y: counted(y, z)))
    return [lambda y, z: grad(z, y)], traces


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "form, dtype",
    [
        ("sparse", "float32"),
        ("onehot", "float32"),
        ("sparse", "mixed_bfloat16"),
    ],
)
def test_one_trace_serves_every_call(kind, form, dtype):
    if BACKEND == "torch":
        pytest.skip("the PyTorch trainer runs the loss eagerly")
    loss = _loss(kind, dtype=dtype)
    logits_dtype = "bfloat16" if dtype == "mixed_bfloat16" else "float32"
    functions, traces = _compiled_with_trace_count(lambda y, z: loss(y, z))
    for function in functions:
        del traces[:]
        for seed in range(5):  # new values, same shapes: no new trace
            value, grad = function(*_batch(form, seed, dtype=logits_dtype))
            assert np.isfinite(to_numpy(value)) and np.all(
                np.isfinite(to_numpy(grad))
            )
        assert len(traces) == 1, traces


@pytest.mark.parametrize("kind", KINDS)
def test_fit_traces_the_loss_once_not_per_step(kind):
    if BACKEND == "torch":
        pytest.skip("the PyTorch trainer runs the loss eagerly")
    loss = _loss(kind)
    calls = []
    original_call = loss.call

    def counting_call(y_true, y_pred):
        calls.append(1)
        return original_call(y_true, y_pred)

    loss.call = counting_call  # the Python body runs only while tracing
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (32, 4)).astype("float32")
    y = rng.integers(0, C, 32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(C)])
    model.compile("sgd", loss=loss, **fit_kwargs())
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after_first_fit = len(calls)
    assert 1 <= after_first_fit <= 3  # tracing (and JAX's shape pass)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)  # 12 more steps
    assert len(calls) == after_first_fit


@pytest.mark.parametrize("layout", ["ignore_class", "binary_head"])
def test_new_label_layouts_trace_once_and_keep_their_values(layout):
    # The values of issue 9 under tf.function, jit_compile=True and jax.jit.
    if BACKEND == "torch":
        pytest.skip("the PyTorch trainer runs the loss eagerly")
    if layout == "ignore_class":
        loss = CBSoftmaxLoss(
            [10, 5, 2], 0.9, from_logits=True, ignore_class=255
        )
        y = np.array([[0, 1, 255], [2, 0, 255]])
        shape, want = (2, 3, 3), 0.96086
        first = np.zeros(shape, "float32")
    else:
        loss = CBFocalLoss([60, 4], 0.999, 2.0, from_logits=True)
        y = np.array([[0], [0], [1], [0]])
        shape = (4, 1)
        want = np.mean([0.35493, 0.048424, 1.31368, 0.00023141])
        first = np.array([[3.0], [0.5], [-1.0], [-2.0]], "float32")
    functions, traces = _compiled_with_trace_count(lambda a, b: loss(a, b))
    for function in functions:
        del traces[:]
        for seed in range(3):
            z = (
                first
                if seed == 0
                else (
                    np.random.default_rng(seed)
                    .normal(0, 3, shape)
                    .astype("float32")
                )
            )
            value, grad = function(
                ops.convert_to_tensor(y), ops.convert_to_tensor(z)
            )
            assert np.isfinite(to_numpy(value))
            assert np.all(np.isfinite(to_numpy(grad)))
            if seed == 0:
                np.testing.assert_allclose(to_numpy(value), want, rtol=5e-5)
            if layout == "ignore_class":
                assert np.all(to_numpy(grad)[:, 2] == 0.0)
        assert len(traces) == 1, traces


def test_eager_calls_reuse_one_weight_tensor():
    loss = _loss("focal")
    z = ops.convert_to_tensor(np.zeros((2, C), "float32"))
    first = loss._eager_weights(z)
    assert loss._eager_weights(z) is first  # no copy per eager step
    np.testing.assert_allclose(to_numpy(first), loss.class_weights, rtol=1e-6)
    loss(np.array([0, 1]), z)
    assert loss._eager_weights(z) is first
    loss.set_class_counts(COUNTS[::-1])  # new counts drop the cached tensor
    refreshed = loss._eager_weights(z)
    assert refreshed is not first
    np.testing.assert_allclose(
        to_numpy(refreshed), loss.class_weights, rtol=1e-6
    )


@pytest.mark.parametrize(
    "kind, gamma", [("sigmoid", 0.0), ("focal", 0.5), ("focal", 2.0)]
)
@pytest.mark.parametrize("scale", [10.0, 30.0])
def test_tiny_gradients_keep_their_digits(kind, gamma, scale):
    # Where p - t is tiny (confident logits), terms of size 1 that cancel in
    # the backward pass would leave 0 or noise instead of the true value.
    rng = np.random.default_rng(int(scale))
    ids = rng.integers(0, C, 16)
    z = rng.normal(0.0, scale, (16, C)).astype("float32")
    z[0] = 0.0
    loss = CBFocalLoss(COUNTS, 0.999, gamma, from_logits=True, reduction="sum")
    _, grad = value_and_grad(lambda x: loss(ids, x), z)
    # The reference is d(mean loss)/dz; this loss sums over the batch.
    want = len(ids) * reference.loss_gradient(
        "focal", ids, z, loss.class_weights, gamma
    )
    shown = np.abs(want) > 1e-30  # float32 holds these
    np.testing.assert_allclose(grad[shown], want[shown], rtol=1e-4)


def _traced_model(loss, seed=0):
    """A tiny model compiled with `loss` and fitted once (steps traced)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (32, 4)).astype("float32")
    y = rng.integers(0, C, 32)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(C)])
    model.compile("sgd", loss=loss, **fit_kwargs())
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    return model, x, y


@pytest.mark.parametrize("change", ["set_class_counts", "set_beta"])
def test_changing_a_traced_loss_warns_and_the_named_fix_works(change):
    if BACKEND == "torch":
        pytest.skip("the PyTorch trainer runs the loss eagerly")
    from keras_cbloss._base import _StaleTraceWarning

    loss = CBSoftmaxLoss(COUNTS, beta=0.999, from_logits=True)
    model, x, y = _traced_model(loss)
    new_counts, new_beta = COUNTS[::-1], 0.999
    with pytest.warns(_StaleTraceWarning, match="make_test_function"):
        if change == "set_class_counts":
            loss.set_class_counts(new_counts)
        else:
            new_counts, new_beta = COUNTS, 0.9
            loss.set_beta(new_beta)
    # The fix the warning names.
    model.make_train_function(force=True)
    model.make_test_function(force=True)
    logits = model.predict(x, batch_size=32, verbose=0)
    expected = reference.softmax_loss(
        y, logits, reference.cb_weights(new_counts, new_beta), True
    ).mean()
    stale = reference.softmax_loss(
        y, logits, reference.cb_weights(COUNTS, 0.999), True
    ).mean()
    assert abs(expected - stale) > 1e-2  # the change is visible
    evaluated = model.evaluate(x, y, batch_size=32, verbose=0)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5)


def test_unchanged_weights_and_untraced_losses_do_not_warn(recwarn):
    loss = CBSoftmaxLoss(COUNTS, from_logits=True)
    loss.set_class_counts(COUNTS[::-1])  # never traced
    if BACKEND != "torch":
        _traced_model(loss)
        loss.set_class_counts(COUNTS[::-1])  # same weights
    assert not recwarn.list


def test_the_callbacks_retrace_without_the_warning(recwarn):
    if BACKEND == "torch":
        pytest.skip("the PyTorch trainer runs the loss eagerly")
    import tensorflow as tf

    from keras_cbloss import ClassCounter
    from keras_cbloss import DeferredReweighting

    loss = CBSoftmaxLoss(COUNTS, beta=0.999, from_logits=True)
    model, x, y = _traced_model(loss)  # traced with COUNTS
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[ClassCounter(dataset), DeferredReweighting(start_epoch=1)],
    )
    assert loss.beta == 0.9999  # DeferredReweighting's beta from epoch 1
    assert loss.class_counts.tolist() != COUNTS.tolist()  # counts changed
    stale = [w for w in recwarn.list if "make_test_function" in str(w.message)]
    assert not stale


class _OwnBetaSchedule(keras.callbacks.Callback):
    """A user's schedule, the documented way: `set_beta`, then rebuild."""

    def __init__(self, loss, betas):
        super().__init__()
        self.loss, self.betas = loss, betas

    def on_epoch_begin(self, epoch, logs=None):
        self.loss.set_beta(self.betas[epoch])
        self.model.make_train_function(force=True)
        self.model.make_test_function(force=True)


def test_a_schedule_that_rebuilds_is_warned_once_and_gets_its_weights():
    if BACKEND == "torch":
        pytest.skip("the PyTorch trainer runs the loss eagerly")
    import warnings

    from keras_cbloss._base import _StaleTraceWarning

    loss = CBSoftmaxLoss(COUNTS, beta=0.999, from_logits=True)
    model, x, y = _traced_model(loss)
    betas = [0.9, 0.99, 0.5, 0.9999]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            x,
            y,
            batch_size=32,
            epochs=len(betas),
            verbose=0,
            callbacks=[_OwnBetaSchedule(loss, betas)],
        )
    stale = [w for w in caught if issubclass(w.category, _StaleTraceWarning)]
    assert len(stale) == 1  # four changes, one warning
    # the rebuilt functions use the last beta
    logits = model.predict(x, batch_size=32, verbose=0)
    expected = reference.softmax_loss(
        y, logits, reference.cb_weights(COUNTS, betas[-1]), True
    ).mean()
    np.testing.assert_allclose(
        model.evaluate(x, y, batch_size=32, verbose=0), expected, rtol=1e-5
    )


def test_each_loss_is_warned_once_without_a_rebuild():
    if BACKEND == "torch":
        pytest.skip("the PyTorch trainer runs the loss eagerly")
    import warnings

    from keras_cbloss._base import _StaleTraceWarning

    first = CBSoftmaxLoss(COUNTS, beta=0.999, from_logits=True)
    second = CBSoftmaxLoss(COUNTS, beta=0.999, from_logits=True)
    _traced_model(first)
    _traced_model(second)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first.set_beta(0.9)
        first.set_beta(0.99)  # the same loss: already told
        second.set_class_counts(COUNTS[::-1])  # another loss: told too
    stale = [
        str(w.message)
        for w in caught
        if issubclass(w.category, _StaleTraceWarning)
    ]
    assert len(stale) == 2
    assert "set_beta" in stale[0] and "set_class_counts" in stale[1]
