"""Mixed precision and compiled code: float16, bfloat16, XLA and jax.jit.

What `tests/test_losses.py` already covers (16-bit inputs at moderate
logits, float32 logits up to 1e4, large class ids in 16-bit loss dtypes,
compiled == eager for sparse and one-hot labels) is not repeated here. This
module adds:

- training a small model under the `mixed_float16` and `mixed_bfloat16`
  policies with each loss, from logits and from probabilities;
- values and gradients for 16-bit logits across the whole float16 range
  (up to +-65504) and for probabilities of exactly 0 and 1, against the
  float64 reference wherever the result is representable;
- every label form (sparse, [..., 1], one-hot, multi-hot, soft) and both
  weightings under `jit_compile=True` (TF) or `jax.jit` (JAX), and a
  compiled `fit` with `ClassCounter` under mixed precision.

Written with `keras.ops` and `tests/backend_utils.py`; tests/backend_runs.py
reruns this module under JAX.
"""

import keras
import numpy as np
import pytest
import reference
from backend_utils import BACKEND
from backend_utils import compiled
from backend_utils import fit_kwargs
from backend_utils import make_loss
from backend_utils import np_softmax
from backend_utils import random_labels
from backend_utils import to_numpy
from backend_utils import value_and_grad
from keras import ops

from keras_cbloss import prior_bias_initializer

COUNTS = np.array([500, 120, 40, 9, 2])
C = len(COUNTS)
FLOAT16_MAX = 65504.0
SIXTEEN_BIT_MAX = {"float16": 65504.0, "bfloat16": 3.3895e38}
KINDS = ["softmax", "sigmoid", "focal"]


def _loss(kind, counts=COUNTS, **kwargs):
    return make_loss(kind, counts, **kwargs)


_reference = reference.loss_by_kind


@pytest.fixture
def policy(request):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy(previous)


# --------------------------------------------------------------------------
# Training under mixed-precision policies.
# --------------------------------------------------------------------------


def _long_tailed_data(seed=0):
    rng = np.random.default_rng(seed)
    counts = np.array([40, 14, 6, 3, 1])
    y = np.repeat(np.arange(C), counts).astype("int32")
    x = rng.normal(0, 1, (len(y), 4)) + np.eye(C, 4)[y] * 4.0
    order = rng.permutation(len(y))
    return x[order].astype("f4"), y[order], counts


@pytest.mark.parametrize(
    "policy, from_logits",
    # float16 probabilities saturate to exactly 0 and 1, bfloat16 ones to 1
    [
        ("mixed_float16", True),
        ("mixed_bfloat16", True),
        ("mixed_float16", False),
    ],
    indirect=["policy"],
)
@pytest.mark.parametrize("kind", KINDS)
def test_mixed_policy_trains_each_loss_without_nan(policy, kind, from_logits):
    x, y, counts = _long_tailed_data()
    keras.utils.set_random_seed(0)
    activation = None
    if not from_logits:  # a 16-bit softmax/sigmoid saturates to 0 and 1
        activation = "softmax" if kind == "softmax" else "sigmoid"
    head = keras.layers.Dense(
        C,
        activation=activation,
        bias_initializer="zeros"
        if kind == "softmax"
        else prior_bias_initializer(C),
    )
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), head]
    )
    assert head.compute_dtype == policy.split("_")[1]
    loss = _loss(
        kind, counts=counts, beta=0.999, gamma=2.0, from_logits=from_logits
    )
    # A large learning rate drives the outputs to saturation. XLA-compiled
    # training under these policies is in test_compiled_fit_with_class_counter
    # (on TF it would double this test's time); JAX always jits.
    model.compile(
        keras.optimizers.Adam(0.1), loss=loss, jit_compile=BACKEND == "jax"
    )
    history = model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    losses = np.array(history.history["loss"])
    assert np.isfinite(losses).all(), losses
    assert losses[-1] < 0.5 * losses[0], losses
    for weight in model.get_weights():
        assert np.isfinite(weight).all()
    predictions = model(x)
    assert keras.backend.standardize_dtype(predictions.dtype) in (
        "float16",
        "bfloat16",
    )
    # On the 16-bit outputs the loss is the float64 reference (it computes
    # in float32 from their exact values). `evaluate` recomputes the outputs
    # with other kernels, and a 16-bit probability near 1 moves in steps of
    # 2**-11 (float16) or 2**-8 (bfloat16): it is only checked to be finite.
    want = _reference(
        kind, y, to_numpy(predictions), loss.class_weights, from_logits, 2.0
    ).mean()
    np.testing.assert_allclose(
        to_numpy(loss(y, predictions)), want, rtol=1e-5, atol=1e-7
    )
    assert np.isfinite(model.evaluate(x, y, batch_size=len(x), verbose=0))
    if not from_logits:  # the case this test is for did occur
        assert (to_numpy(predictions) == 1.0).any()


# --------------------------------------------------------------------------
# 16-bit logits across the whole float16 range.
# --------------------------------------------------------------------------


def _extreme_logits():
    """Rows of logits from -65504 to 65504, with labels for every case."""
    m = FLOAT16_MAX
    tiny = 6e-8  # the smallest float16 subnormal
    rows, labels = [], []

    def add(row, label):
        rows.append(row)
        labels.append(label)

    for c in range(C):
        right = np.full(C, -m)
        right[c] = m
        add(right, c)  # confident and right
        add(right, (c + 1) % C)  # confident and wrong
    for v in (m, -m, 1e4, -1e4, 11.0, -11.0, 0.0, tiny, -tiny):
        add(np.full(C, v), len(rows) % C)  # everything on / off / undecided
    grid = np.array(
        [
            -m,
            -3e4,
            -100.0,
            -17.0,
            -1.0,
            -tiny,
            0.0,
            tiny,
            1.0,
            17.0,
            100.0,
            3e4,
            m,
        ]
    )
    rng = np.random.default_rng(0)
    for _ in range(10):
        add(rng.choice(grid, C), int(rng.integers(0, C)))
    return np.array(rows, "f4"), np.array(labels)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "kind, gamma",
    [("softmax", 0.0), ("sigmoid", 0.0), ("focal", 0.25), ("focal", 2.0)],
)
def test_float16_range_logits_match_reference_with_finite_gradients(
    dtype, kind, gamma
):
    # 16-bit logits (what a mixed-precision model outputs) into a loss with
    # the default float32 dtype, as under mixed_float16 / mixed_bfloat16.
    logits, y = _extreme_logits()
    logits16 = ops.cast(logits, dtype)
    exact = to_numpy(logits16)  # the 16-bit values, exactly, in float64
    assert np.abs(exact).max() >= FLOAT16_MAX
    loss = _loss(kind, gamma=gamma, from_logits=True, reduction="none")
    weights = loss.class_weights
    got = to_numpy(loss(y, logits16))
    want = _reference(kind, y, exact, weights, True, gamma)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    mean_loss = _loss(kind, gamma=gamma, from_logits=True)
    value, grad = value_and_grad(lambda z: mean_loss(y, z), exact, dtype=dtype)
    assert np.isfinite(value) and np.isfinite(grad).all()
    np.testing.assert_allclose(value, want.mean(), rtol=1e-5)
    want_grad = reference.loss_gradient(kind, y, exact, weights, gamma)
    # the gradient comes back in the 16-bit dtype
    np.testing.assert_allclose(grad, want_grad, rtol=1e-2, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("kind", KINDS)
def test_sixteen_bit_loss_dtype_is_exact_where_representable(dtype, kind):
    # With the loss's own dtype set to 16 bits, the loss is evaluated in
    # float32 and returned in 16 bits: within 16-bit rounding of the
    # reference where the value fits, +inf (never NaN) where it does not.
    logits, y = _extreme_logits()
    logits16 = ops.cast(logits, dtype)
    exact = to_numpy(logits16)
    loss = _loss(
        kind, gamma=2.0, from_logits=True, reduction="none", dtype=dtype
    )
    got = to_numpy(loss(y, logits16))
    want = _reference(kind, y, exact, loss.class_weights, True, 2.0)
    assert not np.isnan(got).any()
    fits = want <= SIXTEEN_BIT_MAX[dtype]
    np.testing.assert_allclose(got[fits], want[fits], rtol=1e-2, atol=1e-3)
    assert np.all(got[~fits] == np.inf)
    if dtype == "float16":
        assert (~fits).any()  # the case exists: a wrong logit of +-65504

    mean_loss = _loss(kind, gamma=2.0, from_logits=True, dtype=dtype)
    _, grad = value_and_grad(lambda z: mean_loss(y, z), exact, dtype=dtype)
    assert np.isfinite(grad).all()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("kind", KINDS)
def test_probabilities_of_exactly_zero_and_one(dtype, kind):
    # What a saturated 16-bit softmax/sigmoid head outputs. Keras clips to
    # [1e-7, 1 - 1e-7]; in float16 1 - 1e-7 rounds to 1, so the clip must
    # happen in float32 (the losses evaluate 16-bit inputs in float32).
    y = np.array([0, 1, 2, 3, 4])
    probs = np.zeros((5, C), "f4")
    probs[0, 0] = 1.0  # right, certain
    probs[1, 0] = 1.0  # wrong, certain
    probs[2] = 1.0  # every class on (a sigmoid head)
    probs[4, 4] = 1.0
    if kind == "softmax":
        probs[3] = 1.0 / C  # row 3 stays a distribution
    probs16 = ops.cast(probs, dtype)
    loss = _loss(kind, gamma=0.5, reduction="none")
    got = to_numpy(loss(y, probs16))
    want = _reference(kind, y, probs, loss.class_weights, False, 0.5)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    mean_loss = _loss(kind, gamma=0.5)
    value, grad = value_and_grad(lambda p: mean_loss(y, p), probs, dtype=dtype)
    assert np.isfinite(value) and np.isfinite(grad).all()
    np.testing.assert_allclose(value, want.mean(), rtol=1e-5)


# --------------------------------------------------------------------------
# Compiled code: every label form, and ClassCounter.
# --------------------------------------------------------------------------

FORMS = ["sparse", "sparse_1", "onehot", "multihot", "soft"]
COMPILED_CASES = [
    (kind, form, weighting)
    for kind in KINDS
    for form in FORMS
    for weighting in (("sample",) if kind == "softmax" else ("sample", "class"))
    # class weighting reads dense targets; sparse ids are covered by sample
    if not (weighting == "class" and form in ("sparse", "sparse_1"))
    # a softmax takes one class per row (multi-hot rows are refused)
    and not (kind == "softmax" and form == "multihot")
]


@pytest.mark.parametrize("kind, form, weighting", COMPILED_CASES)
def test_compiled_loss_matches_reference_for_every_label_form(
    kind, form, weighting
):
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 4, (2, 3, C)).astype("f4")  # maps, not just rows
    probs = (1 / (1 + np.exp(-logits.astype("f8")))).astype("f4")
    if kind == "softmax":
        probs = np_softmax(logits)
    y = random_labels(form, (2, 3), C)
    if form == "multihot":
        y[0] = 0.0  # rows with no positive class
    extra = {} if kind == "softmax" else {"weighting": weighting}
    for from_logits, pred in ((True, logits), (False, probs)):
        loss = _loss(
            kind,
            beta=0.99,
            gamma=1.5,
            from_logits=from_logits,
            reduction="none",
            **extra,
        )
        got = to_numpy(compiled(lambda a, b: loss(a, b))(y, pred))
        want = _reference(
            kind, y, pred, loss.class_weights, from_logits, 1.5, weighting
        )
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "policy, kind, form",
    # float32 with ClassCounter and jit_compile is in tests/test_callbacks.py
    [
        ("mixed_float16", "softmax", "sparse"),
        ("mixed_bfloat16", "focal", "onehot"),
    ],
    indirect=["policy"],
)
def test_compiled_fit_with_class_counter(policy, kind, form):
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    from keras_cbloss import ClassCounter

    x, ids, counts = _long_tailed_data(seed=3)
    y = ids if form == "sparse" else np.eye(C, dtype="f4")[ids]
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))

    def one_step(class_counts, callbacks):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(C)])
        loss = _loss(
            kind, counts=class_counts, beta=0.999, gamma=2.0, from_logits=True
        )
        model.compile(keras.optimizers.SGD(0.1), loss=loss, **fit_kwargs())
        history = model.fit(
            train, epochs=2, callbacks=callbacks, shuffle=False, verbose=0
        )
        return model, loss, history.history["loss"]

    counted_model, counted_loss, counted = one_step(
        None, [ClassCounter(train, verbose=0)]
    )
    np.testing.assert_array_equal(counted_loss.class_counts, counts)
    known_model, _, known = one_step(counts, [])
    assert np.isfinite(counted).all()
    np.testing.assert_allclose(counted, known, rtol=1e-6)
    for a, b in zip(counted_model.get_weights(), known_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    if fit_kwargs().get("jit_compile"):
        assert counted_model.jit_compile
