"""Tests of `DeferredReweighting` (the DRW schedule of Cao et al., 2019).

Backend-agnostic (keras only, plus `tf.data` for `ClassCounter`):
`tests/backend_runs.py` reruns this module under JAX and PyTorch. With the
learning rate at 0 the model stays fixed, so each epoch's training loss
shows the weights its train step was traced with; the expected values come
from the float64 reference in `tests/reference.py`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import reference
from keras_cbloss import CBFocalLoss
from keras_cbloss import CBSoftmaxLoss
from keras_cbloss import ClassCounter
from keras_cbloss import DeferredReweighting

BACKEND = keras.backend.backend()
C = 4
BETA = 0.99
GAMMA = 0.5
Y = np.array([0] * 9 + [1] * 4 + [2] * 2 + [3] * 1)
COUNTS = np.bincount(Y, minlength=C)
X = np.random.default_rng(0).normal(size=(len(Y), 5)).astype("float32")
LOSSES = {
    "softmax": lambda counts, beta: CBSoftmaxLoss(
        counts, beta, from_logits=True
    ),
    "focal": lambda counts, beta: CBFocalLoss(
        counts, beta, GAMMA, from_logits=True
    ),
}


def make_model(loss, lr=0.0, jit_compile=False):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((5,), name="x")
    hidden = keras.layers.Dense(6, activation="tanh")(inputs)
    outputs = keras.layers.Dense(C, name="cls")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.SGD(lr), loss=loss, jit_compile=jit_compile
    )
    return model


def dataset():
    # One batch per epoch: the epoch's logged loss is that batch's loss.
    return tf.data.Dataset.from_tensor_slices((X, Y)).batch(len(Y))


def expected_loss(kind, logits, beta):
    """Mean loss of the fixed model's logits with the weights of `beta`."""
    weights = reference.cb_weights(COUNTS, beta)
    per_sample = reference.loss_by_kind(kind, Y, logits, weights, True, GAMMA)
    return float(np.mean(per_sample))


def skip_torch_compile(jit_compile):
    if BACKEND == "torch" and jit_compile:
        pytest.skip("torch.compile takes minutes on CPU; the softmax "
                    "schedule test covers it")


class Recorder(keras.callbacks.Callback):
    """Records the train/test function objects and the beta of each epoch."""

    def __init__(self, loss):
        super().__init__()
        self.loss = loss
        self.functions = []
        self.betas = []

    def on_epoch_end(self, epoch, logs=None):
        self.functions.append(
            (self.model.train_function, self.model.test_function)
        )
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


# The schedule reaches the train step, validation and evaluate.


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_plain_loss_before_start_epoch_class_balanced_after(kind, jit_compile):
    if kind != "softmax":
        skip_torch_compile(jit_compile)
    loss = LOSSES[kind](COUNTS, 0.5)  # neither 0 nor BETA: both changes show
    model = make_model(loss, jit_compile=jit_compile)
    logits = model.predict(X, verbose=0)
    recorder = Recorder(loss)
    history = model.fit(
        dataset(), epochs=4, validation_data=dataset(), verbose=0,
        callbacks=[DeferredReweighting(2, beta=BETA), recorder],
        shuffle=False,
    )
    plain = expected_loss(kind, logits, 0.0)
    balanced = expected_loss(kind, logits, BETA)
    assert abs(plain - balanced) > 0.1  # the weights really differ
    expected = [plain, plain, balanced, balanced]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(
        history.history["val_loss"], expected, rtol=1e-6
    )
    np.testing.assert_allclose(
        model.evaluate(dataset(), verbose=0), balanced, rtol=1e-6
    )
    assert recorder.betas == [0.0, 0.0, BETA, BETA]
    np.testing.assert_allclose(
        loss.class_weights, reference.cb_weights(COUNTS, BETA), rtol=1e-12
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
    loss = LOSSES["softmax"](None, BETA)  # waits for ClassCounter's counts
    model = make_model(loss)
    logits = model.predict(X, verbose=0)
    counter = ClassCounter(dataset(), verbose=0)
    drw = DeferredReweighting(1, beta=BETA)
    callbacks = [counter, drw] if counter_first else [drw, counter]
    history = model.fit(
        dataset(), epochs=3, callbacks=callbacks, verbose=0, shuffle=False
    )
    plain = expected_loss("softmax", logits, 0.0)
    balanced = expected_loss("softmax", logits, BETA)
    np.testing.assert_array_equal(loss.class_counts, COUNTS)
    np.testing.assert_allclose(
        history.history["loss"], [plain, balanced, balanced], rtol=1e-6
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_resume_with_initial_epoch_past_the_switch(jit_compile):
    skip_torch_compile(jit_compile)
    loss = LOSSES["softmax"](COUNTS, BETA)
    model = make_model(loss, jit_compile=jit_compile)
    logits = model.predict(X, verbose=0)
    drw = DeferredReweighting(2, beta=BETA)
    with pytest.warns(UserWarning, match="will not re-weight in this"):
        first = model.fit(
            dataset(), epochs=2, callbacks=[drw], verbose=0, shuffle=False
        )
    assert loss.beta == 0.0
    resumed = model.fit(
        dataset(), initial_epoch=3, epochs=5, callbacks=[drw], verbose=0,
        shuffle=False,
    )
    plain = expected_loss("softmax", logits, 0.0)
    balanced = expected_loss("softmax", logits, BETA)
    np.testing.assert_allclose(first.history["loss"], [plain] * 2, rtol=1e-6)
    np.testing.assert_allclose(
        resumed.history["loss"], [balanced] * 2, rtol=1e-6
    )


def test_resume_before_the_switch_trains_plain_then_switches():
    loss = LOSSES["softmax"](COUNTS, BETA)  # e.g. loaded after a switch
    model = make_model(loss)
    logits = model.predict(X, verbose=0)
    history = model.fit(
        dataset(), initial_epoch=1, epochs=4, verbose=0, shuffle=False,
        callbacks=[DeferredReweighting(3, beta=BETA)],
    )
    plain = expected_loss("softmax", logits, 0.0)
    balanced = expected_loss("softmax", logits, BETA)
    np.testing.assert_allclose(
        history.history["loss"], [plain, plain, balanced], rtol=1e-6
    )


# Rebuilds only when the weights change.


def test_no_rebuild_when_the_weights_already_follow_the_schedule():
    loss = LOSSES["softmax"](COUNTS, BETA)
    model = make_model(loss)
    rebuilds = RebuildCounter(model)
    recorder = Recorder(loss)
    model.fit(
        dataset(), epochs=3, verbose=0, shuffle=False,
        callbacks=[DeferredReweighting(0, beta=BETA), recorder],
    )
    assert rebuilds.forced == 0
    assert len({id(train) for train, _ in recorder.functions}) == 1
    assert len({id(test) for _, test in recorder.functions}) == 1


def test_rebuilds_once_at_train_start_and_once_at_the_switch():
    loss = LOSSES["softmax"](COUNTS, 0.9)
    model = make_model(loss)
    rebuilds = RebuildCounter(model)
    drw = DeferredReweighting(2, beta=BETA)
    model.fit(dataset(), epochs=4, verbose=0, shuffle=False, callbacks=[drw])
    assert rebuilds.forced == 2  # 0.9 -> 0 at epoch 0, 0 -> BETA at 2
    # A resumed fit past the switch: the weights are current already.
    model.fit(
        dataset(), initial_epoch=4, epochs=6, verbose=0, shuffle=False,
        callbacks=[drw],
    )
    assert rebuilds.forced == 2


def test_uniform_counts_change_beta_but_not_the_weights():
    # Equal counts give weights of 1 for every beta: nothing to retrace.
    loss = CBSoftmaxLoss([4, 4, 4, 4], 0.9, from_logits=True)
    model = make_model(loss)
    rebuilds = RebuildCounter(model)
    drw = DeferredReweighting(1, beta=BETA)
    model.fit(dataset(), epochs=2, verbose=0, shuffle=False, callbacks=[drw])
    assert loss.beta == BETA
    assert rebuilds.forced == 0


# Hooks called directly: which losses get beta.


def test_dict_and_list_losses_set_every_class_balanced_loss():
    shared = CBSoftmaxLoss(COUNTS, 0.9)
    other = CBFocalLoss(COUNTS, 0.9)
    plain = keras.losses.SparseCategoricalCrossentropy()
    for compiled_loss in ({"a": shared, "b": other, "c": plain},
                          [shared, other, shared, plain]):
        model = keras.Model()  # the hooks read only `model.loss`
        model.loss = compiled_loss
        drw = DeferredReweighting(3, beta=BETA)
        drw.set_model(model)
        drw.on_train_begin()
        assert drw.losses == [shared, other]
        drw.on_epoch_begin(2)
        assert (shared.beta, other.beta) == (0.0, 0.0)
        drw.on_epoch_begin(3)
        assert (shared.beta, other.beta) == (BETA, BETA)


def test_losses_without_set_beta_fail_clearly():
    model = make_model(keras.losses.SparseCategoricalCrossentropy())
    with pytest.raises(ValueError, match="no class-balanced loss"):
        model.fit(
            dataset(), epochs=1, verbose=0, shuffle=False,
            callbacks=[DeferredReweighting(0)],
        )


def test_warns_when_fit_ends_before_start_epoch():
    model = make_model(LOSSES["softmax"](COUNTS, BETA))
    with pytest.warns(UserWarning, match="will not re-weight"):
        model.fit(
            dataset(), epochs=2, verbose=0, shuffle=False,
            callbacks=[DeferredReweighting(2)],
        )


# Saving.


@pytest.mark.filterwarnings("ignore:.*will not re-weight:UserWarning")
@pytest.mark.parametrize("epochs, saved_beta", [(3, BETA), (1, 0.0)])
def test_saved_model_has_the_beta_of_its_last_epoch(tmp_path, epochs,
                                                    saved_beta):
    loss = LOSSES["focal"](COUNTS, 0.5)
    model = make_model(loss)
    model.fit(
        dataset(), epochs=epochs, verbose=0, shuffle=False,
        callbacks=[DeferredReweighting(1, beta=BETA)],
    )
    path = tmp_path / "drw.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.loss.beta == saved_beta
    np.testing.assert_allclose(
        loaded.loss.class_weights, reference.cb_weights(COUNTS, saved_beta),
        rtol=1e-12,
    )


# Arguments.


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"start_epoch": -1}, ValueError, "Invalid value for argument "
         "`start_epoch`.*Received: start_epoch=-1"),
        ({"start_epoch": 1.5}, TypeError, "Invalid type for argument "
         "`start_epoch`.*Received: start_epoch=1.5"),
        ({"start_epoch": True}, TypeError, "start_epoch=True"),
        ({"start_epoch": "160"}, TypeError, "start_epoch='160'"),
        ({"start_epoch": None}, TypeError, "start_epoch=None"),
        ({"start_epoch": 1, "beta": 1.0}, ValueError,
         "Invalid value for argument `beta`.*Received: beta=1.0"),
        ({"start_epoch": 1, "beta": -0.1}, ValueError, "beta=-0.1"),
        ({"start_epoch": 1, "beta": float("nan")}, ValueError, "NaN"),
        ({"start_epoch": 1, "beta": "0.9"}, TypeError,
         "Invalid type for argument `beta`"),
    ],
)
def test_constructor_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        DeferredReweighting(**kwargs)


def test_numpy_integer_start_epoch_is_accepted():
    drw = DeferredReweighting(np.int64(160), beta=np.float32(0.5))
    assert (drw.start_epoch, drw.beta) == (160, 0.5)
    assert type(drw.start_epoch) is int
