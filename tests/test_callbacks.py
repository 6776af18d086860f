"""Tests of the callbacks: `ClassCounter` and `DeferredReweighting`, with
the real class-balanced losses.

Backend-agnostic (keras only, plus `tf.data`, which feeds `fit` on every
backend): `tests/backend_runs.py` reruns this module under JAX and PyTorch.
Expected values come from the float64 reference in `tests/reference.py`.
The `DeferredReweighting` tests train with a learning rate of 0, so the
model stays fixed and each epoch's training loss shows the weights its train
step was traced with.
"""

import contextlib
import inspect
import re
import warnings

import children
import keras
import numpy as np
import pytest
import reference
import tensorflow as tf
from backend_utils import make_loss
from catalogues import BAD_BETAS

from keras_cbloss import CBFocalLoss
from keras_cbloss import CBSoftmaxLoss
from keras_cbloss import ClassCounter
from keras_cbloss import DeferredReweighting
from keras_cbloss import callbacks as callbacks_module
from keras_cbloss import count_classes

BACKEND = keras.backend.backend()
C = 4
BETA = 0.9
GAMMA = 0.5
Y = np.array([0] * 9 + [1] * 4 + [2] * 2 + [3] * 1)
# Another sampling of the same data, with the imbalance reversed.
Y_RESAMPLED = np.array([3] * 9 + [2] * 4 + [1] * 2 + [0] * 1)
X = np.random.default_rng(0).normal(size=(len(Y), 5)).astype("float32")
COUNTS = np.bincount(Y, minlength=C)
KINDS = ["focal", "sigmoid", "softmax"]
# DeferredReweighting switches to this beta.
DRW_BETA = 0.99
PLAIN = "sparse_categorical_crossentropy"
# torch.compile takes tens of seconds per model on CPU: one loss covers it.
TORCH_COMPILE_CASES = ("softmax",)


# Helpers.


def cb_loss(kind, counts=None, beta=BETA):
    """The module's CB loss of `kind`, on logits (`None`: counts wait)."""
    return make_loss(kind, counts, beta, GAMMA, from_logits=True)


def expected_loss(kind, logits, y, weights):
    """Mean float64 reference loss of fixed `logits` with `weights`."""
    per_sample = reference.loss_by_kind(kind, y, logits, weights, True, GAMMA)
    return float(np.mean(per_sample))


def loss_at_beta(kind, logits, beta):
    """`expected_loss` on `Y` with the weights of `COUNTS` at `beta`."""
    return expected_loss(kind, logits, Y, reference.cb_weights(COUNTS, beta))


def dataset(y=Y, batch=len(Y)):
    return tf.data.Dataset.from_tensor_slices((X, y)).batch(batch)


def make_model(loss, lr=0.1, jit_compile=False, outputs=1):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5,), name="x")
    hidden = keras.layers.Dense(6, activation="tanh")(inputs)
    if outputs == 1:
        out = keras.layers.Dense(C, name="cls")(hidden)
    else:
        out = {
            name: keras.layers.Dense(C, name=name)(hidden)
            for name in ("cls", "aux")
        }
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.SGD(lr), loss=loss, jit_compile=jit_compile)
    return model


def skip_slow_torch_compile(jit_compile, kind="softmax"):
    if BACKEND == "torch" and jit_compile and kind not in TORCH_COMPILE_CASES:
        pytest.skip("torch.compile is slow on CPU; softmax covers the path")


class Recorder(keras.callbacks.Callback):
    """Records the model's train/test function objects at each epoch end,
    and the beta of `loss` when one is given."""

    def __init__(self, loss=None):
        super().__init__()
        self.loss = loss
        self.functions = []
        self.betas = []

    def on_epoch_end(self, epoch, logs=None):
        self.functions.append(
            (self.model.train_function, self.model.test_function)
        )
        if self.loss is not None:
            self.betas.append(self.loss.beta)


class RebuildCounter:
    """Counts the forced rebuilds of a model's train function."""

    def __init__(self, model):
        self.forced = 0
        make = model.make_train_function

        def counting(force=False):
            self.forced += bool(force)
            return make(force=force)

        model.make_train_function = counting


def fixed_model(loss, jit_compile=False):
    """`make_model` with a learning rate of 0: the weights never change."""
    return make_model(loss, lr=0.0, jit_compile=jit_compile)


def changing_labels(label_sets):
    """A labels-only dataset whose n-th iteration yields `label_sets[n]`."""
    state = {"count": 0}

    def generate():
        labels = label_sets[min(state["count"], len(label_sets) - 1)]
        state["count"] += 1
        yield from labels

    return tf.data.Dataset.from_generator(
        generate, output_signature=tf.TensorSpec([], tf.int64)
    ), state


# The counts reach the compiled train step.


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_counted_loss_trains_like_a_loss_built_with_counts(kind, jit_compile):
    # Under torch.compile (tens of seconds per model on CPU), counts reaching
    # a compiled step are shown by the recount and DRW tests below.
    skip_slow_torch_compile(jit_compile, kind=None)
    counts = np.bincount(Y, minlength=C)
    waiting = make_model(cb_loss(kind), jit_compile=jit_compile)
    given = make_model(cb_loss(kind, counts), jit_compile=jit_compile)
    logits = waiting.predict(X, verbose=0)
    counter = ClassCounter(dataset(), verbose=0)

    history_w = waiting.fit(
        dataset(), epochs=1, callbacks=[counter], verbose=0, shuffle=False
    )
    history_g = given.fit(dataset(), epochs=1, verbose=0, shuffle=False)

    loss = waiting.loss
    np.testing.assert_array_equal(counter.counts, counts)
    np.testing.assert_array_equal(loss.class_counts, counts)
    weights = reference.cb_weights(counts, BETA)
    np.testing.assert_allclose(loss.class_weights, weights, 1e-12)
    expected = expected_loss(kind, logits, Y, weights)
    np.testing.assert_allclose(history_w.history["loss"][0], expected, 1e-5)
    np.testing.assert_allclose(
        history_w.history["loss"], history_g.history["loss"], 1e-6
    )
    for a, b in zip(waiting.get_weights(), given.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_recount_each_epoch_reaches_train_step_validation_and_evaluate(
    jit_compile,
):
    if BACKEND == "torch" and jit_compile:
        pytest.skip(
            "torch.compile takes half a minute here on CPU; the softmax "
            "schedule test covers rebuilt steps under it (both callbacks "
            "rebuild through the same function)"
        )
    # lr = 0 keeps the model fixed, so each epoch's loss shows its weights.
    labels, _ = changing_labels([Y, Y_RESAMPLED])
    model = make_model(cb_loss("softmax"), lr=0.0, jit_compile=jit_compile)
    logits = model.predict(X, verbose=0)
    counter = ClassCounter(labels, C, recount="epoch", verbose=0)
    recorder = Recorder()
    history = model.fit(
        dataset(),
        epochs=3,
        validation_data=dataset(),
        verbose=0,
        callbacks=[counter, recorder],
        shuffle=False,
    )
    first = expected_loss(
        "softmax", logits, Y, reference.cb_weights(np.bincount(Y), BETA)
    )
    second = expected_loss(
        "softmax",
        logits,
        Y,
        reference.cb_weights(np.bincount(Y_RESAMPLED), BETA),
    )
    assert abs(first - second) > 0.5  # the weights really differ
    np.testing.assert_allclose(
        history.history["loss"], [first, second, second], 1e-5
    )
    np.testing.assert_allclose(
        history.history["val_loss"], [first, second, second], 1e-5
    )
    np.testing.assert_allclose(
        model.evaluate(dataset(), verbose=0), second, 1e-5
    )
    np.testing.assert_array_equal(counter.counts, np.bincount(Y_RESAMPLED))
    # Epoch 3 counted the same labels as epoch 2: no rebuild, no retrace.
    assert recorder.functions[1] != recorder.functions[0]
    assert recorder.functions[2][0] is recorder.functions[1][0]
    assert recorder.functions[2][1] is recorder.functions[1][1]


def test_a_second_fit_with_other_counts_uses_them():
    model = make_model(cb_loss("focal"), lr=0.0)
    logits = model.predict(X, verbose=0)
    counter = ClassCounter(dataset(), verbose=0)
    model.fit(dataset(), callbacks=[counter], verbose=0, shuffle=False)
    train_function = model.train_function
    # The same counter again: same counts, the traced step is kept.
    model.fit(dataset(), callbacks=[counter], verbose=0, shuffle=False)
    assert model.train_function is train_function
    # Counts set by hand in between are noticed (with a warning that the
    # traced steps keep the old weights; the PyTorch trainer runs the loss
    # eagerly, traces nothing and does not warn) and replaced.
    warns = (
        contextlib.nullcontext()
        if BACKEND == "torch"
        else pytest.warns(UserWarning, match="make_train_function")
    )
    with warns:
        model.loss.set_class_counts([1, 1, 1, 100])
    history = model.fit(
        dataset(), callbacks=[counter], verbose=0, shuffle=False
    )
    expected = expected_loss(
        "focal", logits, Y, reference.cb_weights(np.bincount(Y), BETA)
    )
    np.testing.assert_allclose(history.history["loss"], [expected], 1e-5)
    # Another dataset: new counts, new weights in the step.
    other = ClassCounter(dataset(Y_RESAMPLED), verbose=0)
    history = model.fit(dataset(), callbacks=[other], verbose=0, shuffle=False)
    expected = expected_loss(
        "focal", logits, Y, reference.cb_weights(np.bincount(Y_RESAMPLED), BETA)
    )
    np.testing.assert_allclose(history.history["loss"], [expected], 1e-5)


def test_a_loss_waiting_for_counts_fails_clearly_without_the_counter():
    # JAX's symbolic build passes (uniform weights); the real step raises.
    model = make_model(cb_loss("softmax"))
    with pytest.raises(ValueError, match="no class counts yet.*ClassCounter"):
        model.fit(dataset(), epochs=1, verbose=0, shuffle=False)


# Which losses get the counts.


def test_dict_losses_all_outputs_or_the_named_ones():
    def compiled():
        return make_model(
            {
                "cls": cb_loss("softmax"),
                "aux": cb_loss("sigmoid"),
            },
            outputs=2,
        )

    model = compiled()
    counter = ClassCounter(dataset(), verbose=0)
    counter.set_model(model)
    counter.on_train_begin()
    for name in ("cls", "aux"):
        np.testing.assert_array_equal(
            model.loss[name].class_counts, np.bincount(Y)
        )

    model = compiled()
    counter = ClassCounter(dataset(Y_RESAMPLED), outputs="aux", verbose=0)
    counter.set_model(model)
    counter.on_train_begin()
    assert model.loss["cls"].class_counts is None
    np.testing.assert_array_equal(
        model.loss["aux"].class_counts, np.bincount(Y_RESAMPLED)
    )


def test_one_counter_per_output_with_label_fn_trains():
    model = make_model(
        {"cls": cb_loss("softmax"), "aux": PLAIN},
        outputs=2,
    )
    train = tf.data.Dataset.from_tensor_slices(
        (X, {"cls": Y, "aux": Y_RESAMPLED})
    ).batch(8)
    counter = ClassCounter(
        train, label_fn=lambda x, y: y["cls"], outputs=["cls"], verbose=0
    )
    history = model.fit(
        train, epochs=2, callbacks=[counter], verbose=0, shuffle=False
    )
    assert np.all(np.isfinite(history.history["loss"]))
    np.testing.assert_array_equal(
        model.loss["cls"].class_counts, np.bincount(Y)
    )


def test_list_losses_and_num_classes_from_the_model_output():
    model = make_model([cb_loss("softmax"), cb_loss("focal")], outputs=2)
    # Class 3 never occurs: the output width still gives 4 counts.
    labels = tf.data.Dataset.from_tensor_slices(np.array([0, 0, 1, 2]))
    counter = ClassCounter(labels, verbose=0)
    counter.set_model(model)
    with pytest.warns(UserWarning, match=r"\[3\] have a count of zero"):
        counter.on_train_begin()
    for loss in model.loss:
        np.testing.assert_array_equal(loss.class_counts, [2, 1, 1, 0])

    counter = ClassCounter(labels, num_classes=3, verbose=0)
    counter.set_model(model)
    with pytest.raises(ValueError, match=r"num_classes=3"):
        counter.on_train_begin()


def test_sequential_model_output_width_gives_num_classes():
    # Sequential models have `outputs` but no `output_names`.
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(C)])
    model.compile("sgd", loss=cb_loss("softmax"))
    labels = tf.data.Dataset.from_tensor_slices(np.array([0, 1, 2, 1]))
    counter = ClassCounter(labels, verbose=0)
    counter.set_model(model)
    with pytest.warns(UserWarning, match=r"\[3\] have a count of zero"):
        counter.on_train_begin()
    np.testing.assert_array_equal(model.loss.class_counts, [1, 2, 1, 0])
    bad = tf.data.Dataset.from_tensor_slices(np.array([0, 4]))
    counter = ClassCounter(bad, verbose=0)
    counter.set_model(model)
    with pytest.raises(ValueError, match=r"\[0, 4\).*label of 4"):
        counter.on_train_begin()
    counter = ClassCounter(labels, outputs="dense", verbose=0)
    counter.set_model(model)
    with pytest.raises(ValueError, match="single unnamed output"):
        counter.on_train_begin()


def test_losses_that_cannot_take_counts():
    plain = make_model(keras.losses.SparseCategoricalCrossentropy(True))
    counter = ClassCounter(dataset(), verbose=0)
    counter.set_model(plain)
    with pytest.raises(ValueError, match="no class-balanced loss"):
        counter.on_train_begin()

    mixed = make_model(
        {"cls": cb_loss("softmax"), "aux": PLAIN},
        outputs=2,
    )
    for outputs, match in [
        ("aux", r"outputs \['aux'\] are not class-balanced"),
        (["nope"], r"no loss for outputs \['nope'\].*\['cls', 'aux'\]"),
    ]:
        counter = ClassCounter(dataset(), outputs=outputs, verbose=0)
        counter.set_model(mixed)
        with pytest.raises(ValueError, match=match):
            counter.on_train_begin()

    uncompiled = keras.Sequential([keras.Input((5,)), keras.layers.Dense(C)])
    counter = ClassCounter(dataset(), verbose=0)
    counter.set_model(uncompiled)
    with pytest.raises(ValueError, match="compiled model"):
        counter.on_train_begin()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"dataset": "train"}, TypeError, "as `fit` takes it"),
        ({"dataset": iter([np.array([0, 1])])}, TypeError, "one-shot"),
        ({"recount": "batch"}, ValueError, "recount"),
        ({"recount": None}, ValueError, "recount"),
        ({"outputs": 3}, TypeError, "outputs"),
        ({"outputs": []}, ValueError, "outputs"),
        ({"verbose": -1}, ValueError, "verbose"),
        ({"steps": 0}, ValueError, "steps"),
        ({"num_classes": "4"}, TypeError, "num_classes"),
        ({"label_fn": 1}, TypeError, "label_fn"),
        ({"sample_weighted": "no"}, TypeError, "sample_weighted"),
        ({"sparse": 0}, TypeError, "sparse"),
        ({"ignore_class": "255"}, TypeError, "ignore_class"),
    ],
)
def test_constructor_validation(kwargs, error, match):
    kwargs = {"dataset": dataset(), **kwargs}
    with pytest.raises(error, match=match):
        ClassCounter(**kwargs)


def test_counting_errors_surface_at_train_begin():
    model = make_model(cb_loss("softmax"))
    bad = dataset(np.where(Y == 3, 7, Y))
    with pytest.raises(ValueError, match=r"\[0, 4\).*label of 7"):
        model.fit(
            bad,
            callbacks=[ClassCounter(bad, verbose=0)],
            verbose=0,
            shuffle=False,
        )
    with pytest.raises(ValueError, match="`steps`"):
        model.fit(
            dataset(),
            verbose=0,
            shuffle=False,
            callbacks=[ClassCounter(dataset().repeat(), verbose=0)],
        )
    history = model.fit(
        dataset(),
        verbose=0,
        shuffle=False,
        callbacks=[ClassCounter(dataset().repeat(), steps=2, verbose=0)],
    )
    np.testing.assert_array_equal(model.loss.class_counts, 2 * np.bincount(Y))
    assert np.isfinite(history.history["loss"][0])


def test_signature_agrees_with_count_classes():
    counting = inspect.signature(count_classes).parameters
    counter = inspect.signature(ClassCounter).parameters
    for name, parameter in counting.items():
        assert name in counter, f"ClassCounter lacks `{name}`"
        assert counter[name].kind == parameter.kind, name
        assert counter[name].default == parameter.default, name
    assert set(counter) - set(counting) == {"recount", "outputs"}


def test_partial_count_warns_at_train_begin():
    model = make_model(cb_loss("softmax"))
    y = np.tile(np.arange(C), 4)
    counter = ClassCounter(dataset(y, batch=4), steps=2, verbose=0)
    counter.set_model(model)
    with pytest.warns(UserWarning, match=r"cover only 2 of its 4 elements"):
        counter.on_train_begin()
    np.testing.assert_array_equal(counter.counts, [2, 2, 2, 2])


def test_sample_weighted_counts_reach_the_loss():
    w = np.linspace(0.5, 2.0, len(Y))
    train = tf.data.Dataset.from_tensor_slices((X, Y, w)).batch(8)
    model = make_model(cb_loss("sigmoid"))
    counter = ClassCounter(train, sample_weighted=True, verbose=0)
    counter.set_model(model)
    counter.on_train_begin()
    np.testing.assert_allclose(model.loss.class_counts, np.bincount(Y, w, C))
    assert counter.counts.dtype == np.float64


# Label layouts: one-unit binary heads, per-token and per-pixel ids.


def one_unit_model(loss):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), loss=loss)
    return model


@pytest.mark.parametrize("batch", [8, 2])
@pytest.mark.parametrize("column", [False, True])
@pytest.mark.parametrize("dtype", ["int64", "float32"])
def test_one_unit_model_counts_negatives_and_positives(column, dtype, batch):
    y = (Y == 3).astype(dtype)  # 15 negatives, 1 positive
    labels = y[:, None] if column else y
    # Batches of 2 of static size: float labels [2] once looked like rows.
    train = tf.data.Dataset.from_tensor_slices((X, labels)).batch(
        batch, drop_remainder=True
    )
    model = one_unit_model(cb_loss("focal"))
    counter = ClassCounter(train, verbose=0)
    counter.set_model(model)
    counter.on_train_begin()
    np.testing.assert_array_equal(model.loss.class_counts, [15, 1])
    with pytest.raises(ValueError, match=r"\[2\] classes.*num_classes=1"):
        bad = ClassCounter(train, num_classes=1, verbose=0)
        bad.set_model(model)
        bad.on_train_begin()


def _one_unit_heads_supported():
    loss = CBFocalLoss([15, 1], BETA, GAMMA, from_logits=True)
    try:
        loss(np.zeros((2, 1), "float32"), np.zeros((2, 1), "float32"))
    except ValueError:
        return False
    return True


def test_one_unit_model_trains_with_the_counter():
    if not _one_unit_heads_supported():
        pytest.skip("the losses do not take [n_neg, n_pos] for Dense(1) yet")
    y = (Y == 3).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((X, y)).batch(8)
    model = one_unit_model(cb_loss("focal"))
    history = model.fit(
        train,
        epochs=2,
        verbose=0,
        shuffle=False,
        callbacks=[ClassCounter(train, verbose=0)],
    )
    np.testing.assert_array_equal(model.loss.class_counts, [15, 1])
    assert np.all(np.isfinite(history.history["loss"]))


ONE_UNIT_ADVICE = r"C output units \(e.g. `Dense\(C\)`\) and a loss built for C"


@pytest.mark.parametrize("num_classes", [None, C])
def test_one_unit_model_with_multiclass_labels_says_what_to_change(
    num_classes,
):
    # Labels 0..3 for a Dense(1) model: neither reading the labels nor
    # passing `num_classes=4` can help, the model must change.
    train = dataset(batch=8)
    model = one_unit_model(cb_loss("focal"))
    counter = ClassCounter(train, num_classes, verbose=0)
    counter.set_model(model)
    expected = (
        r"Expected 0/1 labels: a one-unit \(sigmoid\) output"
        if num_classes is None
        else r"\[2\] classes"
    )
    with pytest.raises(ValueError, match=expected) as info:
        counter.on_train_begin()
    assert re.search(ONE_UNIT_ADVICE, str(info.value))
    if num_classes is None:
        assert "Received a label of 2" in str(info.value)


def test_one_unit_advice_followed_trains_with_the_counter():
    # The advice above, followed: Dense(C) and a loss for C classes.
    train = dataset(batch=8)
    loss = cb_loss("focal")
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(C)])
    model.compile(keras.optimizers.SGD(0.1), loss=loss)
    history = model.fit(
        train,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[ClassCounter(train, verbose=0)],
    )
    np.testing.assert_array_equal(loss.class_counts, COUNTS)
    assert np.all(np.isfinite(history.history["loss"]))


T = 6


def token_model(loss, jit_compile=False):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(11, 4),
            keras.layers.Dense(C),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), loss=loss, jit_compile=jit_compile)
    return model


def test_per_token_ids_count_without_label_fn():
    # Outputs [B, T, C] and labels [B, T]: the ids are counted, even when T
    # is not C (once read as one-hot rows of width T).
    tokens = np.random.default_rng(1).integers(0, 11, (16, T)).astype("int32")
    tags = np.random.default_rng(2).integers(0, C, (16, T))
    train = tf.data.Dataset.from_tensor_slices((tokens, tags)).batch(4)
    model = token_model(cb_loss("softmax"))
    counter = ClassCounter(train, verbose=0)
    history = model.fit(
        train, epochs=1, verbose=0, shuffle=False, callbacks=[counter]
    )
    np.testing.assert_array_equal(
        model.loss.class_counts, np.bincount(tags.ravel(), minlength=C)
    )
    assert np.isfinite(history.history["loss"][0])


def test_padded_per_token_ids_with_ignore_class():
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 8, 10)
    tags = [rng.integers(0, C, n) for n in lengths]
    train = (
        tf.data.Dataset.from_generator(
            lambda: iter(tags), output_signature=tf.TensorSpec([None], tf.int64)
        )
        .map(lambda y: (tf.zeros_like(y, tf.int32), y))
        .padded_batch(3, padding_values=(0, tf.constant(-1, tf.int64)))
    )
    expected = np.bincount(np.concatenate(tags), minlength=C)
    model = token_model(cb_loss("softmax"))
    counter = ClassCounter(train, ignore_class=-1, verbose=0)
    counter.set_model(model)
    counter.on_train_begin()
    np.testing.assert_array_equal(model.loss.class_counts, expected)
    # Without ignore_class, the padding is an invalid label that names it.
    counter = ClassCounter(train, verbose=0)
    counter.set_model(model)
    with pytest.raises(ValueError, match=r"label of -1.*`ignore_class`"):
        counter.on_train_begin()
    # The loss's own `ignore_class` is used when the counter has none.
    model.loss.ignore_class = -1
    counter.on_train_begin()
    np.testing.assert_array_equal(model.loss.class_counts, expected)


def _masked_tagger(loss):
    model = keras.Sequential(
        [
            keras.Input((4,), dtype="int32"),
            keras.layers.Embedding(8, 3, mask_zero=True),
            keras.layers.Dense(C),
        ]
    )
    model.compile("sgd", loss=loss)
    return model


def _counts_at_train_begin(counter, loss):
    counter.set_model(_masked_tagger(loss))
    counter.on_train_begin()
    return loss.class_counts


def test_a_keras_mask_that_counting_cannot_see_warns_and_the_fixes_work():
    # Padding that only the model's mask marks (token id 0) is labelled 0,
    # a real class: the loss and the metrics skip it, counting would not.
    x = np.array([[3, 5, 0, 0], [2, 4, 6, 1], [7, 0, 0, 0]])
    y = np.array([[1, 2, 0, 0], [2, 0, 1, 3], [3, 0, 0, 0]])
    real = np.bincount(y[x != 0], minlength=C)
    loss = cb_loss("softmax")
    with pytest.warns(
        UserWarning,
        match=r"Keras mask.*padding included.*"
        r"`ignore_class`.*sample_weighted=True",
    ):
        counts = _counts_at_train_begin(ClassCounter((x, y), verbose=0), loss)
    np.testing.assert_array_equal(counts, real + [5, 0, 0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the fixes: the mask as the weight ...
        weighted = ClassCounter(
            (x, y),
            label_fn=lambda x, y: (y, (x != 0).astype("float32")),
            sample_weighted=True,
            verbose=0,
        )
        counts = _counts_at_train_begin(weighted, cb_loss("softmax"))
        np.testing.assert_array_equal(counts, real)
        # ... or the padding labelled -1 and skipped by `ignore_class`
        padded = cb_loss("softmax")
        padded.ignore_class = -1
        counter = ClassCounter((x, np.where(x != 0, y, -1)), verbose=0)
        np.testing.assert_array_equal(
            _counts_at_train_begin(counter, padded), real
        )


@pytest.mark.parametrize("trailing_one", [False, True])
def test_per_pixel_masks_with_void_pixels(trailing_one):
    rng = np.random.default_rng(5)
    masks = rng.integers(0, C, (6, 4, 4))
    masks[rng.random(masks.shape) < 0.25] = 255
    labels = masks[..., None] if trailing_one else masks
    images = rng.normal(size=(6, 4, 4, 3)).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Conv2D(C, 1)]
    )
    loss = cb_loss("softmax")
    loss.ignore_class = 255
    model.compile("sgd", loss=loss)
    counter = ClassCounter(train, verbose=0)
    counter.set_model(model)
    counter.on_train_begin()
    np.testing.assert_array_equal(
        loss.class_counts, np.bincount(masks[masks != 255], minlength=C)
    )


def test_segmentation_model_trains_with_void_pixels():
    try:
        loss = CBSoftmaxLoss(None, BETA, from_logits=True, ignore_class=255)
    except TypeError:
        pytest.skip("the losses do not take `ignore_class` yet")
    rng = np.random.default_rng(6)
    masks = rng.integers(0, C, (8, 4, 4))
    masks[rng.random(masks.shape) < 0.25] = 255
    images = rng.normal(size=(8, 4, 4, 3)).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((images, masks)).batch(8)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Conv2D(C, 1)]
    )
    model.compile(keras.optimizers.SGD(0.0), loss=loss)
    logits = model.predict(images, verbose=0)
    history = model.fit(
        train,
        verbose=0,
        shuffle=False,
        callbacks=[ClassCounter(train, verbose=0)],
    )
    kept = masks != 255
    counts = np.bincount(masks[kept], minlength=C)
    np.testing.assert_array_equal(loss.class_counts, counts)
    # Mean over the labelled pixels of w[y] * CE (Keras' ignore_class).
    z = logits[kept].astype(np.float64)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    ce = -log_p[np.arange(len(z)), masks[kept]]
    expected = np.mean(reference.cb_weights(counts, BETA)[masks[kept]] * ce)
    np.testing.assert_allclose(history.history["loss"][0], expected, 1e-5)


# Pure helpers.


@pytest.mark.parametrize(
    "shapes, num_classes, expected",
    [
        ([(None, 4)], None, 4),
        ([(None, 1)], None, 2),  # one sigmoid unit: {negative, positive}
        ([(None, 1)], 2, 2),
        ([(None, 7, 5)], None, 5),
        ([(None, 4), (None, 4)], None, 4),
        ([], None, None),
        ([(None, None)], None, None),
        ([], 3, 3),
    ],
)
def test_implied_num_classes(shapes, num_classes, expected):
    implied = callbacks_module._implied_num_classes(shapes, num_classes)
    assert implied == expected


def test_implied_num_classes_errors():
    with pytest.raises(
        ValueError, match=r"widths \[3, 4\].*one `ClassCounter`"
    ):
        callbacks_module._implied_num_classes([(None, 4), (None, 3)])
    with pytest.raises(ValueError, match=r"\[2\] classes.*num_classes=1"):
        callbacks_module._implied_num_classes([(None, 1)], 1)


@pytest.mark.parametrize(
    "output, labels, expected",
    [
        ((None, 5), (None,), True),
        ((None, 8), (8,), True),  # ids, a drop_remainder batch of B == C
        ((None,), (8,), None),  # a rank-1 output says nothing
        ((None, 5), (None, 1), True),
        ((None, 5), (None, 5), False),
        ((None, 1), (None, 1), True),
        ((None, 1), (None,), True),  # one unit: 0/1 ids, whatever the rank
        ((None, 1), (2,), True),  # even a batch of 2 with drop_remainder
        ((None, 1), (), True),
        ((None, 8, 5), (None, 8), True),  # per-token ids, T = 8 != C
        ((None, None, 5), (None, None), True),  # padded_batch
        ((None, 8, 5), (None, 8, 5), False),
        ((None, 4, 4, 5), (None, 4, 4), True),  # per-pixel masks
        ((None, 4, 4, 5), (None, 4, 4, 1), True),
        ((None, 4, 4, 5), (4, 4), None),  # unbatched: left to count_classes
        ((None, 5, 5), (None, None, None), None),
    ],
)
def test_implied_label_form(output, labels, expected):
    form = callbacks_module._implied_label_form([output], labels)
    assert form is expected


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_ids_in_batches_of_num_classes_are_counted_as_ids(dtype):
    # Batches of exactly C ids (drop_remainder): labels [C] for outputs
    # [None, C] are ids, not one one-hot row each (float ids raised).
    y = np.random.default_rng(4).integers(0, C, 10 * C)
    x = np.random.default_rng(5).normal(size=(len(y), 5)).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((x, y.astype(dtype))).batch(
        C, drop_remainder=True
    )
    assert train.element_spec[1].shape == (C,)
    loss = cb_loss("softmax")
    model = make_model(loss)
    model.fit(
        train,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[ClassCounter(train, verbose=0)],
    )
    expected = np.bincount(y, minlength=C)
    np.testing.assert_array_equal(loss.class_counts, expected)


def test_implied_label_form_of_outputs_that_disagree():
    # Rows for a [B, 8] output, ids for a [B, 8, 5] one: left undecided.
    shapes = [(None, 8), (None, 8, 5)]
    labels = (None, 8)
    assert callbacks_module._implied_label_form(shapes, labels) is None


def test_implied_ignore_class():
    class Loss:
        def __init__(self, name, ignore_class):
            self.name, self.ignore_class = name, ignore_class

    same = [Loss("a", 255), Loss("b", 255)]
    assert callbacks_module._implied_ignore_class(same) == 255
    assert callbacks_module._implied_ignore_class(same, -1) == -1
    assert callbacks_module._implied_ignore_class([object()]) is None
    assert callbacks_module._implied_ignore_class([]) is None
    with pytest.raises(ValueError, match=r"\{'a': 255, 'b': None\}"):
        callbacks_module._implied_ignore_class(
            [Loss("a", 255), Loss("b", None)]
        )


def test_losses_with_different_ignore_class_name_the_fix():
    masks = np.array([[0, 1, 255], [2, 255, 3]])
    labels = tf.data.Dataset.from_tensor_slices(
        {"cls": masks, "aux": masks}
    ).batch(2)
    model = make_model(
        {"cls": cb_loss("softmax"), "aux": cb_loss("sigmoid")},
        outputs=2,
    )
    model.loss["cls"].ignore_class = 255
    counter = ClassCounter(labels, label_fn=lambda y: y["cls"], verbose=0)
    counter.set_model(model)
    with pytest.raises(
        ValueError,
        match=r"different `ignore_class`.*"
        r"pass `ignore_class=` to `ClassCounter`",
    ):
        counter.on_train_begin()
    # The fixes, followed: one value for both, or one counter per output.
    for kwargs in [{"ignore_class": 255}, {"outputs": "cls"}]:
        counter = ClassCounter(
            labels,
            label_fn=lambda y: y["cls"],
            sparse=True,
            verbose=0,
            **kwargs,
        )
        counter.set_model(model)
        counter.on_train_begin()
        np.testing.assert_array_equal(
            model.loss["cls"].class_counts, [1, 1, 1, 1]
        )


def test_output_shapes_and_named_losses():
    sequential = keras.Sequential([keras.Input((5,)), keras.layers.Dense(C)])
    sequential.compile("sgd", loss=cb_loss("softmax"))
    assert callbacks_module._output_shapes(sequential) == {None: (None, C)}
    assert callbacks_module._named_losses(sequential) == [
        (None, sequential.loss)
    ]
    two = make_model([cb_loss("softmax"), PLAIN], outputs=2)
    shapes = callbacks_module._output_shapes(two)
    assert shapes == {"cls": (None, C), "aux": (None, C)}
    names = [name for name, _ in callbacks_module._named_losses(two)]
    assert names == list(two.output_names)


def test_functions_are_current_only_for_the_same_counts_and_functions():
    model = make_model(cb_loss("softmax"))
    targets = callbacks_module._find_targets(model)
    counts = np.array([9, 4, 2, 1])
    model.loss.set_class_counts(counts)
    model.make_train_function(force=True)
    model.make_test_function(force=True)
    made = (model.train_function, model.test_function)
    current = callbacks_module._functions_are_current
    assert current(model, made, counts, counts, targets)
    assert not current(model, made, None, counts, targets)
    assert not current(model, made, counts + 1, counts, targets)
    assert not current(model, (None, None), counts, counts, targets)
    model.loss.set_class_counts([1, 1, 1, 1])  # changed by hand
    assert not current(model, made, counts, counts, targets)
    model.loss.set_class_counts(counts)
    model.make_train_function(force=True)  # rebuilt by someone else
    assert not current(model, made, counts, counts, targets)


class CountsProbe(keras.metrics.SparseCategoricalAccuracy):
    """A metric that takes class counts (like the long-tail metrics)."""

    def __init__(self, name="probe"):
        super().__init__(name=name)
        self.received = None

    def set_class_counts(self, counts):
        self.received = np.asarray(counts)


def test_find_targets_losses_and_compiled_metrics():
    probe, cb_metric = CountsProbe(), cb_loss("focal")
    model = make_model({"cls": cb_loss("softmax"), "aux": PLAIN}, outputs=2)
    model.compile(
        "sgd",
        loss=model.loss,
        metrics={"cls": [probe], "aux": [cb_metric, "accuracy"]},
    )
    targets = callbacks_module._find_targets(model)
    found = {(t.name, id(t.obj), t.is_loss) for t in targets}
    assert found == {
        ("cls", id(model.loss["cls"]), True),
        ("cls", id(probe), False),
        ("aux", id(cb_metric), False),
    }
    named = callbacks_module._find_targets(model, ("cls",))
    assert {id(t.obj) for t in named} == {id(model.loss["cls"]), id(probe)}


def test_cb_loss_used_as_a_metric_gets_the_counts():
    # A plain loss, and a CB loss without counts as a metric: the counter
    # reaches the metric, whose value is then the CB loss of the counts.
    metric = cb_loss("softmax")
    probe = CountsProbe()
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(C)])
    model.compile(
        keras.optimizers.SGD(0.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[metric, probe],
    )
    logits = model.predict(X, verbose=0)
    history = model.fit(
        dataset(),
        verbose=0,
        shuffle=False,
        callbacks=[ClassCounter(dataset(), verbose=0)],
    )
    counts = np.bincount(Y, minlength=C)
    np.testing.assert_array_equal(metric.class_counts, counts)
    np.testing.assert_array_equal(probe.received, counts)
    expected = expected_loss(
        "softmax", logits, Y, reference.cb_weights(counts, BETA)
    )
    np.testing.assert_allclose(
        history.history["cb_softmax_loss"][0], expected, 1e-5
    )


# Logging and saving.


def test_logs_counts_and_weights(capsys):
    model = make_model(cb_loss("softmax"))
    model.fit(
        dataset(),
        verbose=0,
        shuffle=False,
        callbacks=[ClassCounter(dataset(), verbose=1)],
    )
    out = capsys.readouterr().out
    assert "16 labels in 4 classes" in out and "[9 4 2 1]" in out
    assert "class weights of cb_softmax_loss" in out and "beta=0.9" in out
    # "auto" follows fit(verbose=0): silent.
    model.fit(
        dataset(), verbose=0, shuffle=False, callbacks=[ClassCounter(dataset())]
    )
    assert capsys.readouterr().out == ""


def test_saved_model_keeps_the_counted_counts(tmp_path):
    model = make_model(cb_loss("focal"))
    model.fit(
        dataset(),
        epochs=2,
        verbose=0,
        shuffle=False,
        callbacks=[ClassCounter(dataset(), verbose=0)],
    )
    path = str(tmp_path / "counted.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.loss.class_counts, np.bincount(Y))
    assert loaded.loss.beta == BETA
    np.testing.assert_allclose(
        loaded.evaluate(dataset(), verbose=0),
        model.evaluate(dataset(), verbose=0),
        rtol=1e-6,
    )


# Distribution (TensorFlow only).

# Run in the session's child process with two logical CPUs
# (tests/children.py).
MIRRORED_SCRIPT = """
import keras
import numpy as np
import tensorflow as tf
from keras_cbloss import CBFocalLoss, ClassCounter

y = np.array([0] * 9 + [1] * 4 + [2] * 2 + [3] * 1)
x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)

def model(counts):
    keras.utils.set_random_seed(3)
    m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    m.compile(keras.optimizers.SGD(0.1),
              loss=CBFocalLoss(counts, 0.9, 0.5, from_logits=True))
    return m

with strategy.scope():  # over two logical CPUs
    distributed = model(None)
h1 = distributed.fit(ds, epochs=2, verbose=0, shuffle=False,
                     callbacks=[ClassCounter(ds, verbose=0)])
single = model(np.bincount(y))
h2 = single.fit(ds, epochs=2, verbose=0, shuffle=False)
result = {
    "replicas": strategy.num_replicas_in_sync,
    "counts": distributed.loss.class_counts.tolist(),
    "loss": [h1.history["loss"], h2.history["loss"]],
    "kernel": [distributed.get_weights()[0].tolist(),
               single.get_weights()[0].tolist()],
}
"""


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute only")
def test_mirrored_strategy_on_two_logical_cpus():
    out = children.run("tensorflow_two_cpus", MIRRORED_SCRIPT)
    assert out["replicas"] == 2
    assert out["counts"] == [9, 4, 2, 1]
    np.testing.assert_allclose(out["loss"][0], out["loss"][1], rtol=1e-5)
    np.testing.assert_allclose(
        out["kernel"][0], out["kernel"][1], rtol=1e-5, atol=1e-7
    )


# ---------------------------------------------------------------------------
# DeferredReweighting.
# ---------------------------------------------------------------------------

# The schedule reaches the train step, validation and evaluate.


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("kind", ["focal", "softmax"])
def test_plain_loss_before_start_epoch_class_balanced_after(kind, jit_compile):
    skip_slow_torch_compile(jit_compile, kind)
    # neither 0 nor DRW_BETA: both changes show
    loss = cb_loss(kind, COUNTS, 0.5)
    model = fixed_model(loss, jit_compile=jit_compile)
    logits = model.predict(X, verbose=0)
    recorder = Recorder(loss)
    history = model.fit(
        dataset(),
        epochs=4,
        validation_data=dataset(),
        verbose=0,
        callbacks=[DeferredReweighting(2, beta=DRW_BETA), recorder],
        shuffle=False,
    )
    plain = loss_at_beta(kind, logits, 0.0)
    balanced = loss_at_beta(kind, logits, DRW_BETA)
    assert abs(plain - balanced) > 0.1  # the weights really differ
    expected = [plain, plain, balanced, balanced]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(history.history["val_loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(
        model.evaluate(dataset(), verbose=0), balanced, rtol=1e-6
    )
    assert recorder.betas == [0.0, 0.0, DRW_BETA, DRW_BETA]
    np.testing.assert_allclose(
        loss.class_weights, reference.cb_weights(COUNTS, DRW_BETA), rtol=1e-12
    )
    # Rebuilt at the switch only; the epochs in between keep their step.
    functions = recorder.functions
    assert functions[1][0] is functions[0][0]
    assert functions[1][1] is functions[0][1]
    assert functions[2][0] is not functions[1][0]
    assert functions[2][1] is not functions[1][1]
    assert functions[3][0] is functions[2][0]


@pytest.mark.parametrize("counter_first", [True, False])
def test_with_class_counter_in_either_order(counter_first):
    # None: waits for ClassCounter's counts
    loss = cb_loss("softmax", None, DRW_BETA)
    model = fixed_model(loss)
    logits = model.predict(X, verbose=0)
    counter = ClassCounter(dataset(), verbose=0)
    drw = DeferredReweighting(1, beta=DRW_BETA)
    callbacks = [counter, drw] if counter_first else [drw, counter]
    history = model.fit(
        dataset(), epochs=3, callbacks=callbacks, verbose=0, shuffle=False
    )
    plain = loss_at_beta("softmax", logits, 0.0)
    balanced = loss_at_beta("softmax", logits, DRW_BETA)
    np.testing.assert_array_equal(loss.class_counts, COUNTS)
    np.testing.assert_allclose(
        history.history["loss"], [plain, balanced, balanced], rtol=1e-6
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_resume_with_initial_epoch_past_the_switch(jit_compile):
    if BACKEND == "torch" and jit_compile:
        pytest.skip(
            "torch.compile takes minutes on CPU; the softmax "
            "schedule test covers it"
        )
    loss = cb_loss("softmax", COUNTS, DRW_BETA)
    model = fixed_model(loss, jit_compile=jit_compile)
    logits = model.predict(X, verbose=0)
    drw = DeferredReweighting(2, beta=DRW_BETA)
    with pytest.warns(UserWarning, match="will not re-weight in this"):
        first = model.fit(
            dataset(), epochs=2, callbacks=[drw], verbose=0, shuffle=False
        )
    assert loss.beta == 0.0
    resumed = model.fit(
        dataset(),
        initial_epoch=3,
        epochs=5,
        callbacks=[drw],
        verbose=0,
        shuffle=False,
    )
    plain = loss_at_beta("softmax", logits, 0.0)
    balanced = loss_at_beta("softmax", logits, DRW_BETA)
    np.testing.assert_allclose(first.history["loss"], [plain] * 2, rtol=1e-6)
    np.testing.assert_allclose(
        resumed.history["loss"], [balanced] * 2, rtol=1e-6
    )


def test_resume_before_the_switch_trains_plain_then_switches():
    loss = cb_loss("softmax", COUNTS, DRW_BETA)  # e.g. loaded after a switch
    model = fixed_model(loss)
    logits = model.predict(X, verbose=0)
    history = model.fit(
        dataset(),
        initial_epoch=1,
        epochs=4,
        verbose=0,
        shuffle=False,
        callbacks=[DeferredReweighting(3, beta=DRW_BETA)],
    )
    plain = loss_at_beta("softmax", logits, 0.0)
    balanced = loss_at_beta("softmax", logits, DRW_BETA)
    np.testing.assert_allclose(
        history.history["loss"], [plain, plain, balanced], rtol=1e-6
    )


# Rebuilds only when the weights change.


def test_no_rebuild_when_the_weights_already_follow_the_schedule():
    loss = cb_loss("softmax", COUNTS, DRW_BETA)
    model = fixed_model(loss)
    rebuilds = RebuildCounter(model)
    recorder = Recorder(loss)
    model.fit(
        dataset(),
        epochs=3,
        verbose=0,
        shuffle=False,
        callbacks=[DeferredReweighting(0, beta=DRW_BETA), recorder],
    )
    assert rebuilds.forced == 0
    assert len({id(train) for train, _ in recorder.functions}) == 1
    assert len({id(test) for _, test in recorder.functions}) == 1


def test_rebuilds_once_at_train_start_and_once_at_the_switch():
    loss = cb_loss("softmax", COUNTS, 0.9)
    model = fixed_model(loss)
    rebuilds = RebuildCounter(model)
    drw = DeferredReweighting(2, beta=DRW_BETA)
    model.fit(dataset(), epochs=4, verbose=0, shuffle=False, callbacks=[drw])
    assert rebuilds.forced == 2  # 0.9 -> 0 at epoch 0, 0 -> DRW_BETA at 2
    # A resumed fit past the switch: the weights are current already.
    model.fit(
        dataset(),
        initial_epoch=4,
        epochs=6,
        verbose=0,
        shuffle=False,
        callbacks=[drw],
    )
    assert rebuilds.forced == 2


def test_uniform_counts_change_beta_but_not_the_weights():
    # Equal counts give weights of 1 for every beta: nothing to retrace.
    loss = CBSoftmaxLoss([4, 4, 4, 4], 0.9, from_logits=True)
    model = fixed_model(loss)
    rebuilds = RebuildCounter(model)
    drw = DeferredReweighting(1, beta=DRW_BETA)
    model.fit(dataset(), epochs=2, verbose=0, shuffle=False, callbacks=[drw])
    assert loss.beta == DRW_BETA
    assert rebuilds.forced == 0


# Hooks called directly: which losses get beta.


def test_dict_and_list_losses_set_every_class_balanced_loss():
    shared = CBSoftmaxLoss(COUNTS, 0.9)
    other = CBFocalLoss(COUNTS, 0.9)
    plain = keras.losses.SparseCategoricalCrossentropy()
    for compiled_loss in (
        {"a": shared, "b": other, "c": plain},
        [shared, other, shared, plain],
    ):
        model = keras.Model()  # the hooks read only `model.loss`
        model.loss = compiled_loss
        drw = DeferredReweighting(3, beta=DRW_BETA)
        drw.set_model(model)
        drw.on_train_begin()
        assert drw.losses == [shared, other]
        drw.on_epoch_begin(2)
        assert (shared.beta, other.beta) == (0.0, 0.0)
        drw.on_epoch_begin(3)
        assert (shared.beta, other.beta) == (DRW_BETA, DRW_BETA)


def test_losses_without_set_beta_fail_clearly():
    model = fixed_model(keras.losses.SparseCategoricalCrossentropy())
    with pytest.raises(ValueError, match="no class-balanced loss"):
        model.fit(
            dataset(),
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[DeferredReweighting(0)],
        )


def test_warns_when_fit_ends_before_start_epoch():
    model = fixed_model(cb_loss("softmax", COUNTS, DRW_BETA))
    with pytest.warns(UserWarning, match="will not re-weight"):
        model.fit(
            dataset(),
            epochs=2,
            verbose=0,
            shuffle=False,
            callbacks=[DeferredReweighting(2)],
        )


# Saving.


@pytest.mark.filterwarnings("ignore:.*will not re-weight:UserWarning")
@pytest.mark.parametrize("epochs, saved_beta", [(3, DRW_BETA), (1, 0.0)])
def test_saved_model_has_the_beta_of_its_last_epoch(
    tmp_path, epochs, saved_beta
):
    loss = cb_loss("focal", COUNTS, 0.5)
    model = fixed_model(loss)
    model.fit(
        dataset(),
        epochs=epochs,
        verbose=0,
        shuffle=False,
        callbacks=[DeferredReweighting(1, beta=DRW_BETA)],
    )
    path = tmp_path / "drw.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.loss.beta == saved_beta
    np.testing.assert_allclose(
        loaded.loss.class_weights,
        reference.cb_weights(COUNTS, saved_beta),
        rtol=1e-12,
    )


# Arguments.


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"start_epoch": -1},
            ValueError,
            "Invalid value for argument "
            "`start_epoch`.*Received: start_epoch=-1",
        ),
        (
            {"start_epoch": 1.5},
            TypeError,
            "Invalid type for argument "
            "`start_epoch`.*Received: start_epoch=1.5",
        ),
        ({"start_epoch": True}, TypeError, "start_epoch=True"),
        ({"start_epoch": "160"}, TypeError, "start_epoch='160'"),
        ({"start_epoch": None}, TypeError, "start_epoch=None"),
        *[
            (
                {"start_epoch": 1, "beta": beta},
                error,
                r"Invalid (value|type) for argument `beta`.*" + match,
            )
            for beta, error, match in BAD_BETAS
        ],
    ],
)
def test_deferred_reweighting_constructor_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        DeferredReweighting(**kwargs)


def test_numpy_integer_start_epoch_is_accepted():
    drw = DeferredReweighting(np.int64(160), beta=np.float32(0.5))
    assert (drw.start_epoch, drw.beta) == (160, 0.5)
    assert type(drw.start_epoch) is int
