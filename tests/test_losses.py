"""Loss values, identities, numerics and errors, on the active Keras backend.

`tests/test_backends.py` reruns this module under JAX and PyTorch.
"""

import json

import keras
import numpy as np
import pytest
import reference
from backend_utils import BACKEND
from backend_utils import assert_short_fit_learns
from backend_utils import compiled
from backend_utils import fit_kwargs
from backend_utils import make_loss
from backend_utils import random_labels
from backend_utils import random_logits
from backend_utils import to_numpy
from backend_utils import value_and_grad
from keras import ops

from keras_cbloss import CBFocalLoss
from keras_cbloss import CBSigmoidLoss
from keras_cbloss import CBSoftmaxLoss
from keras_cbloss import cb_focal_crossentropy
from keras_cbloss import cb_sigmoid_crossentropy
from keras_cbloss import cb_softmax_crossentropy
from keras_cbloss import class_balanced_weights
from keras_cbloss import prior_bias_initializer

COUNTS = np.array([500, 120, 40, 9, 2])
C = len(COUNTS)
RTOL = 1e-6
# float32 rounds log-sum-exp of logits ~10 to about 1e-6 absolute.
ATOL = 1e-6


def _probs(logits, kind):
    if kind == "softmax":
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).astype("f4")
    return (1 / (1 + np.exp(-logits.astype("f8")))).astype("f4")


_reference = reference.loss_by_kind


def _function(
    kind, y, pred, weights, from_logits, gamma=0.0, weighting="sample"
):
    if kind == "softmax":
        return cb_softmax_crossentropy(
            y, pred, weights, from_logits=from_logits
        )
    if kind == "sigmoid":
        return cb_sigmoid_crossentropy(
            y, pred, weights, from_logits=from_logits, weighting=weighting
        )
    return cb_focal_crossentropy(
        y,
        pred,
        weights,
        gamma=gamma,
        from_logits=from_logits,
        weighting=weighting,
    )


def _loss(kind, counts=COUNTS, **kwargs):
    return make_loss(kind, counts, **kwargs)


# ---------------------------------------------------------------------------
# Values against the float64 reference.
# ---------------------------------------------------------------------------

CASES = [
    ("softmax", form, logits, 0.0)
    for form in ("sparse", "sparse_1", "onehot", "soft")
    for logits in (True, False)
] + [
    (kind, form, logits, gamma)
    for kind, gammas in (("sigmoid", (0.0,)), ("focal", (0.5, 1.0, 2.0)))
    for form in ("sparse", "sparse_1", "onehot", "multihot", "soft")
    for logits in (True, False)
    for gamma in gammas
]


@pytest.mark.parametrize("kind, form, from_logits, gamma", CASES)
@pytest.mark.parametrize("beta", [0.0, 0.99, 0.9999])
def test_per_sample_values_match_reference(
    kind, form, from_logits, gamma, beta
):
    logits = random_logits((16, C))
    pred = logits if from_logits else _probs(logits, kind)
    y = random_labels(form, (16,), C)
    weights = class_balanced_weights(COUNTS, beta)
    got = _function(kind, y, pred, weights, from_logits, gamma)
    assert tuple(got.shape) == (16,)
    want = _reference(kind, y, pred, weights, from_logits, gamma)
    np.testing.assert_allclose(to_numpy(got), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_loss_class_reduces_to_the_mean_and_applies_sample_weight(kind):
    logits = random_logits((12, C), seed=3)
    y = random_labels("sparse", (12,), C, seed=4)
    sample_weight = np.random.default_rng(5).random(12).astype("f4")
    loss = _loss(kind, beta=0.99, gamma=2.0, from_logits=True)
    per_sample = _reference(
        kind, y, logits, class_balanced_weights(COUNTS, 0.99), True, 2.0
    )
    np.testing.assert_allclose(
        to_numpy(loss(y, logits)), per_sample.mean(), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        to_numpy(loss(y, logits, sample_weight=sample_weight)),
        (per_sample * sample_weight).mean(),
        rtol=RTOL,
    )
    unreduced = _loss(
        kind, beta=0.99, gamma=2.0, from_logits=True, reduction="none"
    )
    np.testing.assert_allclose(
        to_numpy(unreduced(y, logits)), per_sample, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("form", ["sparse", "sparse_1", "onehot"])
def test_segmentation_maps(kind, form):
    logits = random_logits((2, 6, 5, C), seed=7)
    y = random_labels(form, (2, 6, 5), C, seed=8)
    loss = _loss(
        kind, beta=0.999, gamma=1.5, from_logits=True, reduction="none"
    )
    got = loss(y, logits)
    assert tuple(got.shape) == (2, 6, 5)
    want = _reference(kind, y, logits, loss.class_weights, True, 1.5)
    np.testing.assert_allclose(to_numpy(got), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_per_sample_weights_of_maps_weigh_whole_samples(kind):
    # sample_weight [B] of per-pixel losses [B, H, W] with B == W: Keras
    # aligns it from the last axis (it would weigh columns, silently); of
    # per-token losses [B, T] with ignore_class, Keras failed with
    # "Incompatible shapes". Both are aligned from the batch axis.
    logits = random_logits((3, 2, 3, C), seed=41)
    y = random_labels("sparse", (3, 2, 3), C, seed=42)
    weights = np.array([0.5, 0.0, 2.0], "f4")
    loss = _loss(kind, beta=0.99, gamma=2.0, from_logits=True)
    per_pixel = _reference(kind, y, logits, loss.class_weights, True, 2.0)
    np.testing.assert_allclose(
        to_numpy(loss(y, logits, sample_weight=weights)),
        (per_pixel * weights[:, None, None]).mean(),
        rtol=RTOL,
        atol=ATOL,
    )
    tokens = random_labels("sparse", (3, 5), C, seed=43)
    tokens[0, 3:] = -1  # padding
    token_logits = random_logits((3, 5, C), seed=44)
    padded = _loss(
        kind, beta=0.99, gamma=2.0, from_logits=True, ignore_class=-1
    )
    kept = tokens != -1
    per_token = _reference(
        kind,
        np.where(kept, tokens, 0),
        token_logits,
        loss.class_weights,
        True,
        2.0,
    )
    given = weights.copy()
    np.testing.assert_allclose(
        to_numpy(padded(tokens, token_logits, sample_weight=given)),
        reference.masked_mean(per_token, kept, weights[:, None] + 0 * kept),
        rtol=RTOL,
        atol=ATOL,
    )
    # Keras on PyTorch scales the weight by the mask in place: the loss
    # hands it a copy, so the caller's array is left as it was.
    np.testing.assert_array_equal(given, weights)


@pytest.mark.parametrize("kind, gamma", [("sigmoid", 0.0), ("focal", 2.0)])
@pytest.mark.parametrize("form", ["multihot", "onehot", "sparse"])
def test_class_weighting_weights_each_binary_term_by_its_class(
    kind, gamma, form
):
    logits = random_logits((10, C), seed=9)
    y = random_labels(form, (10,), C, seed=10)
    if form == "multihot":
        y[0] = 0.0  # a row without positives must still get a loss
    loss = _loss(
        kind,
        beta=0.999,
        gamma=gamma,
        from_logits=True,
        weighting="class",
        reduction="none",
    )
    want = reference.focal_loss(
        y, logits, loss.class_weights, True, gamma, weighting="class"
    )
    got = to_numpy(loss(y, logits))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    if form == "multihot":
        assert got[0] > 0


# ---------------------------------------------------------------------------
# Identities with Keras' own losses.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("from_logits", [True, False])
def test_beta_zero_equals_keras_crossentropy(from_logits):
    logits = random_logits((20, C), seed=11)
    pred = logits if from_logits else _probs(logits, "softmax")
    y = random_labels("sparse", (20,), C, seed=12)
    ours = CBSoftmaxLoss(COUNTS, beta=0.0, from_logits=from_logits)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    dense = keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    np.testing.assert_allclose(
        to_numpy(ours(y, pred)), to_numpy(sparse(y, pred)), rtol=RTOL, atol=ATOL
    )
    onehot = np.eye(C, dtype="f4")[y]
    np.testing.assert_allclose(
        to_numpy(ours(onehot, pred)),
        to_numpy(dense(onehot, pred)),
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999])
def test_cb_softmax_equals_keras_sparse_ce_with_sample_weight(beta):
    logits = random_logits((32, C), seed=13)
    y = random_labels("sparse", (32,), C, seed=14)
    ours = CBSoftmaxLoss(COUNTS, beta, from_logits=True)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        to_numpy(ours(y, logits)),
        to_numpy(keras_loss(y, logits, sample_weight=ours.class_weights[y])),
        rtol=RTOL,
    )


@pytest.mark.parametrize("from_logits", [True, False])
def test_beta_zero_sigmoid_is_num_classes_times_keras_bce(from_logits):
    logits = random_logits((20, C), seed=15)
    pred = logits if from_logits else _probs(logits, "sigmoid")
    y = random_labels("multihot", (20,), C, seed=16)
    y[y.sum(-1) == 0, 0] = 1.0  # beta = 0 weights a row by its positives
    y = y * (1 / y.sum(-1, keepdims=True))  # ... so make them sum to 1
    ours = CBSigmoidLoss(COUNTS, 0.0, from_logits=from_logits)
    keras_bce = keras.losses.BinaryCrossentropy(from_logits=from_logits)
    np.testing.assert_allclose(
        to_numpy(ours(y, pred)), C * to_numpy(keras_bce(y, pred)), rtol=1e-5
    )


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_beta_zero_focal_is_num_classes_times_keras_binary_focal(gamma):
    logits = random_logits((20, C), seed=17, scale=2.0)
    y = random_labels("onehot", (20,), C, seed=18)
    ours = CBFocalLoss(COUNTS, 0.0, gamma, from_logits=True)
    keras_focal = keras.losses.BinaryFocalCrossentropy(
        gamma=gamma, from_logits=True
    )
    np.testing.assert_allclose(
        to_numpy(ours(y, logits)),
        C * to_numpy(keras_focal(y, logits)),
        rtol=1e-5,
    )


@pytest.mark.parametrize("form", ["sparse", "onehot", "soft"])
@pytest.mark.parametrize("from_logits", [True, False])
def test_focal_with_gamma_zero_and_cb_sigmoid_match_the_reference(
    form, from_logits
):
    # Both against the float64 reference, not against each other (the
    # sigmoid loss is the focal code with gamma = 0).
    logits = random_logits((16, C), seed=19)
    pred = logits if from_logits else _probs(logits, "sigmoid")
    y = random_labels(form, (16,), C, seed=20)
    weights = class_balanced_weights(COUNTS, 0.99)
    want = reference.sigmoid_loss(y, pred, weights, from_logits)
    for loss in (
        CBFocalLoss(COUNTS, 0.99, 0.0, from_logits=from_logits),
        CBSigmoidLoss(COUNTS, 0.99, from_logits=from_logits),
    ):
        np.testing.assert_allclose(
            to_numpy(loss(y, pred)), want.mean(), rtol=RTOL, atol=ATOL
        )


def test_focal_matches_textbook_pow_form():
    logits = random_logits((16, C), seed=21, scale=2.0)
    y = random_labels("sparse", (16,), C, seed=22)
    loss = CBFocalLoss(COUNTS, 0.999, 2.0, from_logits=True, reduction="none")
    np.testing.assert_allclose(
        to_numpy(loss(y, logits)),
        reference.focal_loss_pow(y, logits, loss.class_weights, 2.0),
        rtol=RTOL,
    )


def test_ratio_to_plain_ce_is_the_true_class_weight():
    logits = random_logits((16, C), seed=23)
    y = random_labels("sparse", (16,), C, seed=24)
    ours = CBSoftmaxLoss(COUNTS, 0.999, from_logits=True, reduction="none")
    plain = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="none"
    )
    np.testing.assert_allclose(
        to_numpy(ours(y, logits)) / to_numpy(plain(y, logits)),
        ours.class_weights[y],
        rtol=RTOL,
    )


# ---------------------------------------------------------------------------
# Numerics: gradients, extreme logits, 16-bit types.
# ---------------------------------------------------------------------------


def _finite_difference(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


@pytest.mark.parametrize(
    "kind, gamma",
    [("softmax", 0), ("sigmoid", 0), ("focal", 0.5), ("focal", 2.0)],
)
def test_gradient_matches_finite_differences(kind, gamma):
    logits = random_logits((4, C), seed=25).astype("f8")
    logits[0, :] = 0.0  # the gradient at z = 0 is sigmoid(0) - t, not -t
    y = random_labels("sparse", (4,), C, seed=26)
    loss = _loss(kind, beta=0.99, gamma=gamma, from_logits=True)
    weights = loss.class_weights
    _, grad = value_and_grad(lambda z: loss(y, z), logits)
    want = _finite_difference(
        lambda z: _reference(kind, y, z, weights, True, gamma).mean(), logits
    )
    np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("gamma", [0.25, 1.0, 2.0])
@pytest.mark.parametrize("magnitude", [30.0, 100.0, 1e4])
def test_extreme_logits_give_finite_values_and_gradients(
    kind, gamma, magnitude
):
    y = np.array([0, 1, 2, 3])
    logits = np.full((4, C), -magnitude, "f4")
    logits[0, 0] = magnitude  # confident and right
    logits[1, 0] = magnitude  # confident and wrong
    logits[2] = magnitude  # everything on
    logits[3, 3] = 0.0
    loss = _loss(
        kind, beta=0.999, gamma=gamma, from_logits=True, reduction="none"
    )
    value = to_numpy(loss(y, logits))
    want = _reference(kind, y, logits, loss.class_weights, True, gamma)
    np.testing.assert_allclose(value, want, rtol=1e-5, atol=ATOL)
    mean_loss = _loss(kind, beta=0.999, gamma=gamma, from_logits=True)
    total, grad = value_and_grad(lambda z: mean_loss(y, z), logits)
    assert np.isfinite(total) and np.all(np.isfinite(grad))


def _label_form(form, rng, rows, classes):
    """Labels of one form and their dense float64 targets."""
    ids = rng.integers(0, classes, rows)
    dense = np.eye(classes)[ids]
    if form == "sparse":
        return ids, dense
    if form == "sparse_trailing_1":
        return ids[:, None], dense
    if form == "onehot":
        return dense.astype("f4"), dense
    if form == "multihot":
        multi = (rng.uniform(size=(rows, classes)) < 0.3).astype("f4")
        return multi, multi.astype("f8")
    soft = rng.uniform(size=(rows, classes)).astype("f4")
    return soft, soft.astype("f8")


@pytest.mark.parametrize(
    "form", ["sparse", "sparse_trailing_1", "onehot", "multihot", "soft"]
)
@pytest.mark.parametrize("weighting", ["sample", "class"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_gradients_match_the_analytic_float64_gradient(form, weighting, gamma):
    # Moderate and confident logits (|z| up to 1e4), every label form: the
    # losses' value and gradient against the float64 formula, not against
    # finite differences (which cannot resolve the tiny gradients there).
    rng = np.random.default_rng(40)
    rows, classes = 6, 8
    magnitude = np.where(
        rng.uniform(size=(rows, classes)) < 0.5,
        rng.uniform(0, 5, (rows, classes)),
        10.0 ** rng.uniform(1, 4, (rows, classes)),
    )
    logits = magnitude * rng.choice([-1.0, 1.0], (rows, classes))
    logits = logits.astype("f4").astype("f8")
    y, dense = _label_form(form, rng, rows, classes)
    weights = class_balanced_weights(np.arange(1, classes + 1) * 10, 0.99)

    def total(z):
        return ops.sum(
            cb_focal_crossentropy(
                y,
                z,
                weights,
                gamma=gamma,
                from_logits=True,
                weighting=weighting,
            )
        )

    value, grad = value_and_grad(total, logits.astype("f4"))
    want_value = reference.focal_loss(
        dense, logits, weights, True, gamma, weighting
    ).sum()
    want = reference.focal_gradient(dense, logits, weights, gamma, weighting)
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    # Soft targets: p - t cancels where p is near t, in any float32 formula.
    atol = 1e-6 if form == "soft" else 1e-35
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_binary_head_gradient_matches_the_analytic_float64_gradient(gamma):
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.3, 1.0])
    z = np.array([[3.0], [-1.0], [1e4], [-1e4], [20.0], [0.0]])
    weights = class_balanced_weights([60, 4], 0.999)

    def total(x):
        return ops.sum(
            cb_focal_crossentropy(t, x, weights, gamma=gamma, from_logits=True)
        )

    value, grad = value_and_grad(total, z.astype("f4"))
    per_position = ((1 - t) * weights[0] + t * weights[1])[:, None]
    want = reference.focal_gradient(t[:, None], z, per_position, gamma, "class")
    target = t[:, None]
    log_p, log_1mp = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)
    bce = -(target * log_p + (1 - target) * log_1mp)
    modulator = np.exp(gamma * (target * log_1mp + (1 - target) * log_p))
    want_value = (per_position * modulator * bce).sum()
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-35)


@pytest.mark.parametrize("kind", ["sigmoid", "focal"])
def test_probabilities_of_exactly_zero_and_one_are_clipped(kind):
    y = np.array([0, 1])
    probs = np.array([[1.0, 0, 0, 0, 0], [1.0, 0, 1, 0, 0]], "f4")
    loss = _loss(kind, gamma=0.5)
    total, grad = value_and_grad(lambda p: loss(y, p), probs)
    assert np.isfinite(total) and np.all(np.isfinite(grad))
    want = _reference(kind, y, probs, loss.class_weights, False, 0.5).mean()
    np.testing.assert_allclose(total, want, rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("from_logits", [True, False])
def test_sixteen_bit_inputs_match_reference(dtype, kind, from_logits):
    logits = random_logits((16, C), seed=27)
    pred = logits if from_logits else _probs(logits, kind)
    pred16 = ops.cast(pred, dtype)
    y = random_labels("sparse", (16,), C, seed=28)
    weights = class_balanced_weights(COUNTS, 0.999)
    got = _function(kind, y, pred16, weights, from_logits, 2.0)
    assert keras.backend.standardize_dtype(got.dtype) == dtype
    want = _reference(kind, y, to_numpy(pred16), weights, from_logits, 2.0)
    np.testing.assert_allclose(to_numpy(got), want, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("dtype", ["mixed_bfloat16", "float16", "bfloat16"])
def test_sixteen_bit_loss_dtype_keeps_large_class_ids(kind, dtype):
    # bfloat16 rounds 257 to 256 and 999 to 1000; float16 rounds 2049.
    num_classes = 3000
    counts = np.arange(1, num_classes + 1)
    y = np.array([257, 999, 2049, 2999])
    # small losses, so that 16-bit outputs can tell right from wrong classes
    logits = np.full((4, num_classes), -10.0, "f4")
    logits[np.arange(4), y] = 4.0
    loss = _loss(
        kind,
        counts=counts,
        beta=0.999,
        gamma=1.0,
        from_logits=True,
        dtype=dtype,
        reduction="none",
    )
    got = to_numpy(loss(y, logits))
    want = _reference(kind, y, logits, loss.class_weights, True, 1.0)
    np.testing.assert_allclose(got, want, rtol=2e-2)
    # and the classes chosen are the right ones, not the rounded neighbours
    wrong = _reference(kind, y - 1, logits, loss.class_weights, True, 1.0)
    assert np.all(np.abs(got - want) < np.abs(wrong - want))


def test_float_sparse_labels_are_class_ids():
    logits = random_logits((6, C), seed=29)
    y = random_labels("sparse", (6,), C, seed=30)
    loss = CBSoftmaxLoss(COUNTS, 0.99, from_logits=True)
    np.testing.assert_allclose(
        to_numpy(loss(y.astype("f4"), logits)),
        to_numpy(loss(y, logits)),
        rtol=RTOL,
    )


# ---------------------------------------------------------------------------
# Compilation, counts set later, training.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("form", ["sparse", "onehot"])
def test_compiled_equals_eager(kind, form):
    logits = random_logits((8, C), seed=31)
    y = random_labels(form, (8,), C, seed=32)
    loss = _loss(kind, beta=0.99, gamma=2.0, from_logits=True)
    eager = to_numpy(loss(y, logits))
    jitted = compiled(lambda a, b: loss(a, b))
    np.testing.assert_allclose(to_numpy(jitted(y, logits)), eager, rtol=1e-5)


def test_set_class_counts_later_and_read_only_views():
    loss = CBFocalLoss(beta=0.99, gamma=2.0, from_logits=True)
    assert loss.class_counts is None and loss.class_weights is None
    logits = random_logits((4, C))
    y = random_labels("sparse", (4,), C)
    with pytest.raises(ValueError, match="set_class_counts.*ClassCounter"):
        loss(y, logits)
    loss.set_class_counts(COUNTS)
    np.testing.assert_allclose(
        loss.class_weights, reference.cb_weights(COUNTS, 0.99)
    )
    view = loss.class_weights
    view[:] = 0.0
    counts_view = loss.class_counts
    counts_view[:] = 0.0
    np.testing.assert_allclose(
        loss.class_weights, reference.cb_weights(COUNTS, 0.99)
    )
    np.testing.assert_array_equal(loss.class_counts, COUNTS)
    with pytest.raises(AttributeError):
        loss.class_weights = [1.0] * C


def test_unset_counts_pass_keras_symbolic_build():
    # The JAX trainer evaluates the loss for shapes inside a SymbolicScope
    # before ClassCounter has run.
    loss = CBSoftmaxLoss(beta=0.99, from_logits=True, reduction="none")
    y = random_labels("sparse", (4,), C)
    with keras.SymbolicScope():
        assert tuple(loss(y, random_logits((4, C))).shape) == (4,)
        symbolic = loss(
            keras.KerasTensor((4,), dtype="int32"), keras.KerasTensor((4, C))
        )
        assert tuple(symbolic.shape) == (4,)
    with pytest.raises(ValueError, match="no class counts"):
        loss(y, random_logits((4, C)))


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_short_fit_reduces_the_loss(kind):
    rng = np.random.default_rng(33)
    counts = np.array([300, 60, 12])
    y = np.repeat(np.arange(3), counts)
    x = (rng.normal(0, 1, (len(y), 4)) + y[:, None] * 1.5).astype("f4")
    keras.utils.set_random_seed(0)
    head_bias = "zeros" if kind == "softmax" else prior_bias_initializer(3)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, bias_initializer=head_bias)]
    )
    loss = _loss(kind, counts=counts, beta=0.999, gamma=1.0, from_logits=True)
    after = assert_short_fit_learns(model, loss, x, y)
    # the reported loss is the mean class-balanced loss of the model
    want = _reference(
        kind, y, model.predict(x, verbose=0), loss.class_weights, True, 1.0
    ).mean()
    np.testing.assert_allclose(after, want, rtol=1e-4)


# ---------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_wrong_number_of_classes_names_both_numbers(kind):
    loss = _loss(kind, from_logits=True)
    with pytest.raises(ValueError, match=r"7 classes.*5 class weights"):
        loss(np.array([0, 1]), random_logits((2, 7)))


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("bad", [5, -1, 1000])
def test_out_of_range_labels_raise_eagerly(kind, bad):
    loss = _loss(kind, from_logits=True)
    with pytest.raises(ValueError, match=rf"\[0, 5\).*{bad}"):
        loss(np.array([0, bad]), random_logits((2, C)))


def test_non_integer_float_labels_raise():
    loss = CBSoftmaxLoss(COUNTS, from_logits=True)
    with pytest.raises(ValueError, match=r"2\.5"):
        loss(np.array([0.0, 2.5], "f4"), random_logits((2, C)))


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_out_of_range_labels_give_nan_in_compiled_code(kind):
    loss = _loss(kind, from_logits=True, reduction="none")
    if BACKEND == "torch":
        pytest.skip("torch runs eagerly and raises (tested above)")
    out = to_numpy(
        compiled(lambda a, b: loss(a, b))(
            np.array([0, 5, -1], "int32"), random_logits((3, C))
        )
    )
    assert np.isfinite(out[0]) and np.isnan(out[1]) and np.isnan(out[2])


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_nan_predictions_give_nan_loss(kind):
    logits = random_logits((2, C))
    logits[1, 2] = np.nan
    out = to_numpy(
        _loss(kind, from_logits=True, reduction="none")(
            np.array([0, 1]), logits
        )
    )
    assert np.isfinite(out[0]) and np.isnan(out[1])


def test_mismatched_label_shape_is_shown():
    loss = CBSoftmaxLoss(COUNTS, from_logits=True)
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 3, 1\)"):
        loss(np.zeros((2, 3, 1)), random_logits((2, C)))
    with pytest.raises(ValueError, match="Labels and predictions"):
        loss(np.zeros((2, 3), "f4"), random_logits((2, C)))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"beta": 1.0}, ValueError, "beta"),
        ({"beta": -0.1}, ValueError, "beta"),
        ({"beta": "0.9"}, TypeError, "beta"),
        ({"gamma": -1.0}, ValueError, "gamma"),
        ({"gamma": float("nan")}, ValueError, "gamma"),
        ({"weighting": "batch"}, ValueError, "weighting"),
        ({"from_logits": "yes"}, TypeError, "from_logits"),
        ({"counts": [1, -2, 3]}, ValueError, "non-negative"),
        ({"counts": [[1, 2]]}, ValueError, "1-D"),
        ({"counts": [1, np.inf]}, ValueError, "finite"),
        ({"reduction": "avg"}, ValueError, "reduction"),
        ({"ignore_class": 2.5}, TypeError, "ignore_class"),
        ({"ignore_class": "void"}, TypeError, "ignore_class"),
        ({"ignore_class": True}, TypeError, "ignore_class"),
        ({"counts": [7]}, ValueError, r"\[n_neg, n_pos\]"),
    ],
)
def test_bad_arguments_raise_in_the_constructor(kwargs, error, match):
    kwargs = dict(kwargs)
    counts = kwargs.pop("counts", COUNTS)
    with pytest.raises(error, match=match):
        CBFocalLoss(counts, **kwargs)


def test_bad_class_weights_for_functions():
    with pytest.raises(ValueError, match="1-D"):
        cb_softmax_crossentropy([0], random_logits((1, C)), [[1.0] * C])
    with pytest.raises(ValueError, match="weighting"):
        cb_sigmoid_crossentropy(
            [0], random_logits((1, C)), [1.0] * C, weighting="batch"
        )


# ---------------------------------------------------------------------------
# Config.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_config_round_trip_is_plain_json(kind):
    kwargs = {
        "from_logits": True,
        "reduction": "sum",
        "name": "my_loss",
        "dtype": "mixed_bfloat16",
    }
    if kind != "softmax":
        kwargs["weighting"] = "class"
    loss = _loss(kind, beta=0.99, gamma=0.5, **kwargs)
    config = loss.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["class_counts"] == COUNTS.tolist()
    assert config["beta"] == 0.99
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    assert clone.dtype == "bfloat16"
    np.testing.assert_array_equal(clone.class_weights, loss.class_weights)
    if kind == "focal":
        assert config["gamma"] == 0.5


def test_config_without_counts_round_trips():
    loss = CBFocalLoss(beta=0.9)
    clone = CBFocalLoss.from_config(loss.get_config())
    assert clone.class_counts is None and clone.beta == 0.9


def test_positional_arguments_read_as_users_write_them():
    loss = CBFocalLoss(COUNTS, 0.9999, 2.0)
    assert (loss.beta, loss.gamma) == (0.9999, 2.0)
    assert loss.from_logits is False and loss.weighting == "sample"
    assert loss.name == "cb_focal_loss"


# ---------------------------------------------------------------------------
# A one-unit binary head: the two classes {0: negative, 1: positive}.
# ---------------------------------------------------------------------------

BINARY_COUNTS = [60, 4]
BINARY_LABELS = np.array([[0], [0], [1], [0]])
BINARY_LOGITS = np.array([[3.0], [0.5], [-1.0], [-2.0]], "f4")
# Values of issue 9, from the float64 reference at beta 0.999, gamma 2.
BINARY_WEIGHTS = [0.12831, 1.87169]
BINARY_LOSSES = [0.35493, 0.048424, 1.31368, 0.00023141]


@pytest.mark.parametrize("labels", ["b1_int", "b_int", "b1_float", "b_float"])
@pytest.mark.parametrize("weighting", ["sample", "class"])
def test_binary_head_values_of_the_issue(labels, weighting):
    y = {
        "b1_int": BINARY_LABELS,
        "b_int": BINARY_LABELS[:, 0],
        "b1_float": BINARY_LABELS.astype("f4"),
        "b_float": BINARY_LABELS[:, 0].astype("f4"),
    }[labels]
    want = reference.binary_head_loss(
        BINARY_LABELS, BINARY_LOGITS, BINARY_COUNTS, 0.999, 2.0
    )
    np.testing.assert_allclose(want, BINARY_LOSSES, rtol=5e-5)
    loss = CBFocalLoss(
        BINARY_COUNTS,
        0.999,
        2.0,
        from_logits=True,
        weighting=weighting,
        reduction="none",
    )
    np.testing.assert_allclose(loss.class_weights, BINARY_WEIGHTS, rtol=5e-5)
    np.testing.assert_allclose(
        reference.cb_weights(BINARY_COUNTS, 0.999),
        loss.class_weights,
        rtol=1e-12,
    )
    got = loss(y, BINARY_LOGITS)
    assert tuple(got.shape) == (4,)
    np.testing.assert_allclose(to_numpy(got), want, rtol=RTOL, atol=ATOL)
    function = cb_focal_crossentropy(
        y,
        BINARY_LOGITS,
        loss.class_weights,
        gamma=2.0,
        from_logits=True,
        weighting=weighting,
    )
    np.testing.assert_allclose(to_numpy(function), want, rtol=RTOL, atol=ATOL)
    mean = CBFocalLoss(BINARY_COUNTS, 0.999, 2.0, from_logits=True)
    jitted = compiled(lambda a, b: mean(a, b))
    np.testing.assert_allclose(
        to_numpy(jitted(y, BINARY_LOGITS)), want.mean(), rtol=1e-5
    )


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("soft", [False, True])
def test_binary_head_sigmoid_and_soft_targets_match_reference(
    from_logits, soft
):
    rng = np.random.default_rng(40)
    t = rng.integers(0, 2, (12, 1)).astype("f4")
    if soft:
        t = rng.random((12, 1)).astype("f4")
    logits = rng.normal(0, 2, (12, 1)).astype("f4")
    pred = logits if from_logits else _probs(logits, "sigmoid")
    for gamma, loss in (
        (0.0, CBSigmoidLoss([300, 20], 0.99, from_logits=from_logits)),
        (1.5, CBFocalLoss([300, 20], 0.99, 1.5, from_logits=from_logits)),
    ):
        want = reference.binary_head_loss(t, logits, [300, 20], 0.99, gamma)
        np.testing.assert_allclose(
            to_numpy(loss(t, pred)), want.mean(), rtol=1e-5
        )
        per_sample = (
            cb_sigmoid_crossentropy(
                t, pred, loss.class_weights, from_logits=from_logits
            )
            if gamma == 0
            else cb_focal_crossentropy(
                t, pred, loss.class_weights, gamma, from_logits=from_logits
            )
        )
        np.testing.assert_allclose(to_numpy(per_sample), want, rtol=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_binary_head_is_keras_balanced_binary_focal_times_weight_sum(gamma):
    # Keras' apply_class_balancing weights positives by alpha and negatives
    # by 1 - alpha: alpha = w_1 / (w_0 + w_1) gives our loss / (w_0 + w_1).
    rng = np.random.default_rng(41)
    t = rng.integers(0, 2, (16, 1)).astype("f4")
    logits = rng.normal(0, 2, (16, 1)).astype("f4")
    ours = CBFocalLoss([500, 25], 0.999, gamma, from_logits=True)
    w_neg, w_pos = ours.class_weights
    keras_focal = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True,
        alpha=w_pos / (w_neg + w_pos),
        gamma=gamma,
        from_logits=True,
    )
    np.testing.assert_allclose(
        to_numpy(ours(t, logits)),
        (w_neg + w_pos) * to_numpy(keras_focal(t, logits)),
        rtol=1e-5,
    )


def test_binary_head_gradients_are_finite_at_extreme_logits():
    t = np.array([[0.0], [1.0], [1.0], [0.0]], "f4")
    logits = np.array([[100.0], [-100.0], [1e4], [0.0]], "f4")
    loss = CBFocalLoss(BINARY_COUNTS, 0.999, 0.5, from_logits=True)
    value, grad = value_and_grad(lambda z: loss(t, z), logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_softmax_on_a_one_unit_head_says_to_use_a_sigmoid_loss():
    loss = CBSoftmaxLoss(BINARY_COUNTS, from_logits=True)
    with pytest.raises(ValueError, match="CBSigmoidLoss.*CBFocalLoss"):
        loss(BINARY_LABELS, BINARY_LOGITS)
    with pytest.raises(ValueError, match="softmax over one output unit"):
        cb_softmax_crossentropy(BINARY_LABELS, BINARY_LOGITS, [1.0, 1.0])


def test_one_count_for_a_one_unit_head_says_pass_two_and_that_works():
    with pytest.raises(ValueError, match=r"\[n_neg, n_pos\]"):
        CBFocalLoss([4], 0.999, 2.0, from_logits=True)
    with pytest.raises(ValueError, match=r"\[n_neg, n_pos\]"):
        CBSigmoidLoss().set_class_counts([4])
    with pytest.raises(ValueError, match=r"one-unit head.*\[w_neg, w_pos\]"):
        cb_focal_crossentropy(BINARY_LABELS, BINARY_LOGITS, [1.0])
    with pytest.raises(ValueError, match=r"one-unit head.*Received 3"):
        CBSigmoidLoss([1, 2, 3], from_logits=True)(BINARY_LABELS, BINARY_LOGITS)
    # following the advice: the counts of both classes
    fixed = CBFocalLoss(
        BINARY_COUNTS, 0.999, 2.0, from_logits=True, reduction="none"
    )
    np.testing.assert_allclose(
        to_numpy(fixed(BINARY_LABELS, BINARY_LOGITS)), BINARY_LOSSES, rtol=5e-5
    )


@pytest.mark.parametrize("bad", [2.0, -1.0, 1.5])
def test_binary_targets_outside_zero_one_raise_eagerly(bad):
    loss = CBFocalLoss(BINARY_COUNTS, from_logits=True)
    with pytest.raises(ValueError, match=r"targets in \[0, 1\]"):
        loss(np.array([[0.0], [bad]], "f4"), BINARY_LOGITS[:2])


def test_class_id_two_on_a_one_unit_head_says_use_c_units_and_that_works():
    loss = CBSigmoidLoss([50, 30], from_logits=True, reduction="none")
    with pytest.raises(
        ValueError,
        match=r"one-unit output takes 0/1 \(or "
        r"soft in \[0, 1\]\).*C > 2 classes.*C output units",
    ) as error:
        loss(np.array([0, 2]), BINARY_LOGITS[:2])
    assert "one-hot" not in str(error.value)
    # The fix: three classes, three output units, class ids in [0, 3).
    counts = [50, 30, 20]
    fixed = CBSigmoidLoss(counts, from_logits=True, reduction="none")
    labels = np.array([0, 2])
    logits = np.array([[1.0, -0.5, 0.2], [-1.0, 0.3, 2.0]], "f4")
    expected = reference.sigmoid_loss(
        labels, logits, reference.cb_weights(counts, 0.999), True
    )
    np.testing.assert_allclose(
        to_numpy(fixed(labels, logits)), expected, rtol=1e-5
    )


def test_binary_head_trains_in_fit():
    rng = np.random.default_rng(42)
    y = (np.arange(400) < 20).astype("f4")  # 380 negatives, 20 positives
    x = (rng.normal(0, 1, (400, 3)) + y[:, None] * 2.0).astype("f4")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(
                1, bias_initializer=prior_bias_initializer(0.05)
            ),
        ]
    )
    loss = CBFocalLoss([380, 20], 0.999, 2.0, from_logits=True)
    model.compile(keras.optimizers.Adam(0.05), loss=loss, **fit_kwargs())
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=5, batch_size=50, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and after < before
    want = reference.binary_head_loss(
        y, model.predict(x, verbose=0), [380, 20], 0.999, 2.0
    ).mean()
    np.testing.assert_allclose(after, want, rtol=1e-4)


# ---------------------------------------------------------------------------
# ignore_class, as in Keras' SparseCategoricalCrossentropy.
# ---------------------------------------------------------------------------

VOID_COUNTS = [10, 5, 2]
VOID_LABELS = np.array([[0, 1, 255], [2, 0, 255]])
# Issue 9: w at beta 0.9, and mean(w[y] over the 4 labelled positions) log 3.
VOID_WEIGHTS = [0.49846, 0.79280, 1.70874]
VOID_LOSS = 0.96086


def test_ignore_class_value_of_the_issue_eager_and_compiled():
    logits = np.zeros((2, 3, 3), "f4")
    loss = CBSoftmaxLoss(VOID_COUNTS, 0.9, from_logits=True, ignore_class=255)
    np.testing.assert_allclose(loss.class_weights, VOID_WEIGHTS, rtol=5e-5)
    keep = VOID_LABELS != 255
    per_position = reference.softmax_loss(
        np.where(keep, VOID_LABELS, 0), logits, loss.class_weights, True
    )
    want = reference.masked_mean(per_position, keep)
    np.testing.assert_allclose(want, VOID_LOSS, rtol=5e-5)
    np.testing.assert_allclose(
        to_numpy(loss(VOID_LABELS, logits)), want, rtol=RTOL
    )
    jitted = compiled(lambda a, b: loss(a, b))
    np.testing.assert_allclose(
        to_numpy(jitted(VOID_LABELS, logits)), want, rtol=RTOL
    )
    unreduced = CBSoftmaxLoss(
        VOID_COUNTS, 0.9, from_logits=True, ignore_class=255, reduction="none"
    )
    got = to_numpy(unreduced(VOID_LABELS, logits))
    np.testing.assert_allclose(
        got, np.where(keep, per_position, 0.0), rtol=RTOL
    )


@pytest.mark.parametrize("ignore_class", [255, -1])
@pytest.mark.parametrize("sparse_1", [False, True])
def test_ignore_class_equals_keras_sparse_ce_with_weights(
    ignore_class, sparse_1
):
    logits = random_logits((3, 4, C), seed=43)
    y = random_labels("sparse", (3, 4), C, seed=44)
    y[0, 1] = y[2, 3] = y[1, 0] = ignore_class
    y_in = y[..., None] if sparse_1 else y
    ours = CBSoftmaxLoss(
        COUNTS, 0.999, from_logits=True, ignore_class=ignore_class
    )
    keras_loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=ignore_class
    )
    weight = ours.class_weights[np.where(y == ignore_class, 0, y)]
    np.testing.assert_allclose(
        to_numpy(ours(y_in, logits)),
        to_numpy(keras_loss(y, logits, sample_weight=weight)),
        rtol=RTOL,
    )


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
def test_ignore_class_with_sample_weight_matches_reference(kind, reduction):
    logits = random_logits((4, 5, C), seed=45)
    y = random_labels("sparse", (4, 5), C, seed=46)
    y[:, 3:] = -1  # padded sequence positions
    keep = y != -1
    sample_weight = np.random.default_rng(47).random((4, 5)).astype("f4")
    loss = _loss(
        kind,
        beta=0.99,
        gamma=2.0,
        from_logits=True,
        ignore_class=-1,
        reduction=reduction,
    )
    per_position = _reference(
        kind, np.where(keep, y, 0), logits, loss.class_weights, True, 2.0
    )
    want = (per_position * sample_weight)[keep].sum()
    if reduction == "sum_over_batch_size":
        want = reference.masked_mean(per_position, keep, sample_weight)
    got = to_numpy(loss(y, logits, sample_weight=sample_weight))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_ignored_positions_get_exactly_zero_gradient_and_no_nan(kind):
    logits = random_logits((2, 3, C), seed=48)
    logits[0, 2] = np.nan  # whatever a model outputs at a padded position
    logits[1, 2] = 1e30
    y = np.array([[0, 4, 255], [2, 1, 255]])
    loss = _loss(kind, beta=0.99, gamma=0.5, from_logits=True, ignore_class=255)
    value, grad = value_and_grad(lambda z: loss(y, z), logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.all(grad[:, 2] == 0.0) and np.any(grad[:, :2] != 0.0)
    compiled_value = to_numpy(compiled(lambda a, b: loss(a, b))(y, logits))
    np.testing.assert_allclose(compiled_value, value, rtol=1e-5)


def test_all_positions_ignored_give_zero_not_nan():
    loss = CBFocalLoss(COUNTS, from_logits=True, ignore_class=-1)
    y = np.full((2, 3), -1)
    assert to_numpy(loss(y, random_logits((2, 3, C)))) == 0.0
    jitted = compiled(lambda a, b: loss(a, b))
    assert to_numpy(jitted(y, random_logits((2, 3, C)))) == 0.0


def test_ignore_class_on_a_binary_head():
    y = np.array([[0], [-1], [1], [0]])
    loss = CBFocalLoss(
        BINARY_COUNTS, 0.999, 2.0, from_logits=True, ignore_class=-1
    )
    keep = np.array([True, False, True, True])
    want = reference.masked_mean(BINARY_LOSSES, keep)
    np.testing.assert_allclose(
        to_numpy(loss(y, BINARY_LOGITS)), want, rtol=5e-5
    )


def test_ignore_class_trains_in_fit_on_padded_tokens():
    rng = np.random.default_rng(50)
    y = rng.integers(0, 3, (64, 6))
    y[:, 4:] = -1  # padding
    x = rng.normal(0, 1, (64, 6, 2)).astype("f4")
    x[..., 0] += np.where(y >= 0, y, 0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 2)), keras.layers.Dense(3)])
    loss = CBSoftmaxLoss([100, 50, 10], 0.99, from_logits=True, ignore_class=-1)
    model.compile(keras.optimizers.Adam(0.05), loss=loss, **fit_kwargs())
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = model.evaluate(x, y, verbose=0)
    keep = y != -1
    per_position = reference.softmax_loss(
        np.where(keep, y, 0),
        model.predict(x, verbose=0),
        loss.class_weights,
        True,
    )
    np.testing.assert_allclose(
        after, reference.masked_mean(per_position, keep), rtol=1e-4
    )


# ---------------------------------------------------------------------------
# set_beta and the counts' dtype.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_set_beta_recomputes_the_weights_like_a_new_loss(kind):
    loss = _loss(kind, beta=0.0, from_logits=True)
    np.testing.assert_array_equal(loss.class_weights, np.ones(C))
    loss.set_beta(0.9999)
    assert loss.beta == 0.9999
    np.testing.assert_allclose(
        loss.class_weights, reference.cb_weights(COUNTS, 0.9999), rtol=1e-12
    )
    logits = random_logits((8, C), seed=51)
    y = random_labels("sparse", (8,), C, seed=52)
    want = _reference(
        kind, y, logits, reference.cb_weights(COUNTS, 0.9999), True, 1.0
    ).mean()
    np.testing.assert_allclose(to_numpy(loss(y, logits)), want, rtol=RTOL)
    clone = type(loss).from_config(loss.get_config())
    assert clone.get_config()["beta"] == 0.9999
    np.testing.assert_array_equal(clone.class_weights, loss.class_weights)


@pytest.mark.parametrize(
    "beta, error", [(1.0, ValueError), (-0.5, ValueError), ("0.9", TypeError)]
)
def test_invalid_set_beta_raises_and_keeps_the_old_state(beta, error):
    loss = CBFocalLoss(COUNTS, 0.99)
    weights = loss.class_weights
    with pytest.raises(error, match="beta"):
        loss.set_beta(beta)
    assert loss.beta == 0.99
    np.testing.assert_array_equal(loss.class_weights, weights)


def test_set_beta_before_the_counts():
    loss = CBSigmoidLoss(beta=0.0)
    loss.set_beta(0.99)
    assert loss.class_weights is None
    loss.set_class_counts(COUNTS)
    np.testing.assert_allclose(
        loss.class_weights, reference.cb_weights(COUNTS, 0.99), rtol=1e-12
    )


def test_class_counts_keep_integers_as_int64_and_floats_as_float64():
    assert CBFocalLoss([5, 3]).class_counts.dtype == np.int64
    assert repr(CBFocalLoss([5, 3]).class_counts) == "array([5, 3])"
    fractional = CBFocalLoss([5.5, 3.0]).class_counts
    assert fractional.dtype == np.float64
    np.testing.assert_array_equal(fractional, [5.5, 3.0])


def test_ignore_class_in_config_and_attribute():
    loss = CBFocalLoss(COUNTS, ignore_class=255)
    assert loss.ignore_class == 255
    config = loss.get_config()
    assert config["ignore_class"] == 255
    assert CBFocalLoss.from_config(config).ignore_class == 255
    assert CBSoftmaxLoss(COUNTS).ignore_class is None


def test_unset_counts_pass_keras_symbolic_build_of_a_binary_head():
    loss = CBFocalLoss(gamma=2.0, from_logits=True, reduction="none")
    with keras.SymbolicScope():
        out = loss(keras.KerasTensor((4, 1)), keras.KerasTensor((4, 1)))
        assert tuple(out.shape) == (4,)


def test_ignore_class_on_uint8_masks():
    logits = random_logits((2, 3, 3), seed=53)
    mask = np.array([[0, 1, 255], [2, 255, 0]], np.uint8)
    keep = mask != 255
    per_position = reference.softmax_loss(
        np.where(keep, mask, 0), logits, [1.0, 1.0, 1.0], True
    )
    void = cb_softmax_crossentropy(
        mask, logits, [1.0, 1.0, 1.0], from_logits=True, ignore_class=255
    )
    np.testing.assert_allclose(
        to_numpy(void), np.where(keep, per_position, 0.0), rtol=RTOL
    )
    # -1 is not 255 in uint8: nothing is skipped, and 255 is out of range
    with pytest.raises(ValueError, match=r"\[0, 3\).*255"):
        cb_softmax_crossentropy(
            mask, logits, [1.0, 1.0, 1.0], from_logits=True, ignore_class=-1
        )
