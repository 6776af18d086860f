"""The logit-adjusted loss and the post-hoc adjustment, on the active backend.

Values are checked against the float64 reference (Menon et al., Eq. 10),
against Keras' own cross-entropies (tau = 0, and on logits shifted in NumPy),
and against Ren et al.'s balanced softmax written with the counts.
`tests/test_backends.py` reruns this module under JAX and PyTorch.
"""

import json
import warnings

import keras
import numpy as np
import pytest
import reference
from backend_utils import BACKEND
from backend_utils import assert_short_fit_learns
from backend_utils import compiled
from backend_utils import fit_kwargs
from backend_utils import np_softmax
from backend_utils import random_labels
from backend_utils import random_logits
from backend_utils import to_numpy
from backend_utils import value_and_grad
from catalogues import BAD_COUNTS
from catalogues import BAD_TAUS
from keras import ops

from keras_cbloss import ClassCounter
from keras_cbloss import LogitAdjustedLoss
from keras_cbloss import class_log_prior
from keras_cbloss import custom_objects
from keras_cbloss import logit_adjust
from keras_cbloss import logit_adjusted_crossentropy

COUNTS = np.array([500, 120, 40, 9, 2])
C = len(COUNTS)
LOG_PRIOR = np.log(COUNTS / COUNTS.sum())  # float64, written out here
RTOL = 1e-6
ATOL = 1e-6


def _pred(from_logits, shape=(16, C), seed=0):
    logits = random_logits(shape, seed)
    return logits if from_logits else np_softmax(logits)


# ---------------------------------------------------------------------------
# Values.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["sparse", "sparse_1", "onehot", "soft"])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_per_sample_values_match_reference(form, from_logits, tau):
    y, pred = random_labels(form, (16,), C), _pred(from_logits)
    got = logit_adjusted_crossentropy(
        y, pred, class_log_prior(COUNTS), tau=tau, from_logits=from_logits
    )
    want = reference.logit_adjusted_loss(y, pred, COUNTS, tau, from_logits)
    assert tuple(got.shape) == (16,)
    np.testing.assert_allclose(to_numpy(got), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("form", ["sparse", "onehot"])
def test_loss_class_reduces_to_the_mean_and_applies_sample_weight(form):
    y, logits = random_labels(form, (16,), C), random_logits((16, C))
    sample_weight = np.random.default_rng(5).random(16).astype("f4")
    loss = LogitAdjustedLoss(COUNTS, 1.5, from_logits=True)
    per_sample = reference.logit_adjusted_loss(y, logits, COUNTS, 1.5, True)
    np.testing.assert_allclose(
        to_numpy(loss(y, logits)), per_sample.mean(), rtol=RTOL
    )
    np.testing.assert_allclose(
        to_numpy(loss(y, logits, sample_weight=sample_weight)),
        (per_sample * sample_weight).mean(),
        rtol=RTOL,
    )


@pytest.mark.parametrize("form", ["sparse", "sparse_1", "onehot"])
def test_segmentation_maps(form):
    y, logits = random_labels(form, (2, 3, 4), C), random_logits((2, 3, 4, C))
    loss = LogitAdjustedLoss(COUNTS, from_logits=True, reduction="none")
    got = to_numpy(loss(y, logits))
    want = reference.logit_adjusted_loss(y, logits, COUNTS, 1.0, True)
    assert got.shape == (2, 3, 4)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("from_logits", [True, False])
def test_tau_zero_equals_keras_crossentropy(from_logits):
    pred = _pred(from_logits)
    ids = random_labels("sparse", (16,), C)
    loss = LogitAdjustedLoss(COUNTS, 0.0, from_logits=from_logits)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    dense = keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    np.testing.assert_allclose(
        to_numpy(loss(ids, pred)), to_numpy(sparse(ids, pred)), rtol=RTOL
    )
    onehot = np.eye(C, dtype="f4")[ids]
    np.testing.assert_allclose(
        to_numpy(loss(onehot, pred)), to_numpy(dense(onehot, pred)), rtol=RTOL
    )


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_equals_keras_crossentropy_of_logits_shifted_in_numpy(tau):
    logits, ids = random_logits((16, C)), random_labels("sparse", (16,), C)
    shifted = (logits + tau * LOG_PRIOR).astype("f4")
    want = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        ids, shifted
    )
    got = LogitAdjustedLoss(COUNTS, tau, from_logits=True)(ids, logits)
    np.testing.assert_allclose(to_numpy(got), to_numpy(want), rtol=RTOL)


def test_tau_one_is_the_balanced_softmax_of_ren_et_al():
    # Ren et al. (2020), Eq. 4: phi_y = n_y exp(z_y) / sum_k n_k exp(z_k),
    # written with the raw counts (no prior, no logs of them).
    logits = random_logits((16, C)).astype("f8")
    ids = random_labels("sparse", (16,), C)
    scores = COUNTS * np.exp(logits - logits.max(-1, keepdims=True))
    balanced = scores / scores.sum(-1, keepdims=True)
    want = -np.log(balanced[np.arange(16), ids])
    loss = LogitAdjustedLoss(COUNTS, 1.0, from_logits=True, reduction="none")
    np.testing.assert_allclose(
        to_numpy(loss(ids, logits.astype("f4"))), want, rtol=RTOL, atol=ATOL
    )


def test_tau_one_on_probabilities_is_keras_ce_of_prior_reweighted_rows():
    # With probabilities, softmax(log p + log prior) = p * prior / sum(...).
    probs, ids = _pred(False), random_labels("sparse", (16,), C)
    reweighted = probs.astype("f8") * COUNTS
    reweighted = (reweighted / reweighted.sum(-1, keepdims=True)).astype("f4")
    onehot = np.eye(C, dtype="f4")[ids]
    want = keras.losses.CategoricalCrossentropy()(onehot, reweighted)
    got = LogitAdjustedLoss(COUNTS, 1.0)(ids, probs)
    np.testing.assert_allclose(to_numpy(got), to_numpy(want), rtol=1e-5)


def test_only_count_ratios_matter():
    logits, ids = random_logits((8, C)), random_labels("sparse", (8,), C)
    base = LogitAdjustedLoss(COUNTS, from_logits=True)(ids, logits)
    scaled = LogitAdjustedLoss(COUNTS * 0.001, from_logits=True)(ids, logits)
    np.testing.assert_allclose(to_numpy(scaled), to_numpy(base), rtol=RTOL)
    # a log prior shifted by a constant gives the same loss
    shifted = logit_adjusted_crossentropy(
        ids, logits, np.log(COUNTS.astype("f8")), from_logits=True
    )
    unshifted = logit_adjusted_crossentropy(
        ids, logits, LOG_PRIOR, from_logits=True
    )
    np.testing.assert_allclose(
        to_numpy(shifted), to_numpy(unshifted), rtol=RTOL, atol=ATOL
    )


def test_class_log_prior_matches_the_formula():
    np.testing.assert_allclose(class_log_prior(COUNTS), LOG_PRIOR, rtol=1e-15)
    np.testing.assert_allclose(
        np.exp(class_log_prior([3.5, 0.25, 1e300])).sum(), 1.0, rtol=1e-15
    )
    assert np.isfinite(class_log_prior([1e308, 1e308, 5e-324])).all()


# ---------------------------------------------------------------------------
# Zero counts, extreme values, gradients, compiled code.
# ---------------------------------------------------------------------------


def test_zero_count_classes_get_the_rarest_count_and_never_nan():
    counts = np.array([500, 0, 40, 9, 0])
    with pytest.warns(UserWarning, match=r"Classes \[1, 4\].*count of zero"):
        loss = LogitAdjustedLoss(
            counts, 1.0, from_logits=True, reduction="none"
        )
    floored = np.array([500, 9, 40, 9, 9])
    np.testing.assert_allclose(
        loss.log_prior, np.log(floored / floored.sum()), rtol=1e-15
    )
    logits = random_logits((16, C), scale=30.0)
    ids = np.array([0, 2, 3] * 5 + [0])  # training labels: observed classes
    want = reference.logit_adjusted_loss(ids, logits, counts, 1.0, True)
    np.testing.assert_allclose(
        to_numpy(loss(ids, logits)), want, rtol=RTOL, atol=1e-5
    )
    _, grad = value_and_grad(lambda z: ops.sum(loss(ids, z)), logits)
    assert np.isfinite(grad).all()
    # tau = 0 with a zero count: no 0 * inf
    with pytest.warns(UserWarning, match="count of zero"):
        plain = LogitAdjustedLoss(counts, 0.0, from_logits=True)
    assert np.isfinite(to_numpy(plain(ids, logits)))


def test_all_zero_counts_raise():
    with pytest.raises(ValueError, match="at least one class with a non-zero"):
        LogitAdjustedLoss([0, 0, 0])


@pytest.mark.parametrize("magnitude", [30.0, 100.0, 1e4])
@pytest.mark.parametrize("tau", [0.0, 1.0, 3.0])
def test_extreme_logits_give_finite_values_and_gradients(magnitude, tau):
    rng = np.random.default_rng(3)
    logits = (np.sign(rng.normal(size=(8, C))) * magnitude).astype("f4")
    ids = random_labels("sparse", (8,), C)
    loss = LogitAdjustedLoss(COUNTS, tau, from_logits=True)
    value, grad = value_and_grad(lambda z: loss(ids, z), logits)
    assert np.isfinite(value) and np.isfinite(grad).all()
    want = reference.logit_adjusted_loss(ids, logits, COUNTS, tau, True)
    np.testing.assert_allclose(value, want.mean(), rtol=RTOL)


def test_gradient_is_adjusted_softmax_minus_onehot():
    # d CE(y, softmax(z + b)) / dz = softmax(z + b) - onehot(y), per sample;
    # the mean over 8 samples divides it by 8.
    logits, ids = random_logits((8, C)), random_labels("sparse", (8,), C)
    loss = LogitAdjustedLoss(COUNTS, 2.0, from_logits=True)
    _, grad = value_and_grad(lambda z: loss(ids, z), logits)
    adjusted = logits.astype("f8") + 2.0 * LOG_PRIOR
    e = np.exp(adjusted - adjusted.max(-1, keepdims=True))
    want = (e / e.sum(-1, keepdims=True) - np.eye(C)[ids]) / 8
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)


def test_probabilities_of_exactly_zero_and_one_are_clipped():
    probs = np.array([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0]], "f4")
    ids = np.array([1, 4])
    got = to_numpy(LogitAdjustedLoss(COUNTS, 1.0, reduction="none")(ids, probs))
    want = reference.logit_adjusted_loss(ids, probs, COUNTS, 1.0, False)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=ATOL)


@pytest.mark.parametrize("form", ["sparse", "onehot"])
def test_compiled_equals_eager(form):
    y, logits = random_labels(form, (16,), C), random_logits((16, C))
    loss = LogitAdjustedLoss(COUNTS, 1.0, from_logits=True)
    eager = to_numpy(loss(y, logits))
    jitted = to_numpy(compiled(lambda a, b: loss(a, b))(y, logits))
    np.testing.assert_allclose(jitted, eager, rtol=RTOL)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("from_logits", [True, False])
def test_sixteen_bit_inputs_match_reference(dtype, from_logits):
    y, pred = random_labels("sparse", (16,), C), _pred(from_logits)
    pred16 = ops.cast(pred, dtype)
    got = logit_adjusted_crossentropy(
        y, pred16, LOG_PRIOR, tau=1.0, from_logits=from_logits
    )
    assert keras.backend.standardize_dtype(got.dtype) == dtype
    want = reference.logit_adjusted_loss(
        y, to_numpy(pred16), COUNTS, 1.0, from_logits
    )
    np.testing.assert_allclose(to_numpy(got), want, rtol=1e-2, atol=1e-2)


def test_sixteen_bit_loss_dtype_keeps_large_class_ids():
    counts = np.arange(1, 301)
    logits = random_logits((2, 300))
    ids = np.array([257, 299])
    loss = LogitAdjustedLoss(
        counts, from_logits=True, dtype="bfloat16", reduction="none"
    )
    want = reference.logit_adjusted_loss(ids, logits, counts, 1.0, True)
    np.testing.assert_allclose(to_numpy(loss(ids, logits)), want, rtol=1e-2)


# ---------------------------------------------------------------------------
# ignore_class.
# ---------------------------------------------------------------------------


def test_ignore_class_value_eager_and_compiled():
    labels = np.array([[0, 1, 255], [2, 0, 255]])
    logits = random_logits((2, 3, C))
    keep = labels != 255
    per_position = reference.logit_adjusted_loss(
        np.where(keep, labels, 0), logits, COUNTS, 1.0, True
    )
    want = reference.masked_mean(per_position, keep)
    loss = LogitAdjustedLoss(COUNTS, from_logits=True, ignore_class=255)
    np.testing.assert_allclose(to_numpy(loss(labels, logits)), want, rtol=RTOL)
    jitted = compiled(lambda a, b: loss(a, b))
    np.testing.assert_allclose(
        to_numpy(jitted(labels, logits)), want, rtol=RTOL
    )
    assert loss.ignore_class == 255
    # Keras' own ignore_class on the NumPy-shifted logits gives the same
    shifted = (logits + LOG_PRIOR).astype("f4")
    keras_loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=255
    )
    np.testing.assert_allclose(
        to_numpy(loss(labels, logits)),
        to_numpy(keras_loss(labels, shifted)),
        rtol=RTOL,
    )


def test_ignored_positions_get_zero_gradient_and_no_nan():
    labels = np.array([0, -1, 3, -1])
    logits = random_logits((4, C))
    logits[1] = np.nan
    loss = LogitAdjustedLoss(COUNTS, from_logits=True, ignore_class=-1)
    value, grad = value_and_grad(lambda z: loss(labels, z), logits)
    assert np.isfinite(value) and np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[[1, 3]], 0.0)


# ---------------------------------------------------------------------------
# Training, counts from ClassCounter, mixed precision.
# ---------------------------------------------------------------------------


def _toy_data(seed=33):
    rng = np.random.default_rng(seed)
    counts = np.array([300, 60, 12])
    y = np.repeat(np.arange(3), counts)
    x = (rng.normal(0, 1, (len(y), 4)) + y[:, None] * 1.5).astype("f4")
    return x, y, counts


def _model(dtype=None):
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, dtype=dtype),
        ]
    )


def test_short_fit_reduces_the_loss():
    x, y, counts = _toy_data()
    keras.utils.set_random_seed(0)
    model = _model()
    loss = LogitAdjustedLoss(counts, 1.0, from_logits=True)
    after = assert_short_fit_learns(model, loss, x, y)
    want = reference.logit_adjusted_loss(
        y, model.predict(x, verbose=0), counts, 1.0, True
    ).mean()
    np.testing.assert_allclose(after, want, rtol=1e-4)


def test_class_counter_sets_the_counts_and_logs_the_log_prior(capsys, caplog):
    import tensorflow as tf

    x, y, counts = _toy_data()
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    keras.utils.set_random_seed(0)
    model = _model()
    loss = LogitAdjustedLoss(from_logits=True)
    model.compile("sgd", loss=loss, **fit_kwargs())
    with caplog.at_level("INFO", logger="keras_cbloss"):
        history = model.fit(
            train,
            callbacks=[ClassCounter(train, verbose=2)],
            verbose=0,
            shuffle=False,
        )
    np.testing.assert_array_equal(loss.class_counts, counts)
    np.testing.assert_allclose(
        loss.log_prior, np.log(counts / counts.sum()), rtol=1e-15
    )
    assert np.isfinite(history.history["loss"]).all()
    logged = capsys.readouterr().out + caplog.text
    assert "log prior of logit_adjusted_loss, tau=1.0" in logged


def test_mixed_bfloat16_fit_is_finite_and_matches_reference():
    x, y, counts = _toy_data()
    keras.utils.set_random_seed(0)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = _model()
        loss = LogitAdjustedLoss(counts, 1.0, from_logits=True)
        model.compile(keras.optimizers.Adam(0.05), loss=loss, **fit_kwargs())
        history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
        logits = model.predict(x, verbose=0)
        after = model.evaluate(x, y, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.isfinite(history.history["loss"]).all()
    want = reference.logit_adjusted_loss(y, logits, counts, 1.0, True).mean()
    np.testing.assert_allclose(after, want, rtol=1e-2)


def test_unset_counts_pass_keras_symbolic_build_and_then_say_how_to_set():
    loss = LogitAdjustedLoss(from_logits=True, reduction="none")
    assert loss.class_counts is None and loss.log_prior is None
    assert loss.class_weights is None
    y = random_labels("sparse", (4,), C)
    with keras.SymbolicScope():
        assert tuple(loss(y, random_logits((4, C))).shape) == (4,)
    with pytest.raises(ValueError, match="no class counts.*ClassCounter"):
        loss(y, random_logits((4, C)))
    loss.set_class_counts(COUNTS)  # the advice works
    want = reference.logit_adjusted_loss(
        y, random_logits((4, C)), COUNTS, 1.0, True
    )
    np.testing.assert_allclose(
        to_numpy(loss(y, random_logits((4, C)))), want, rtol=RTOL, atol=ATOL
    )


def test_read_only_views():
    loss = LogitAdjustedLoss(COUNTS)
    view = loss.log_prior
    view[:] = 0.0
    np.testing.assert_allclose(loss.log_prior, LOG_PRIOR, rtol=1e-15)
    with pytest.raises(AttributeError):
        loss.log_prior = np.zeros(C)
    with pytest.raises(AttributeError):
        loss.class_weights = np.ones(C)


# ---------------------------------------------------------------------------
# Serialization.
# ---------------------------------------------------------------------------


def test_config_round_trip_is_plain_json():
    loss = LogitAdjustedLoss(
        COUNTS,
        0.75,
        from_logits=True,
        ignore_class=-1,
        dtype="float32",
        name="la",
    )
    config = json.loads(json.dumps(loss.get_config()))
    assert config["class_counts"] == COUNTS.tolist()
    assert config["tau"] == 0.75 and config["ignore_class"] == -1
    assert "beta" not in config
    restored = LogitAdjustedLoss.from_config(config)
    logits, ids = random_logits((8, C)), random_labels("sparse", (8,), C)
    np.testing.assert_allclose(
        to_numpy(restored(ids, logits)), to_numpy(loss(ids, logits)), rtol=RTOL
    )
    serialized = keras.losses.serialize(loss)
    assert serialized["registered_name"] == "keras_cbloss>LogitAdjustedLoss"
    again = keras.losses.deserialize(json.loads(json.dumps(serialized)))
    assert isinstance(again, LogitAdjustedLoss) and again.tau == 0.75


def test_config_without_counts_round_trips():
    loss = LogitAdjustedLoss()
    restored = LogitAdjustedLoss.from_config(loss.get_config())
    assert restored.class_counts is None and restored.tau == 1.0


def test_keras_file_round_trip(tmp_path):
    x, y, counts = _toy_data()
    model = _model()
    model.compile("adam", loss=LogitAdjustedLoss(counts, 1.5, from_logits=True))
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    path = str(tmp_path / "la.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, LogitAdjustedLoss)
    np.testing.assert_array_equal(loaded.loss.class_counts, counts)
    assert loaded.loss.tau == 1.5 and loaded.loss.from_logits is True
    np.testing.assert_allclose(
        loaded.evaluate(x, y, verbose=0),
        model.evaluate(x, y, verbose=0),
        rtol=1e-5,
    )
    assert custom_objects()["keras_cbloss>LogitAdjustedLoss"] is (
        LogitAdjustedLoss
    )


# ---------------------------------------------------------------------------
# Post-hoc adjustment.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.0, 1.0, 2.5])
def test_logit_adjust_subtracts_tau_log_prior(tau):
    logits = random_logits((2, 3, C))
    got = logit_adjust(logits, COUNTS, tau)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(got), logits - tau * LOG_PRIOR, rtol=RTOL, atol=ATOL
    )


def test_logit_adjust_recovers_the_class_conditional_scores():
    # A model whose logits are log p(y | x) + const = log prior_y +
    # log p(x | y) (the training posterior) is turned into log p(x | y) +
    # const, whose argmax is the balanced-error Bayes rule (Menon, Sec. 4).
    rng = np.random.default_rng(7)
    log_likelihood = rng.normal(0, 2, (32, C))
    posterior_logits = (LOG_PRIOR + log_likelihood + 3.0).astype("f4")
    adjusted = to_numpy(logit_adjust(posterior_logits, COUNTS))
    diff = adjusted - log_likelihood
    np.testing.assert_allclose(diff - diff[:, :1], 0.0, atol=1e-5)
    np.testing.assert_array_equal(
        adjusted.argmax(-1), log_likelihood.argmax(-1)
    )


def test_logit_adjust_on_a_model_output_builds_a_serving_model():
    inputs = keras.Input((4,))
    trained = keras.Model(inputs, keras.layers.Dense(C)(inputs))
    serving = keras.Model(inputs, logit_adjust(trained.output, COUNTS, 0.5))
    x = np.random.default_rng(2).normal(size=(6, 4)).astype("f4")
    want = trained.predict(x, verbose=0) - 0.5 * LOG_PRIOR
    np.testing.assert_allclose(
        serving.predict(x, verbose=0), want, rtol=RTOL, atol=ATOL
    )


def test_logit_adjust_keeps_sixteen_bit_dtype_and_takes_tensors():
    logits = ops.convert_to_tensor(random_logits((4, C)), dtype="bfloat16")
    got = logit_adjust(logits, COUNTS)
    assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
    np.testing.assert_allclose(
        to_numpy(got), to_numpy(logits) - LOG_PRIOR, rtol=1e-2, atol=2e-2
    )


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        *[({"tau": tau}, error, match) for tau, error, match in BAD_TAUS],
        *[
            ({"class_counts": counts}, error, match)
            for counts, error, match in BAD_COUNTS
        ],
        ({"class_counts": [7]}, ValueError, "at least 2 classes"),
        ({"from_logits": "yes"}, TypeError, "from_logits"),
        ({"ignore_class": 2.5}, TypeError, "ignore_class"),
    ],
)
def test_bad_arguments_raise_in_the_constructor(kwargs, error, match):
    arguments = {"class_counts": COUNTS, **kwargs}
    with pytest.raises(error, match=match):
        LogitAdjustedLoss(**arguments)


def test_bad_arguments_of_the_function():
    logits, ids = random_logits((4, C)), random_labels("sparse", (4,), C)
    with pytest.raises(ValueError, match="argument `tau`"):
        logit_adjusted_crossentropy(ids, logits, LOG_PRIOR, tau=-1.0)
    with pytest.raises(ValueError, match="5 classes.*3 log priors"):
        logit_adjusted_crossentropy(ids, logits, LOG_PRIOR[:3])
    with pytest.raises(ValueError, match="softmax over one output unit"):
        logit_adjusted_crossentropy(
            np.zeros(4), np.zeros((4, 1), "f4"), [0.0, 0.0]
        )


def test_infinite_log_prior_raises_and_the_advice_works():
    counts = np.array([500, 0, 40, 9, 2])
    logits, ids = random_logits((4, C)), np.array([0, 2, 3, 4])
    with np.errstate(divide="ignore"):
        raw = np.log(counts / counts.sum())
    with pytest.raises(ValueError, match="class_log_prior"):
        logit_adjusted_crossentropy(ids, logits, raw, from_logits=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        log_prior = class_log_prior(counts)
    got = logit_adjusted_crossentropy(ids, logits, log_prior, from_logits=True)
    want = reference.logit_adjusted_loss(ids, logits, counts, 1.0, True)
    np.testing.assert_allclose(to_numpy(got), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("bad", [5, -1, 1000])
def test_out_of_range_labels_raise_eagerly(bad):
    loss = LogitAdjustedLoss(COUNTS, from_logits=True)
    with pytest.raises(ValueError, match=rf"Received values \[{bad}\]"):
        loss(np.array([0, bad]), random_logits((2, C)))


def test_out_of_range_labels_give_nan_in_compiled_code():
    if BACKEND == "torch":
        pytest.skip("torch runs eagerly and raises (tested above)")
    loss = LogitAdjustedLoss(COUNTS, from_logits=True, reduction="none")
    got = to_numpy(
        compiled(lambda a, b: loss(a, b))(
            np.array([0, 7]), random_logits((2, C))
        )
    )
    assert np.isfinite(got[0]) and np.isnan(got[1])


def test_string_labels_raise_type_error():
    loss = LogitAdjustedLoss(COUNTS)
    with pytest.raises(TypeError, match="StringLookup"):
        loss(np.array(["a", "b"]), _pred(False, (2, C)))


def test_logit_adjust_bad_input():
    logits = random_logits((4, C))
    with pytest.raises(ValueError, match="5 classes.*3 class counts"):
        logit_adjust(logits, [3, 2, 1])
    with pytest.raises(ValueError, match="argument `tau`"):
        logit_adjust(logits, COUNTS, tau=-1.0)
    with pytest.raises(TypeError, match="float array"):
        logit_adjust(np.zeros((4, C), "int32"), COUNTS)
    with pytest.raises(ValueError, match="non-negative"):
        logit_adjust(logits, [1, -2, 3, 4, 5])
