"""A catalogue of bad inputs: each gives a clear error, or a visible NaN.

Every entry asserts the error type and a message that names the problem,
and, where a model is involved, that nothing was corrupted: a batch that is
rejected in eager mode (`run_eagerly=True`) leaves the weights and the
optimizer's step count as they were, and the model then trains normally;
a rejected `set_class_counts` keeps the loss's previous counts.

Shape errors (wrong rank, wrong width, wrong number of counts) are raised
at trace time too, so compiled training rejects them the same way. Label
VALUES can only be inspected eagerly; in compiled code they give a NaN loss
(training fails visibly, e.g. with `keras.callbacks.TerminateOnNaN`), and
`ClassCounter`, which checks every label of the dataset before the first
step, rejects them with weights untouched.

Related checks elsewhere: argument errors of the loss constructors
(`test_losses.py`), of `class_balanced_weights` (`test_weights.py`), and
every counting error (`test_counting.py`, `test_callbacks.py`).
"""

import warnings

import keras
import numpy as np
import pytest
import reference
from backend_utils import make_loss
from backend_utils import to_numpy
from catalogues import BAD_BETAS
from catalogues import BAD_GAMMAS
from catalogues import BAD_WEIGHT_COUNTS

from keras_cbloss import CBFocalLoss
from keras_cbloss import CBSoftmaxLoss
from keras_cbloss import cb_focal_crossentropy
from keras_cbloss import cb_sigmoid_crossentropy
from keras_cbloss import cb_softmax_crossentropy

COUNTS = [30, 10, 5, 2]
C = len(COUNTS)
FEATURES = 3
KINDS = ["softmax", "sigmoid", "focal"]


def _loss(kind, counts=COUNTS, **kwargs):
    kwargs.setdefault("from_logits", True)
    return make_loss(kind, counts, 0.99, **kwargs)


def _x(n=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype("f4")


def _y(n=8):
    return (np.arange(n) % C).astype("int32")


def _model(loss, run_eagerly=True):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(C)])
    model.compile(keras.optimizers.SGD(0.1), loss=loss, run_eagerly=run_eagerly)
    return model


def _state(model):
    return (
        [w.copy() for w in model.get_weights()],
        int(to_numpy(model.optimizer.iterations)),
    )


def _assert_unchanged(model, state):
    weights, iterations = state
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(after, before)
    assert int(to_numpy(model.optimizer.iterations)) == iterations


def _assert_still_trains(model):
    history = model.fit(_x(), _y(), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert np.isfinite(
        np.concatenate([w.ravel() for w in model.get_weights()])
    ).all()


# --------------------------------------------------------------------------
# Counts, beta and gamma: every entry point, and nothing half-set.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("counts, error, match", BAD_WEIGHT_COUNTS)
def test_bad_counts_in_constructor_and_set_class_counts(
    kind, counts, error, match
):
    with pytest.raises(error, match=match):
        _loss(kind, counts=counts)
    loss = _loss(kind)
    weights = loss.class_weights
    with pytest.raises(error, match=match):
        loss.set_class_counts(counts)
    # the rejected counts left the loss as it was
    np.testing.assert_array_equal(loss.class_counts, COUNTS)
    np.testing.assert_array_equal(loss.class_weights, weights)
    waiting = _loss(kind, counts=None)
    with pytest.raises(error, match=match):
        waiting.set_class_counts(counts)
    assert waiting.class_counts is None and waiting.class_weights is None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("beta, error, match", BAD_BETAS)
def test_bad_beta(kind, beta, error, match):
    with pytest.raises(
        error,
        match=r"Invalid (value|type) for argument "
        r"`beta`.*" + match,
    ):
        make_loss(kind, COUNTS, beta)


@pytest.mark.parametrize("gamma, error, match", BAD_GAMMAS)
def test_bad_gamma_in_class_and_function(gamma, error, match):
    match = r"Invalid (value|type) for argument `gamma`.*" + match
    with pytest.raises(error, match=match):
        CBFocalLoss(COUNTS, 0.99, gamma)
    with pytest.raises(error, match=match):
        cb_focal_crossentropy(
            _y(4), np.zeros((4, C), "f4"), [1.0] * C, gamma=gamma
        )


@pytest.mark.parametrize(
    "function",
    [cb_softmax_crossentropy, cb_sigmoid_crossentropy, cb_focal_crossentropy],
)
def test_functions_reject_bad_class_weights(function):
    logits = np.zeros((2, C), "f4")
    with pytest.raises(ValueError, match=r"1-D.*shape \(1, 4\)"):
        function(_y(2), logits, [[1.0] * C])
    with pytest.raises(ValueError, match=r"4 classes.*3 class weights"):
        function(_y(2), logits, [1.0] * 3)


def test_tiny_positive_counts_give_finite_weights_or_an_error():
    # 1 / E(n) is near the float64 maximum for counts near 1e-308: the
    # weights stay finite (uniform here); below that, an error, never NaN.
    np.testing.assert_array_equal(
        CBSoftmaxLoss([1e-308, 1e-308], 0.9).class_weights, [1.0, 1.0]
    )
    with pytest.raises(ValueError, match=r"too close to zero.*\[5e-324\]"):
        CBSoftmaxLoss([5e-324, 3.0], 0.5)


def test_a_zero_count_class_warns_gets_weight_zero_and_trains():
    counts = [30, 0, 5, 2]
    with pytest.warns(UserWarning, match=r"Classes \[1\].*weight 0"):
        loss = CBFocalLoss(counts, 0.99, 2.0, from_logits=True)
    assert loss.class_weights[1] == 0.0
    assert np.isfinite(loss.class_weights).all()
    np.testing.assert_allclose(
        loss.class_weights, reference.cb_weights(counts, 0.99)
    )
    # a sample of the empty class (which a model trained on these counts
    # never sees) costs nothing; nothing is inf or NaN
    model = _model(loss, run_eagerly=False)
    history = model.fit(_x(), _y(), batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # warned above
        per_sample = CBFocalLoss(
            counts, 0.99, 2.0, from_logits=True, reduction="none"
        )
    values = to_numpy(per_sample(_y(), model(_x())))
    assert np.all(values[_y() == 1] == 0.0) and np.all(values[_y() != 1] > 0)


# --------------------------------------------------------------------------
# Bad batches in fit: eager mode rejects them and changes nothing.
# --------------------------------------------------------------------------

# name: (labels, loss kind, counts, error, message)
BAD_BATCHES = {
    "label_equal_to_num_classes": (
        np.array([0, 1, 2, 4, 0, 1, 2, 3]),
        "focal",
        COUNTS,
        ValueError,
        r"Invalid sparse labels.*\[0, 4\).*\[4(\.0)?\]",
    ),
    "label_far_out_of_range": (
        np.array([0, 1, 2, 3, 1000, 1, 2, 3]),
        "sigmoid",
        COUNTS,
        ValueError,
        r"\[0, 4\).*\[1000(\.0)?\]",
    ),
    "negative_label": (
        np.array([0, 1, 2, -1, 0, 1, 2, 3]),
        "softmax",
        COUNTS,
        ValueError,
        r"\[0, 4\).*\[-1(\.0)?\]",
    ),
    "float_label_not_an_integer": (
        np.array([0, 1, 2, 0.5, 0, 1, 2, 3], "f4"),
        "softmax",
        COUNTS,
        ValueError,
        r"integer class ids.*\[0.5\]",
    ),
    "nan_label": (
        np.array([0, 1, 2, np.nan, 0, 1, 2, 3], "f4"),
        "focal",
        COUNTS,
        ValueError,
        r"integer class ids.*\[nan\]",
    ),
    "dense_target_above_one": (
        np.where(np.eye(C)[_y()] == 1, 2.0, 0.0).astype("f4"),
        "sigmoid",
        COUNTS,
        ValueError,
        r"Invalid dense targets.*\[0, 1\].*\[2, 2, 2, 2, 2, 2, 2, 2\]",
    ),
    "unknown_entries_without_ignore_class": (
        np.where(np.arange(C) == 3, -1.0, np.eye(C)[_y()]).astype("f4"),
        "focal",
        COUNTS,
        ValueError,
        r"Invalid dense targets.*\[-1, .*`ignore_class=-1`",
    ),
    "labels_of_wrong_rank": (
        np.zeros((8, 2, 2), "int32"),
        "softmax",
        COUNTS,
        ValueError,
        r"Labels and predictions do not match.*y_true.shape=\(8, 2, 2\)",
    ),
    "dense_labels_of_wrong_width": (
        np.eye(C + 1, dtype="f4")[_y()],
        "focal",
        COUNTS,
        ValueError,
        r"y_true.shape=\(8, 5\), y_pred.shape=\(8, 4\)",
    ),
    "counts_of_wrong_length_for_the_model": (
        _y(),
        "sigmoid",
        COUNTS + [1],
        ValueError,
        r"predictions have 4 classes.*5 class weights",
    ),
}
SHAPE_ERRORS = [
    "labels_of_wrong_rank",
    "dense_labels_of_wrong_width",
    "counts_of_wrong_length_for_the_model",
]


def _rejected_by_fit(name, run_eagerly):
    """The model of bad batch `name`, after checking that `fit` raised the
    catalogued error and left the model as it was."""
    y, kind, counts, error, match = BAD_BATCHES[name]
    model = _model(_loss(kind, counts=counts), run_eagerly=run_eagerly)
    state = _state(model)
    with pytest.raises(error, match=match):
        model.fit(_x(), y, batch_size=8, epochs=1, verbose=0)
    _assert_unchanged(model, state)
    return model


@pytest.mark.parametrize("name", sorted(BAD_BATCHES))
def test_bad_batch_is_rejected_in_eager_mode_without_side_effects(name):
    y, _, _, error, match = BAD_BATCHES[name]
    model = _rejected_by_fit(name, run_eagerly=True)
    state = _state(model)
    with pytest.raises(error, match=match):
        model.train_on_batch(_x(), y)
    _assert_unchanged(model, state)
    if name != "counts_of_wrong_length_for_the_model":
        _assert_still_trains(model)


@pytest.mark.parametrize("name", SHAPE_ERRORS)
def test_shape_errors_are_rejected_in_compiled_mode_too(name):
    _rejected_by_fit(name, run_eagerly=False)


@pytest.mark.parametrize(
    "name",
    [
        "label_equal_to_num_classes",
        "negative_label",
        "float_label_not_an_integer",
        "dense_target_above_one",
        "unknown_entries_without_ignore_class",
    ],
)
def test_bad_label_values_in_compiled_mode_give_a_nan_loss(name):
    # Compiled code cannot raise on values: the loss is NaN, never a
    # plausible number, and TerminateOnNaN stops at the first such batch.
    y, kind, counts, _, _ = BAD_BATCHES[name]
    model = _model(_loss(kind, counts=counts), run_eagerly=False)
    history = model.fit(
        _x(),
        y,
        batch_size=8,
        epochs=5,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    assert len(history.history["loss"]) == 1
    assert np.isnan(history.history["loss"][0])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("run_eagerly", [True, False])
def test_nan_predictions_give_a_nan_loss_not_a_number(kind, run_eagerly):
    x = _x()
    x[3, 0] = np.nan  # one bad input row gives one NaN prediction row
    model = _model(_loss(kind), run_eagerly=run_eagerly)
    assert np.isnan(model.evaluate(x, _y(), verbose=0))
    history = model.fit(
        x,
        _y(),
        batch_size=8,
        epochs=5,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    assert len(history.history["loss"]) == 1
    assert np.isnan(history.history["loss"][0])


# --------------------------------------------------------------------------
# Empty batches.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_empty_batch_gives_what_keras_own_losses_give(kind):
    # Keras' reduction returns a per-sample vector of shape (0,) unreduced
    # (its `reduce_values` skips shape (0,)), for its own losses as for
    # these; an empty batch of maps reduces to 0 (sum / size with
    # divide_no_nan). Never NaN.
    loss = _loss(kind)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    empty_y, empty_p = np.zeros((0,), "int32"), np.zeros((0, C), "f4")
    ours, theirs = loss(empty_y, empty_p), keras_loss(empty_y, empty_p)
    assert tuple(ours.shape) == tuple(theirs.shape) == (0,)
    maps_y, maps_p = np.zeros((0, 3, 3), "int32"), np.zeros((0, 3, 3, C), "f4")
    assert float(to_numpy(loss(maps_y, maps_p))) == 0.0
    assert float(to_numpy(keras_loss(maps_y, maps_p))) == 0.0
    summed = _loss(kind, reduction="sum")
    assert float(to_numpy(summed(maps_y, maps_p))) == 0.0
    dense = _loss(kind)(np.zeros((0, C), "f4"), empty_p)
    assert tuple(dense.shape) == (0,)
    unreduced = _loss(kind, reduction="none")(empty_y, empty_p)
    assert tuple(unreduced.shape) == (0,)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("run_eagerly", [True, False])
def test_empty_batch_in_training_reports_zero_and_changes_nothing(
    kind, run_eagerly
):
    model = _model(_loss(kind), run_eagerly=run_eagerly)
    weights, _ = _state(model)
    loss = model.train_on_batch(
        np.zeros((0, FEATURES), "f4"), np.zeros((0,), "int32")
    )
    assert float(np.ravel(loss)[0]) == 0.0
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(after, before)  # zero gradient (SGD)
    _assert_still_trains(model)


# --------------------------------------------------------------------------
# Counting the training data: ClassCounter stops fit before the first step.
# --------------------------------------------------------------------------


def _bad_datasets():
    import tensorflow as tf

    x, y = _x(16), _y(16)
    xy = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    return {
        "infinite_dataset_without_steps": (
            xy,
            xy.repeat(),
            ValueError,
            r"infinite.*`steps`",
        ),
        "elements_not_x_y_tuples": (
            xy,
            tf.data.Dataset.from_tensor_slices(
                {"features": x, "labels": y}
            ).batch(8),
            ValueError,
            r"dicts \(keys \['features', 'labels'\]\).*label_fn",
        ),
        "four_tuples": (
            xy,
            tf.data.Dataset.from_tensor_slices((x, y, y, y)).batch(8),
            ValueError,
            r"element_spec",
        ),
        "label_out_of_range_in_the_data": (
            xy,
            tf.data.Dataset.from_tensor_slices(
                (x, np.where(y == 3, 9, y))
            ).batch(8),
            ValueError,
            r"\[0, 4\).*label of 9",
        ),
        "empty_dataset": (xy, xy.take(0), ValueError, r"empty"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "infinite_dataset_without_steps",
        "elements_not_x_y_tuples",
        "four_tuples",
        "label_out_of_range_in_the_data",
        "empty_dataset",
    ],
)
@pytest.mark.parametrize("run_eagerly", [True, False])
def test_uncountable_dataset_stops_fit_before_any_step(name, run_eagerly):
    from keras_cbloss import ClassCounter

    train, counted, error, match = _bad_datasets()[name]
    model = _model(_loss("focal", counts=None), run_eagerly=run_eagerly)
    state = _state(model)
    with pytest.raises(error, match=match):
        model.fit(
            train,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[ClassCounter(counted, verbose=0)],
        )
    _assert_unchanged(model, state)
    assert model.loss.class_counts is None  # nothing half-counted


def test_class_counter_takes_num_classes_from_a_sequential_model():
    # Without `num_classes`, the width of the model's output is used, so a
    # class absent from the data gets a count of 0 (a keras.Sequential
    # model has no `output_names`; this once fell back to the labels).
    import tensorflow as tf

    from keras_cbloss import ClassCounter

    x, y = _x(6), np.array([0, 1, 2, 0, 1, 2])  # class 3 never occurs
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    model = _model(_loss("softmax", counts=None))
    with pytest.warns(UserWarning, match=r"Classes \[3\] have a count"):
        model.fit(
            train,
            verbose=0,
            shuffle=False,
            callbacks=[ClassCounter(train, verbose=0)],
        )
    np.testing.assert_array_equal(model.loss.class_counts, [2, 2, 2, 0])


# --------------------------------------------------------------------------
# String labels: a clear TypeError before any tracing, and the fix works.
# --------------------------------------------------------------------------

NAMES = ["cat", "dog", "fish", "eel"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "form", ["numpy_str", "numpy_bytes", "list", "tf_string"]
)
def test_string_labels_raise_a_type_error_naming_string_lookup(kind, form):
    import tensorflow as tf

    names = [NAMES[i] for i in _y(4)]
    y = {
        "numpy_str": np.array(names),
        "list": names,
        "numpy_bytes": np.array(names).astype("S"),
        "tf_string": tf.constant(names),
    }[form]
    logits = np.zeros((4, C), "f4")
    with pytest.raises(
        TypeError,
        match=r"Invalid type for argument "
        r"`y_true`.*dtype.*StringLookup",
    ):
        _loss(kind)(y, logits)
    function = {
        "softmax": cb_softmax_crossentropy,
        "sigmoid": cb_sigmoid_crossentropy,
        "focal": cb_focal_crossentropy,
    }[kind]
    with pytest.raises(TypeError, match="StringLookup"):
        function(y, logits, [1.0] * C)


def test_string_labels_in_fit_stop_before_a_step_and_the_fix_trains():
    import tensorflow as tf

    names = np.array([NAMES[i] for i in _y(16)])
    data = tf.data.Dataset.from_tensor_slices((_x(16), names)).batch(8)
    model = _model(_loss("focal"), run_eagerly=False)
    state = _state(model)
    with pytest.raises(TypeError, match="StringLookup"):
        model.fit(data, epochs=1, verbose=0, shuffle=False)
    _assert_unchanged(model, state)
    # following the advice: map the names to class ids in the pipeline
    lookup = keras.layers.StringLookup(vocabulary=NAMES, num_oov_indices=0)
    ids = data.map(lambda x, y: (x, lookup(y)))
    history = model.fit(ids, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    np.testing.assert_allclose(
        model.evaluate(ids, verbose=0),
        model.evaluate(_x(16), _y(16), batch_size=8, verbose=0),
        rtol=1e-6,
    )
