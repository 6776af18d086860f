"""Dense targets `[..., C]`: validated, unknown entries masked, and a class
axis required on the predictions.

Multi-label and multi-task data mark unknown entries (-1 in Tox21 or
CheXpert). With `ignore_class`, an entry equal to it leaves the loss; a row
made only of it leaves the mean, as an ignored sparse position does. Targets
outside [0, 1] that are not ignored raise when values can be seen and give
NaN in compiled code, as sparse labels outside [0, C) do. The module runs on
the active backend; tests/backend_runs.py reruns it under JAX and PyTorch.
"""

import functools

import keras
import numpy as np
import pytest
import reference
from backend_utils import BACKEND
from backend_utils import compiled
from backend_utils import fit_kwargs
from backend_utils import random_logits
from backend_utils import to_numpy
from backend_utils import value_and_grad
from keras import ops

from keras_cbloss import CBFocalLoss
from keras_cbloss import CBSigmoidLoss
from keras_cbloss import CBSoftmaxLoss
from keras_cbloss import LogitAdjustedLoss
from keras_cbloss import cb_focal_crossentropy
from keras_cbloss import cb_sigmoid_crossentropy
from keras_cbloss import cb_softmax_crossentropy
from keras_cbloss import class_log_prior
from keras_cbloss import logit_adjusted_crossentropy

# The values of issue 15: counts [2, 2, 1], beta 0.9, -1 marks unknown.
COUNTS = [2, 2, 1]
WEIGHTS = [0.769231, 0.769231, 1.461538]
TARGETS = np.array([[1, 0, -1], [0, 1, 1], [-1, -1, 0], [1, 1, 0]], "f4")
LOGITS = np.array([[2, -1, 0.5], [-1, 1, 2], [0.3, 0.2, -2], [1, 1, -1]], "f4")
ISSUE_VALUES = {
    ("sigmoid", "class"): [0.338607, 0.667451, 0.185510, 0.939785],
    ("sigmoid", "sample"): [0.338607, 1.680776, 0.0, 1.445823],
    ("focal", "sample"): [0.018817, 0.105113, 0.0, 0.104576],
}
# What the issue's report got from these targets without `ignore_class`.
REPORTED_NEGATIVE = [-1.325262, 1.680776, -3.506804, 1.445823]


def _cb_loss(kind, weighting="sample", **kwargs):
    kwargs.setdefault("from_logits", True)
    if kind == "sigmoid":
        return CBSigmoidLoss(COUNTS, 0.9, weighting=weighting, **kwargs)
    return CBFocalLoss(COUNTS, 0.9, 2.0, weighting=weighting, **kwargs)


def _reference(kind, weighting, y=TARGETS, z=LOGITS, gamma=None):
    if gamma is None:
        gamma = 0.0 if kind == "sigmoid" else 2.0
    return reference.unknown_entries_loss(
        y, z, reference.cb_weights(COUNTS, 0.9), gamma, weighting
    )


def _compiled_functions(fn):
    """`fn` under each compiler of this backend (none on PyTorch, whose
    trainer runs the loss eagerly)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return [tf.function(fn), tf.function(fn, jit_compile=True)]
    if BACKEND == "jax":
        return [compiled(fn)]
    return []


# ---------------------------------------------------------------------------
# Unknown entries: the values of the issue, eager, compiled and in fit.
# ---------------------------------------------------------------------------


def test_the_reference_gives_the_issue_values():
    np.testing.assert_allclose(
        reference.cb_weights(COUNTS, 0.9), WEIGHTS, atol=1e-6
    )
    for (kind, weighting), want in ISSUE_VALUES.items():
        per_row, keep = _reference(kind, weighting)
        np.testing.assert_allclose(per_row, want, atol=1e-6)
        assert keep.all()


@pytest.mark.parametrize("kind, weighting", sorted(ISSUE_VALUES))
def test_unknown_entries_give_the_issue_values_eager_and_compiled(
    kind, weighting
):
    loss = _cb_loss(kind, weighting, ignore_class=-1, reduction="none")
    want = ISSUE_VALUES[kind, weighting]
    np.testing.assert_allclose(
        to_numpy(loss(TARGETS, LOGITS)), want, rtol=1e-5, atol=1e-6
    )
    for function in _compiled_functions(lambda a, b: loss(a, b)):
        got = function(
            ops.convert_to_tensor(TARGETS), ops.convert_to_tensor(LOGITS)
        )
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, weighting", sorted(ISSUE_VALUES))
def test_per_sample_functions_take_unknown_entries(kind, weighting):
    weights = reference.cb_weights(COUNTS, 0.9)
    if kind == "sigmoid":
        got = cb_sigmoid_crossentropy(
            TARGETS,
            LOGITS,
            weights,
            from_logits=True,
            weighting=weighting,
            ignore_class=-1,
        )
    else:
        got = cb_focal_crossentropy(
            TARGETS,
            LOGITS,
            weights,
            gamma=2.0,
            from_logits=True,
            weighting=weighting,
            ignore_class=-1,
        )
    np.testing.assert_allclose(
        to_numpy(got), ISSUE_VALUES[kind, weighting], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "kind, weighting", [("sigmoid", "class"), ("focal", "sample")]
)
def test_a_row_of_unknown_entries_leaves_the_mean(kind, weighting):
    # The default reduction averages over the 3 rows with a known entry.
    y = TARGETS.copy()
    y[2] = -1
    sample_weight = np.array([0.5, 1.0, 3.0, 2.0], "f4")
    per_row, keep = _reference(kind, weighting, y)
    assert keep.tolist() == [True, True, False, True]
    loss = _cb_loss(kind, weighting, ignore_class=-1)
    want = reference.masked_mean(per_row, keep)
    np.testing.assert_allclose(to_numpy(loss(y, LOGITS)), want, rtol=1e-5)
    weighted = reference.masked_mean(per_row, keep, sample_weight)
    np.testing.assert_allclose(
        to_numpy(loss(y, LOGITS, sample_weight=sample_weight)),
        weighted,
        rtol=1e-5,
    )
    for function in _compiled_functions(lambda a, b: loss(a, b)):
        np.testing.assert_allclose(
            to_numpy(function(y, LOGITS)), want, rtol=1e-5
        )
    unreduced = _cb_loss(kind, weighting, ignore_class=-1, reduction="none")
    assert to_numpy(unreduced(y, LOGITS))[2] == 0.0


def test_unknown_entries_in_maps_and_probabilities():
    # Per-pixel multi-label maps [B, H, W, C], from probabilities.
    rng = np.random.default_rng(3)
    y = (rng.random((2, 3, 4, 3)) < 0.4).astype("f4")
    y[rng.random(y.shape) < 0.3] = 255
    y[0, 0, 0] = 255  # a pixel of unknown entries only
    z = random_logits((2, 3, 4, 3), seed=4)
    p = (1 / (1 + np.exp(-z.astype("f8")))).astype("f4")
    z_used = np.log(p.astype("f8")) - np.log1p(-p.astype("f8"))
    for weighting in ("sample", "class"):
        loss = CBFocalLoss(
            COUNTS, 0.9, 0.5, weighting=weighting, ignore_class=255
        )
        per_row, keep = reference.unknown_entries_loss(
            y,
            z_used,
            reference.cb_weights(COUNTS, 0.9),
            0.5,
            weighting,
            ignore_class=255,
        )
        np.testing.assert_allclose(
            to_numpy(loss(y, p)),
            reference.masked_mean(per_row, keep),
            rtol=1e-4,
        )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_unknown_entries_with_a_sixteen_bit_loss(dtype):
    loss = CBFocalLoss(
        COUNTS,
        0.9,
        2.0,
        from_logits=True,
        ignore_class=-1,
        reduction="none",
        dtype=dtype,
    )
    got = to_numpy(loss(TARGETS, ops.cast(LOGITS, dtype)))
    np.testing.assert_allclose(
        got, ISSUE_VALUES["focal", "sample"], rtol=1e-2, atol=1e-3
    )


def _multi_task_data(rows=96, seed=5):
    """Features and 3-task targets with about a quarter of them unknown."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (rows, 4)).astype("f4")
    y = (x[:, :3] + rng.normal(0, 0.5, (rows, 3)) > 0.3).astype("f4")
    y[rng.random(y.shape) < 0.25] = -1
    y[:4] = -1  # rows with nothing known
    return x, y


@pytest.mark.parametrize(
    "kind, weighting", [("sigmoid", "class"), ("focal", "sample")]
)
def test_unknown_entries_train_in_fit(kind, weighting):
    x, y = _multi_task_data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    loss = _cb_loss(kind, weighting, ignore_class=-1)
    model.compile(keras.optimizers.Adam(0.05), loss=loss, **fit_kwargs())
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert min(history.history["loss"]) > 0.0
    after = model.evaluate(x, y, batch_size=96, verbose=0)
    assert after < before
    per_row, keep = _reference(kind, weighting, y, model.predict(x, verbose=0))
    np.testing.assert_allclose(
        after, reference.masked_mean(per_row, keep), rtol=1e-4
    )


def test_ignore_class_is_saved_in_the_config_and_used_after_loading():
    loss = _cb_loss("focal", ignore_class=-1, reduction="none")
    clone = CBFocalLoss.from_config(loss.get_config())
    assert clone.get_config()["ignore_class"] == -1
    np.testing.assert_allclose(
        to_numpy(clone(TARGETS, LOGITS)),
        ISSUE_VALUES["focal", "sample"],
        atol=1e-6,
    )


# ---------------------------------------------------------------------------
# The issue's report, re-created: -1 entries gave negative losses, and the
# old advice crashed. Now values outside [0, 1] are refused and the advice
# (`ignore_class=-1`) works.
# ---------------------------------------------------------------------------


def test_unknown_entries_without_ignore_class_raise_and_the_advice_works():
    loss = _cb_loss("sigmoid", reduction="none")
    with pytest.raises(
        ValueError,
        match=r"Invalid dense targets.*\[0, 1\]"
        r".*\[-1, -1, -1\].*`ignore_class=-1`",
    ):
        loss(TARGETS, LOGITS)
    fixed = _cb_loss("sigmoid", ignore_class=-1, reduction="none")
    got = to_numpy(fixed(TARGETS, LOGITS))
    np.testing.assert_allclose(
        got, ISSUE_VALUES["sigmoid", "sample"], atol=1e-6
    )
    assert np.all(got >= 0)
    # the old negative values came from training on the -1 entries
    assert not np.allclose(got, REPORTED_NEGATIVE, atol=1e-3)


def test_unknown_entries_without_ignore_class_give_nan_when_compiled():
    if BACKEND == "torch":
        pytest.skip("torch runs eagerly and raises (tested above)")
    loss = _cb_loss("sigmoid", reduction="none")
    got = to_numpy(compiled(lambda a, b: loss(a, b))(TARGETS, LOGITS))
    # the rows holding a -1 are NaN, never a negative number
    np.testing.assert_array_equal(np.isnan(got), [True, False, True, False])
    np.testing.assert_allclose(got[[1, 3]], [1.680776, 1.445823], atol=1e-6)


def test_the_reported_fit_stops_on_nan_and_the_fix_trains():
    # The report: fit gave a loss of -0.4419 on these targets. Compiled
    # code cannot raise on values: the loss is NaN, and TerminateOnNaN
    # stops; eagerly the batch is refused; with ignore_class it trains.
    x, y = _multi_task_data(rows=32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", loss=_cb_loss("sigmoid"), **fit_kwargs())
    if BACKEND == "torch":
        with pytest.raises(ValueError, match="ignore_class=-1"):
            model.fit(x, y, epochs=1, verbose=0)
    else:
        history = model.fit(
            x,
            y,
            epochs=3,
            verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        )
        assert len(history.history["loss"]) == 1
        assert np.isnan(history.history["loss"][0])
    model.compile(
        "sgd", loss=_cb_loss("sigmoid", ignore_class=-1), **fit_kwargs()
    )
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert min(history.history["loss"]) > 0.0


def test_a_per_entry_sample_weight_raises_and_the_advice_works():
    # The old advice (sample_weight=0 at unknown entries with
    # "mean_with_sample_weight") crashed in Keras with "Incompatible
    # shapes: [4] vs. [4,3]": the loss has one value per row.
    loss = _cb_loss("sigmoid", reduction="mean_with_sample_weight")
    known = (TARGETS != -1).astype("f4")
    for weight in (known, known.tolist()):
        with pytest.raises(
            ValueError,
            match=r"argument `sample_weight`.*y_pred.shape\[:-1\] = "
            r"\(4,\). Received: sample_weight.shape=\(4, 3\).*"
            r"`ignore_class=-1`",
        ):
            loss(np.maximum(TARGETS, 0), LOGITS, sample_weight=weight)
    fixed = _cb_loss("sigmoid", ignore_class=-1, reduction="none")
    np.testing.assert_allclose(
        to_numpy(fixed(TARGETS, LOGITS)),
        ISSUE_VALUES["sigmoid", "sample"],
        atol=1e-6,
    )
    # a per-row weight, [B] or [B, 1], stays a sample weight
    row_weight = np.array([[1.0], [2.0], [0.0], [1.0]], "f4")
    weighted = _cb_loss("sigmoid", ignore_class=-1, reduction="sum")
    want = (
        np.array(ISSUE_VALUES["sigmoid", "sample"]) * row_weight[:, 0]
    ).sum()
    np.testing.assert_allclose(
        to_numpy(weighted(TARGETS, LOGITS, sample_weight=row_weight)),
        want,
        rtol=1e-5,
    )


# ---------------------------------------------------------------------------
# Gradients at unknown entries: exactly 0, whatever the model outputs there.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, weighting",
    [
        ("sigmoid", "sample"),
        ("sigmoid", "class"),
        ("focal", "sample"),
        ("focal", "class"),
    ],
)
def test_gradients_at_unknown_entries_are_exactly_zero(kind, weighting):
    z = LOGITS.copy()
    z[0, 2], z[2, 0], z[2, 1] = np.nan, np.inf, -1e30  # unknown there
    loss = _cb_loss(kind, weighting, ignore_class=-1, reduction="sum")
    value, grad = value_and_grad(lambda x: loss(TARGETS, x), z)
    unknown = TARGETS == -1
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.all(grad[unknown] == 0.0)
    gamma = 0.0 if kind == "sigmoid" else 2.0
    want = reference.unknown_entries_gradient(
        TARGETS, z, reference.cb_weights(COUNTS, 0.9), gamma, weighting
    )
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        value, _reference(kind, weighting, TARGETS, z)[0].sum(), rtol=1e-5
    )
    for function in _compiled_functions(lambda a, b: loss(a, b)):
        np.testing.assert_allclose(
            to_numpy(function(TARGETS, z)), value, rtol=1e-5
        )


@pytest.mark.parametrize("weighting", ["sample", "class"])
def test_gradients_at_unknown_entries_from_probabilities(weighting):
    p = (1 / (1 + np.exp(-LOGITS.astype("f8")))).astype("f4")
    p[0, 2], p[2, 0] = np.nan, 1.0  # unknown there
    loss = CBFocalLoss(
        COUNTS, 0.9, 0.5, ignore_class=-1, weighting=weighting, reduction="sum"
    )
    value, grad = value_and_grad(lambda x: loss(TARGETS, x), p)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert np.all(grad[TARGETS == -1] == 0.0)
    # d/dp = d/dz * dz/dp, with z = log(p / (1 - p)) at the known entries
    known_p = np.where(TARGETS == -1, 0.5, p).astype("f8")
    z = np.log(known_p) - np.log1p(-known_p)
    want = reference.unknown_entries_gradient(
        TARGETS, z, reference.cb_weights(COUNTS, 0.9), 0.5, weighting
    )
    want = want / (known_p * (1 - known_p))
    np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------
# Dense targets outside [0, 1]: an error eagerly, NaN in compiled code.
# ---------------------------------------------------------------------------


# Named functions, not lambdas: TensorFlow's autograph reads a lambda's
# source and may pick another lambda from the same statement.
def _softmax(y, z, **kwargs):
    return cb_softmax_crossentropy(y, z, WEIGHTS, from_logits=True, **kwargs)


def _sigmoid(y, z, **kwargs):
    return cb_sigmoid_crossentropy(y, z, WEIGHTS, from_logits=True, **kwargs)


def _focal(y, z, **kwargs):
    return cb_focal_crossentropy(
        y, z, WEIGHTS, gamma=2.0, from_logits=True, **kwargs
    )


def _logit_adjusted(y, z, **kwargs):
    return logit_adjusted_crossentropy(
        y, z, class_log_prior(COUNTS), from_logits=True, **kwargs
    )


FUNCTIONS = {
    "softmax": _softmax,
    "sigmoid": _sigmoid,
    "focal": _focal,
    "logit_adjusted": _logit_adjusted,
}
ONE_HOT = np.eye(3, dtype="f4")[[0, 2, 1, 0]]


@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
@pytest.mark.parametrize("bad", [2.0, -0.5, np.nan, -1.0])
def test_dense_targets_outside_zero_one_raise_eagerly(kind, bad):
    y = ONE_HOT.copy()
    y[1, 1] = bad
    shown = "nan" if np.isnan(bad) else f"{bad:g}"
    with pytest.raises(
        ValueError,
        match=r"Invalid dense targets. Expected "
        rf"one-hot, multi-hot or soft targets in \[0, 1\]. "
        rf"Received values \[{shown}(\.0)?\]",
    ):
        FUNCTIONS[kind](y, LOGITS)


@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_dense_targets_outside_zero_one_give_nan_when_compiled(kind):
    if BACKEND == "torch":
        pytest.skip("torch runs eagerly and raises (tested above)")
    y = ONE_HOT.copy()
    y[1, 1], y[2, 0], y[3, 0] = 1.5, np.nan, -0.25
    eager = to_numpy(FUNCTIONS[kind](ONE_HOT[:1], LOGITS[:1]))
    for function in _compiled_functions(lambda a, b: FUNCTIONS[kind](a, b)):
        got = to_numpy(function(y, LOGITS))
        np.testing.assert_array_equal(np.isnan(got), [False, True, True, True])
        np.testing.assert_allclose(got[:1], eager, rtol=1e-6)
    # with ignore_class, only entries equal to it may lie outside [0, 1]
    y[2, 0], y[3, 0] = -1, 0
    masked = _compiled_functions(
        lambda a, b: FUNCTIONS[kind](a, b, ignore_class=-1)
    )
    for function in masked:
        got = to_numpy(function(y, LOGITS))
        if kind in ("softmax", "logit_adjusted"):  # row 2 is partly unknown
            np.testing.assert_array_equal(np.isnan(got), [0, 1, 1, 0])
        else:
            np.testing.assert_array_equal(np.isnan(got), [0, 1, 0, 0])


def test_soft_and_boolean_dense_targets_stay_accepted():
    soft = ONE_HOT * 0.9 + 0.1 / 3
    for kind in sorted(FUNCTIONS):
        assert np.all(np.isfinite(to_numpy(FUNCTIONS[kind](soft, LOGITS))))
    boolean = ONE_HOT.astype(bool)
    np.testing.assert_allclose(
        to_numpy(FUNCTIONS["focal"](boolean, LOGITS)),
        reference.focal_loss(ONE_HOT, LOGITS, WEIGHTS, True, 2.0),
        rtol=1e-5,
    )


def test_only_entries_equal_to_ignore_class_may_lie_outside_zero_one():
    y = TARGETS.copy()
    y[1, 0] = 2.0
    with pytest.raises(
        ValueError,
        match=r"Received values \[2\].*Only "
        r"entries equal to `ignore_class=-1`",
    ):
        _cb_loss("focal", ignore_class=-1)(y, LOGITS)


@pytest.mark.parametrize("ignore_class", [0, 1])
def test_ignore_class_inside_the_target_range_raises_and_the_advice_works(
    ignore_class,
):
    loss = _cb_loss("sigmoid", ignore_class=ignore_class, reduction="none")
    with pytest.raises(
        ValueError,
        match=r"argument `ignore_class`.*outside "
        rf"the target range \[0, 1\].*ignore_class="
        rf"{ignore_class}.*`ignore_class=-1`",
    ):
        loss(TARGETS, LOGITS)
    # sparse class ids may still skip class 0 or 1
    ids = np.array([0, 1, 2, 1])
    kept = to_numpy(loss(ids, LOGITS)) != 0
    np.testing.assert_array_equal(kept, ids != ignore_class)
    # the advice: mark the unknown entries -1
    fixed = _cb_loss("sigmoid", ignore_class=-1, reduction="none")
    np.testing.assert_allclose(
        to_numpy(fixed(TARGETS, LOGITS)),
        ISSUE_VALUES["sigmoid", "sample"],
        atol=1e-6,
    )


# ---------------------------------------------------------------------------
# Softmax losses: a distribution per row, so unknown entries only as a whole.
# ---------------------------------------------------------------------------

SOFTMAX_KINDS = ["softmax", "logit_adjusted"]


def _softmax_loss(kind, **kwargs):
    if kind == "softmax":
        return CBSoftmaxLoss(COUNTS, 0.9, from_logits=True, **kwargs)
    return LogitAdjustedLoss(COUNTS, 1.0, from_logits=True, **kwargs)


def _softmax_reference(kind, y, z):
    if kind == "softmax":
        return reference.softmax_loss(
            y, z, reference.cb_weights(COUNTS, 0.9), True
        )
    return reference.logit_adjusted_loss(y, z, COUNTS, 1.0, True)


@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_softmax_rows_of_unknown_entries_only_are_skipped(kind):
    y = ONE_HOT.copy()
    y[2] = -1
    keep = np.array([True, True, False, True])
    per_row = _softmax_reference(kind, np.where(keep[:, None], y, 0), LOGITS)
    want = reference.masked_mean(per_row, keep)
    loss = _softmax_loss(kind, ignore_class=-1)
    np.testing.assert_allclose(to_numpy(loss(y, LOGITS)), want, rtol=1e-5)
    # the same as sparse ids with the same ignore_class
    ids = np.array([0, 2, -1, 0])
    np.testing.assert_allclose(to_numpy(loss(ids, LOGITS)), want, rtol=1e-5)
    for function in _compiled_functions(lambda a, b: loss(a, b)):
        np.testing.assert_allclose(
            to_numpy(function(y, LOGITS)), want, rtol=1e-5
        )


@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_softmax_rows_with_some_unknown_entries_raise_and_the_advice_works(
    kind,
):
    loss = _softmax_loss(kind, ignore_class=-1)
    with pytest.raises(
        ValueError,
        match=r"softmax loss.*`ignore_class=-1`.*"
        r"Received 2 such row\(s\), e.g. \[1.0, 0.0, -1.0\]"
        r".*`CBSigmoidLoss` or `CBFocalLoss`",
    ):
        loss(TARGETS, LOGITS)
    # the advice: a sigmoid loss, which leaves each unknown entry out
    fixed = CBSigmoidLoss(
        COUNTS,
        0.9,
        from_logits=True,
        ignore_class=-1,
        weighting="class",
        reduction="none",
    )
    np.testing.assert_allclose(
        to_numpy(fixed(TARGETS, LOGITS)),
        ISSUE_VALUES["sigmoid", "class"],
        atol=1e-6,
    )


@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_softmax_rows_with_some_unknown_entries_give_nan_when_compiled(kind):
    if BACKEND == "torch":
        pytest.skip("torch runs eagerly and raises (tested above)")
    y = ONE_HOT.copy()
    y[1, 0], y[3] = -1, -1  # a partly and a wholly unknown row
    loss = _softmax_loss(kind, ignore_class=-1, reduction="none")
    got = to_numpy(compiled(lambda a, b: loss(a, b))(y, LOGITS))
    assert np.isnan(got[1]) and got[3] == 0.0
    np.testing.assert_allclose(
        got[[0, 2]],
        _softmax_reference(kind, y[[0, 2]], LOGITS[[0, 2]]),
        rtol=1e-5,
    )


def test_logit_adjustment_refuses_multi_hot_rows_and_the_advice_works():
    multi_hot = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1]], "f4")
    loss = LogitAdjustedLoss(COUNTS, from_logits=True)
    with pytest.raises(
        ValueError,
        match=r"`LogitAdjustedLoss`.*multi-hot "
        r"rows.*Received 2 row\(s\) summing to \[2.0, 2.0\]"
        r".*`CBSigmoidLoss` or `CBFocalLoss`",
    ):
        loss(multi_hot, LOGITS)
    # the advice: one binary problem per class
    fixed = CBSigmoidLoss(
        COUNTS, 0.9, from_logits=True, weighting="class", reduction="none"
    )
    want = reference.sigmoid_loss(
        multi_hot, LOGITS, reference.cb_weights(COUNTS, 0.9), True, "class"
    )
    np.testing.assert_allclose(
        to_numpy(fixed(multi_hot, LOGITS)), want, rtol=1e-5
    )
    # soft targets summing to 1 (label smoothing) and all-zero rows pass
    soft = ONE_HOT * 0.9 + 0.1 / 3
    soft[3] = 0.0
    np.testing.assert_allclose(
        to_numpy(
            logit_adjusted_crossentropy(
                soft, LOGITS, class_log_prior(COUNTS), from_logits=True
            )
        ),
        reference.logit_adjusted_loss(soft, LOGITS, COUNTS, 1.0, True),
        rtol=1e-5,
        atol=1e-7,
    )
    if BACKEND != "torch":  # compiled: NaN on the multi-hot rows only
        unreduced = LogitAdjustedLoss(
            COUNTS, from_logits=True, reduction="none"
        )
        got = to_numpy(
            compiled(lambda a, b: unreduced(a, b))(multi_hot, LOGITS)
        )
        np.testing.assert_array_equal(np.isnan(got), [True, False, True, False])


def test_softmax_loss_refuses_multi_hot_rows_and_the_advice_works():
    # (sum_c y_c w_c) * (-sum_c y_c log p_c) once ran on multi-hot rows,
    # weighting a row's classes twice; a softmax takes one class per row.
    multi_hot = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1]], "f4")
    weights = reference.cb_weights(COUNTS, 0.9)
    loss = CBSoftmaxLoss(COUNTS, 0.9, from_logits=True, reduction="none")
    with pytest.raises(
        ValueError,
        match=r"`CBSoftmaxLoss` \(`cb_softmax_crossentropy`\).*multi-hot "
        r"rows.*Received 2 row\(s\) summing to \[2.0, 2.0\].*"
        r"`CBSigmoidLoss` or `CBFocalLoss`.*divide each row by its sum",
    ):
        loss(multi_hot, LOGITS)
    # the advice: rows divided by their sum are soft rows
    shared = multi_hot / multi_hot.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        to_numpy(loss(shared, LOGITS)),
        reference.softmax_loss(shared, LOGITS, weights, True),
        rtol=1e-5,
    )
    if BACKEND != "torch":  # compiled: NaN on the multi-hot rows only
        got = to_numpy(compiled(lambda a, b: loss(a, b))(multi_hot, LOGITS))
        np.testing.assert_array_equal(np.isnan(got), [True, False, True, False])


# ---------------------------------------------------------------------------
# Predictions need a class axis: a squeezed one-unit head `[B]` is refused.
# ---------------------------------------------------------------------------

BINARY_COUNTS = [60, 4]
BINARY_WEIGHTS = reference.cb_weights(BINARY_COUNTS, 0.999)
RANK_ONE = {
    "CBSoftmaxLoss": CBSoftmaxLoss(BINARY_COUNTS),
    "CBSigmoidLoss": CBSigmoidLoss(BINARY_COUNTS),
    "CBFocalLoss": CBFocalLoss(BINARY_COUNTS),
    "LogitAdjustedLoss": LogitAdjustedLoss(BINARY_COUNTS),
    "cb_softmax_crossentropy": functools.partial(
        cb_softmax_crossentropy, class_weights=BINARY_WEIGHTS
    ),
    "cb_sigmoid_crossentropy": functools.partial(
        cb_sigmoid_crossentropy, class_weights=BINARY_WEIGHTS
    ),
    "cb_focal_crossentropy": functools.partial(
        cb_focal_crossentropy, class_weights=BINARY_WEIGHTS
    ),
    "logit_adjusted_crossentropy": functools.partial(
        logit_adjusted_crossentropy, log_prior=class_log_prior(BINARY_COUNTS)
    ),
}


@pytest.mark.parametrize("name", sorted(RANK_ONE))
@pytest.mark.parametrize("batch", [2, 4])
def test_rank_one_predictions_raise_naming_the_unit_axis(name, batch):
    # With B = 2 a [B] vector once read as one sample of two classes.
    y = np.array([0, 1, 1, 0][:batch], "f4")
    p = np.array([0.2, 0.7, 0.9, 0.4][:batch], "f4")
    with pytest.raises(
        ValueError,
        match=r"argument `y_pred`.*\[\.\.\., C\].*"
        rf"y_pred.shape=\({batch},\).*\[B, 1\].*keep the "
        r"unit axis",
    ):
        RANK_ONE[name](y, p)


@pytest.mark.parametrize("kind", ["sigmoid", "focal"])
def test_keeping_the_unit_axis_gives_the_binary_head_value(kind):
    y = np.array([0.0, 1.0])
    logits = np.array([3.0, -1.0], "f4")
    gamma = 0.0 if kind == "sigmoid" else 2.0
    if kind == "sigmoid":
        loss = CBSigmoidLoss(
            BINARY_COUNTS, 0.999, from_logits=True, reduction="none"
        )
    else:
        loss = CBFocalLoss(
            BINARY_COUNTS, 0.999, gamma, from_logits=True, reduction="none"
        )
    with pytest.raises(ValueError, match="keep the unit axis"):
        loss(y, logits)
    got = to_numpy(loss(y, ops.expand_dims(logits, -1)))  # the advice
    want = reference.binary_head_loss(
        y, logits[:, None], BINARY_COUNTS, 0.999, gamma
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_a_single_sample_needs_its_batch_axis():
    logits = np.array([2.0, 0.0, -1.0], "f4")
    with pytest.raises(ValueError, match=r"single sample.*\[1, C\]"):
        cb_softmax_crossentropy(2, logits, WEIGHTS, from_logits=True)
    got = cb_softmax_crossentropy(
        [2], logits[None], WEIGHTS, from_logits=True
    )  # the advice
    np.testing.assert_allclose(
        to_numpy(got),
        reference.softmax_loss([2], logits[None], WEIGHTS, True),
        rtol=1e-6,
    )


def test_a_squeezed_head_is_refused_in_fit_and_the_unsqueezed_one_trains():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (64, 3)).astype("f4")
    y = (x[:, 0] > 1.0).astype("f4")
    loss = CBFocalLoss(
        [int((y == 0).sum()), int(y.sum())], 0.999, 2.0, from_logits=True
    )
    keras.utils.set_random_seed(0)
    head = keras.layers.Dense(1)
    squeezed = keras.Sequential(
        [
            keras.Input((3,)),
            head,
            keras.layers.Lambda(
                lambda t: ops.squeeze(t, -1), output_shape=lambda s: s[:-1]
            ),
        ]
    )
    squeezed.compile("sgd", loss=loss, **fit_kwargs())
    with pytest.raises(ValueError, match="keep the unit axis"):
        squeezed.fit(x, y, epochs=1, verbose=0)
    model = keras.Sequential([keras.Input((3,)), head])  # the unit axis kept
    model.compile("sgd", loss=loss, **fit_kwargs())
    model.fit(x, y, epochs=1, verbose=0)
    want = reference.binary_head_loss(
        y, model.predict(x, verbose=0), loss.class_counts, 0.999, 2.0
    ).mean()
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), want, rtol=1e-4)
