"""Loss values, identities, numerics and errors, on the active Keras backend.

`tests/test_backends.py` reruns this module under JAX and PyTorch.
"""

import json

import keras
import numpy as np
import pytest
from keras import ops

import reference
from backend_utils import BACKEND
from backend_utils import compiled
from backend_utils import fit_kwargs
from backend_utils import make_loss
from backend_utils import to_numpy
from backend_utils import value_and_grad
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


def _logits(shape, seed=0, scale=3.0):
    return np.random.default_rng(seed).normal(0, scale, shape).astype("f4")


def _probs(logits, kind):
    if kind == "softmax":
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).astype("f4")
    return (1 / (1 + np.exp(-logits.astype("f8")))).astype("f4")


def _labels(form, shape, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, C, shape)
    if form == "sparse":
        return ids
    if form == "sparse_1":
        return ids[..., None]
    if form == "onehot":
        return np.eye(C, dtype="f4")[ids]
    if form == "multihot":
        return (rng.random(shape + (C,)) < 0.3).astype("f4")
    if form == "soft":  # label smoothing 0.1 on top of one-hot
        return (np.eye(C)[ids] * 0.9 + 0.1 / C).astype("f4")
    raise ValueError(form)


_reference = reference.loss_by_kind


def _function(kind, y, pred, weights, from_logits, gamma=0.0, weighting="sample"):
    if kind == "softmax":
        return cb_softmax_crossentropy(y, pred, weights, from_logits=from_logits)
    if kind == "sigmoid":
        return cb_sigmoid_crossentropy(
            y, pred, weights, from_logits=from_logits, weighting=weighting
        )
    return cb_focal_crossentropy(
        y, pred, weights, gamma=gamma, from_logits=from_logits,
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
def test_per_sample_values_match_reference(kind, form, from_logits, gamma, beta):
    logits = _logits((16, C))
    pred = logits if from_logits else _probs(logits, kind)
    y = _labels(form, (16,))
    weights = class_balanced_weights(COUNTS, beta)
    got = _function(kind, y, pred, weights, from_logits, gamma)
    assert tuple(got.shape) == (16,)
    want = _reference(kind, y, pred, weights, from_logits, gamma)
    np.testing.assert_allclose(to_numpy(got), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_loss_class_reduces_to_the_mean_and_applies_sample_weight(kind):
    logits = _logits((12, C), seed=3)
    y = _labels("sparse", (12,), seed=4)
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
    unreduced = _loss(kind, beta=0.99, gamma=2.0, from_logits=True,
                      reduction="none")
    np.testing.assert_allclose(
        to_numpy(unreduced(y, logits)), per_sample, rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("form", ["sparse", "sparse_1", "onehot"])
def test_segmentation_maps(kind, form):
    logits = _logits((2, 6, 5, C), seed=7)
    y = _labels(form, (2, 6, 5), seed=8)
    loss = _loss(kind, beta=0.999, gamma=1.5, from_logits=True,
                 reduction="none")
    got = loss(y, logits)
    assert tuple(got.shape) == (2, 6, 5)
    want = _reference(kind, y, logits, loss.class_weights, True, 1.5)
    np.testing.assert_allclose(to_numpy(got), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind, gamma", [("sigmoid", 0.0), ("focal", 2.0)])
@pytest.mark.parametrize("form", ["multihot", "onehot", "sparse"])
def test_class_weighting_weights_each_binary_term_by_its_class(kind, gamma, form):
    logits = _logits((10, C), seed=9)
    y = _labels(form, (10,), seed=10)
    if form == "multihot":
        y[0] = 0.0  # a row without positives must still get a loss
    loss = _loss(kind, beta=0.999, gamma=gamma, from_logits=True,
                 weighting="class", reduction="none")
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
    logits = _logits((20, C), seed=11)
    pred = logits if from_logits else _probs(logits, "softmax")
    y = _labels("sparse", (20,), seed=12)
    ours = CBSoftmaxLoss(COUNTS, beta=0.0, from_logits=from_logits)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    dense = keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    np.testing.assert_allclose(
        to_numpy(ours(y, pred)), to_numpy(sparse(y, pred)), rtol=RTOL, atol=ATOL
    )
    onehot = np.eye(C, dtype="f4")[y]
    np.testing.assert_allclose(
        to_numpy(ours(onehot, pred)), to_numpy(dense(onehot, pred)), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999])
def test_cb_softmax_equals_keras_sparse_ce_with_sample_weight(beta):
    logits = _logits((32, C), seed=13)
    y = _labels("sparse", (32,), seed=14)
    ours = CBSoftmaxLoss(COUNTS, beta, from_logits=True)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        to_numpy(ours(y, logits)),
        to_numpy(keras_loss(y, logits, sample_weight=ours.class_weights[y])),
        rtol=RTOL,
    )


@pytest.mark.parametrize("from_logits", [True, False])
def test_beta_zero_sigmoid_is_num_classes_times_keras_bce(from_logits):
    logits = _logits((20, C), seed=15)
    pred = logits if from_logits else _probs(logits, "sigmoid")
    y = _labels("multihot", (20,), seed=16)
    y[y.sum(-1) == 0, 0] = 1.0  # beta = 0 weights a row by its positives
    y = y * (1 / y.sum(-1, keepdims=True))  # ... so make them sum to 1
    ours = CBSigmoidLoss(COUNTS, 0.0, from_logits=from_logits)
    keras_bce = keras.losses.BinaryCrossentropy(from_logits=from_logits)
    np.testing.assert_allclose(
        to_numpy(ours(y, pred)), C * to_numpy(keras_bce(y, pred)), rtol=1e-5
    )


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_beta_zero_focal_is_num_classes_times_keras_binary_focal(gamma):
    logits = _logits((20, C), seed=17, scale=2.0)
    y = _labels("onehot", (20,), seed=18)
    ours = CBFocalLoss(COUNTS, 0.0, gamma, from_logits=True)
    keras_focal = keras.losses.BinaryFocalCrossentropy(
        gamma=gamma, from_logits=True
    )
    np.testing.assert_allclose(
        to_numpy(ours(y, logits)), C * to_numpy(keras_focal(y, logits)),
        rtol=1e-5,
    )


@pytest.mark.parametrize("form", ["sparse", "onehot", "soft"])
@pytest.mark.parametrize("from_logits", [True, False])
def test_focal_with_gamma_zero_is_cb_sigmoid(form, from_logits):
    logits = _logits((16, C), seed=19)
    pred = logits if from_logits else _probs(logits, "sigmoid")
    y = _labels(form, (16,), seed=20)
    focal = CBFocalLoss(COUNTS, 0.99, 0.0, from_logits=from_logits)
    sigmoid = CBSigmoidLoss(COUNTS, 0.99, from_logits=from_logits)
    np.testing.assert_array_equal(
        to_numpy(focal(y, pred)), to_numpy(sigmoid(y, pred))
    )


def test_focal_matches_textbook_pow_form():
    logits = _logits((16, C), seed=21, scale=2.0)
    y = _labels("sparse", (16,), seed=22)
    loss = CBFocalLoss(COUNTS, 0.999, 2.0, from_logits=True, reduction="none")
    np.testing.assert_allclose(
        to_numpy(loss(y, logits)),
        reference.focal_loss_pow(y, logits, loss.class_weights, 2.0),
        rtol=RTOL,
    )


def test_ratio_to_plain_ce_is_the_true_class_weight():
    logits = _logits((16, C), seed=23)
    y = _labels("sparse", (16,), seed=24)
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
    "kind, gamma", [("softmax", 0), ("sigmoid", 0), ("focal", 0.5),
                    ("focal", 2.0)]
)
def test_gradient_matches_finite_differences(kind, gamma):
    logits = _logits((4, C), seed=25).astype("f8")
    logits[0, :] = 0.0  # the gradient at z = 0 is sigmoid(0) - t, not -t
    y = _labels("sparse", (4,), seed=26)
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
def test_extreme_logits_give_finite_values_and_gradients(kind, gamma, magnitude):
    y = np.array([0, 1, 2, 3])
    logits = np.full((4, C), -magnitude, "f4")
    logits[0, 0] = magnitude  # confident and right
    logits[1, 0] = magnitude  # confident and wrong
    logits[2] = magnitude  # everything on
    logits[3, 3] = 0.0
    loss = _loss(kind, beta=0.999, gamma=gamma, from_logits=True,
                 reduction="none")
    value = to_numpy(loss(y, logits))
    want = _reference(kind, y, logits, loss.class_weights, True, gamma)
    np.testing.assert_allclose(value, want, rtol=1e-5, atol=ATOL)
    mean_loss = _loss(kind, beta=0.999, gamma=gamma, from_logits=True)
    total, grad = value_and_grad(lambda z: mean_loss(y, z), logits)
    assert np.isfinite(total) and np.all(np.isfinite(grad))


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
    logits = _logits((16, C), seed=27)
    pred = logits if from_logits else _probs(logits, kind)
    pred16 = ops.cast(pred, dtype)
    y = _labels("sparse", (16,), seed=28)
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
    loss = _loss(kind, counts=counts, beta=0.999, gamma=1.0,
                 from_logits=True, dtype=dtype, reduction="none")
    got = to_numpy(loss(y, logits))
    want = _reference(kind, y, logits, loss.class_weights, True, 1.0)
    np.testing.assert_allclose(got, want, rtol=2e-2)
    # and the classes chosen are the right ones, not the rounded neighbours
    wrong = _reference(kind, y - 1, logits, loss.class_weights, True, 1.0)
    assert np.all(np.abs(got - want) < np.abs(wrong - want))


def test_float_sparse_labels_are_class_ids():
    logits = _logits((6, C), seed=29)
    y = _labels("sparse", (6,), seed=30)
    loss = CBSoftmaxLoss(COUNTS, 0.99, from_logits=True)
    np.testing.assert_allclose(
        to_numpy(loss(y.astype("f4"), logits)), to_numpy(loss(y, logits)),
        rtol=RTOL,
    )


# ---------------------------------------------------------------------------
# Compilation, counts set later, training.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("form", ["sparse", "onehot"])
def test_compiled_equals_eager(kind, form):
    logits = _logits((8, C), seed=31)
    y = _labels(form, (8,), seed=32)
    loss = _loss(kind, beta=0.99, gamma=2.0, from_logits=True)
    eager = to_numpy(loss(y, logits))
    jitted = compiled(lambda a, b: loss(a, b))
    np.testing.assert_allclose(to_numpy(jitted(y, logits)), eager, rtol=1e-5)


def test_set_class_counts_later_and_read_only_views():
    loss = CBFocalLoss(beta=0.99, gamma=2.0, from_logits=True)
    assert loss.class_counts is None and loss.class_weights is None
    logits = _logits((4, C))
    y = _labels("sparse", (4,))
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
    y = _labels("sparse", (4,))
    with keras.SymbolicScope():
        assert tuple(loss(y, _logits((4, C))).shape) == (4,)
        symbolic = loss(keras.KerasTensor((4,), dtype="int32"),
                        keras.KerasTensor((4, C)))
        assert tuple(symbolic.shape) == (4,)
    with pytest.raises(ValueError, match="no class counts"):
        loss(y, _logits((4, C)))


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
    model.compile(keras.optimizers.Adam(0.05), loss=loss, **fit_kwargs())
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert after < 0.7 * before
    # the reported loss is the mean class-balanced loss of the model
    want = _reference(kind, y, model.predict(x, verbose=0), loss.class_weights,
                      True, 1.0).mean()
    np.testing.assert_allclose(after, want, rtol=1e-4)


# ---------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_wrong_number_of_classes_names_both_numbers(kind):
    loss = _loss(kind, from_logits=True)
    with pytest.raises(ValueError, match=r"7 classes.*5 class weights"):
        loss(np.array([0, 1]), _logits((2, 7)))


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
@pytest.mark.parametrize("bad", [5, -1, 1000])
def test_out_of_range_labels_raise_eagerly(kind, bad):
    loss = _loss(kind, from_logits=True)
    with pytest.raises(ValueError, match=rf"\[0, 5\).*{bad}"):
        loss(np.array([0, bad]), _logits((2, C)))


def test_non_integer_float_labels_raise():
    loss = CBSoftmaxLoss(COUNTS, from_logits=True)
    with pytest.raises(ValueError, match=r"2\.5"):
        loss(np.array([0.0, 2.5], "f4"), _logits((2, C)))


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_out_of_range_labels_give_nan_in_compiled_code(kind):
    loss = _loss(kind, from_logits=True, reduction="none")
    if BACKEND == "torch":
        pytest.skip("torch runs eagerly and raises (tested above)")
    out = to_numpy(compiled(lambda a, b: loss(a, b))(
        np.array([0, 5, -1], "int32"), _logits((3, C))))
    assert np.isfinite(out[0]) and np.isnan(out[1]) and np.isnan(out[2])


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_nan_predictions_give_nan_loss(kind):
    logits = _logits((2, C))
    logits[1, 2] = np.nan
    out = to_numpy(_loss(kind, from_logits=True, reduction="none")(
        np.array([0, 1]), logits))
    assert np.isfinite(out[0]) and np.isnan(out[1])


def test_mismatched_label_shape_is_shown():
    loss = CBSoftmaxLoss(COUNTS, from_logits=True)
    with pytest.raises(ValueError, match=r"y_true.shape=\(2, 3, 1\)"):
        loss(np.zeros((2, 3, 1)), _logits((2, C)))
    with pytest.raises(ValueError, match="Labels and predictions"):
        loss(np.zeros((2, 3), "f4"), _logits((2, C)))


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
    ],
)
def test_bad_arguments_raise_in_the_constructor(kwargs, error, match):
    kwargs = dict(kwargs)
    counts = kwargs.pop("counts", COUNTS)
    with pytest.raises(error, match=match):
        CBFocalLoss(counts, **kwargs)


def test_bad_class_weights_for_functions():
    with pytest.raises(ValueError, match="1-D"):
        cb_softmax_crossentropy([0], _logits((1, C)), [[1.0] * C])
    with pytest.raises(ValueError, match="weighting"):
        cb_sigmoid_crossentropy([0], _logits((1, C)), [1.0] * C,
                                weighting="batch")


# ---------------------------------------------------------------------------
# Config.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_config_round_trip_is_plain_json(kind):
    kwargs = {"from_logits": True, "reduction": "sum", "name": "my_loss",
              "dtype": "mixed_bfloat16"}
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
