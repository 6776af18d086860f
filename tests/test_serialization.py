"""Saving and loading models built and compiled with the package.

The loading side runs in a fresh Python process, as deployment does: one
process for the whole module, which goes through the cases in the order in
which they can share it (first with `import keras_cbloss` made to fail, as
where the package is not installed; then with the package's registration;
then with Keras' registry cleared) and reports each case's outcome; the tests
below check them one by one.

In this process: every serializable class of the package (the one list in
`keras_cbloss/saving.py`) against what the package registers with Keras, and
every config entry of every class against the value it was built with.
"""

import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import subprocess
import sys
import textwrap

import children
import keras
import numpy as np
import pytest
import reference
from backend_utils import make_loss

import keras_cbloss
from keras_cbloss import BalancedAccuracy
from keras_cbloss import CBFocalLoss
from keras_cbloss import CBSigmoidLoss
from keras_cbloss import CBSoftmaxLoss
from keras_cbloss import LogitAdjustedLoss
from keras_cbloss import MeanAveragePrecision
from keras_cbloss import PerClassRecall
from keras_cbloss import ShotAccuracy
from keras_cbloss import prior_bias_initializer
from keras_cbloss.saving import _serializable_classes

COUNTS = [400, 90, 20, 3]
C = len(COUNTS)
LOSSES = {
    "CBSoftmaxLoss": lambda: make_loss(
        "softmax", COUNTS, 0.999, from_logits=True
    ),
    "CBSigmoidLoss": lambda: make_loss(
        "sigmoid", COUNTS, 0.99, weighting="class"
    ),
    "CBFocalLoss": lambda: make_loss(
        "focal", COUNTS, 0.9999, 0.5, from_logits=True
    ),
}
# A focal model without the prior-bias initializer: the loss is then the
# only class of the package in the file.
LOSS_ONLY = "CBFocalLoss_loss_only"
# Compiled with every loss and every metric of the package (see
# EVERY_CLASS_OUTPUTS), and a per-pixel model with a void label.
EVERY_CLASS = "every_class"
VOID = "void_pixels"
TF_BACKEND = keras.backend.backend() == "tensorflow"
CHILD_TIMEOUT_S = 300  # a guard against hangs; the child takes ~20 s

# --------------------------------------------------------------------------
# Every serializable class, built with a non-default value for every
# argument of its constructor. A new class needs a row here (and in
# EVERY_CLASS_OUTPUTS / EVERY_CLASS_METRICS), a new argument a value in its
# row: the tests check both, and each value against the saved config.
# --------------------------------------------------------------------------

NON_DEFAULT_ARGUMENTS = {
    CBSoftmaxLoss: dict(
        class_counts=[40, 10, 3],
        beta=0.9,
        from_logits=True,
        ignore_class=255,
        reduction="mean_with_sample_weight",
        name="cb_softmax_custom",
        dtype="float64",
    ),
    CBSigmoidLoss: dict(
        class_counts=[40, 10, 3],
        beta=0.99,
        from_logits=True,
        weighting="class",
        ignore_class=-1,
        reduction="sum",
        name="cb_sigmoid_custom",
        dtype="float64",
    ),
    CBFocalLoss: dict(
        class_counts=[40, 10, 3],
        beta=0.9999,
        gamma=2.5,
        from_logits=True,
        weighting="class",
        ignore_class=255,
        reduction="mean",
        name="cb_focal_custom",
        dtype="bfloat16",
    ),
    LogitAdjustedLoss: dict(
        class_counts=[40, 10, 3],
        tau=0.5,
        from_logits=True,
        ignore_class=-1,
        reduction="mean_with_sample_weight",
        name="logit_adjusted_custom",
        dtype="float64",
    ),
    BalancedAccuracy: dict(
        num_classes=3,
        threshold=0.25,
        ignore_class=255,
        multi_label=True,
        name="balanced_custom",
        dtype="float64",
    ),
    PerClassRecall: dict(
        class_id=2,
        num_classes=3,
        threshold=0.75,
        ignore_class=-1,
        multi_label=True,
        name="recall_custom",
        dtype="float64",
    ),
    ShotAccuracy: dict(
        shot="few",
        class_counts=[40, 10, 3],
        many_threshold=30,
        few_threshold=5,
        threshold=0.3,
        ignore_class=255,
        multi_label=True,
        name="shot_custom",
        dtype="float64",
    ),
    MeanAveragePrecision: dict(
        num_classes=3,
        max_samples=500,
        ignore_class=-1,
        name="map_custom",
        dtype="float64",
    ),
    keras_cbloss.initializers.PriorBiasInitializer: dict(prior=[0.7, 0.2, 0.1]),
}


def _expected_config(cls, arguments):
    """The config entries `cls(**arguments)` must save."""
    if cls is keras_cbloss.initializers.PriorBiasInitializer:
        # Saved as keras.initializers.Constant: the bias, logit(prior).
        prior = np.asarray(arguments["prior"], np.float64)
        return {"value": np.log(prior / (1 - prior)).tolist()}
    return dict(arguments)


def _constructor_arguments(cls):
    """Name -> default (inspect.Parameter.empty if none) of `cls`."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _class_id(cls):
    return cls.__name__


@pytest.mark.parametrize("cls", list(NON_DEFAULT_ARGUMENTS), ids=_class_id)
def test_every_config_entry_holds_the_value_it_was_built_with(cls):
    arguments = NON_DEFAULT_ARGUMENTS[cls]
    signature = _constructor_arguments(cls)
    assert set(arguments) == set(signature), (
        "NON_DEFAULT_ARGUMENTS must give every constructor argument"
    )
    for name, default in signature.items():
        assert arguments[name] != default, f"{name} is at its default"
    config = cls(**arguments).get_config()
    for key, value in _expected_config(cls, arguments).items():
        assert key in config, f"{cls.__name__}.get_config() lacks {key!r}"
        if isinstance(value, list) and isinstance(value[0], float):
            np.testing.assert_allclose(config[key], value, rtol=1e-12)
        else:
            assert config[key] == value, key
    # and the config builds the same object back
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(cls(**arguments))
    )
    assert clone.get_config() == config


def test_the_table_covers_every_serializable_class():
    assert set(NON_DEFAULT_ARGUMENTS) == set(_serializable_classes())


def test_the_list_is_what_the_package_registers():
    for module in pkgutil.iter_modules(keras_cbloss.__path__):
        importlib.import_module(f"keras_cbloss.{module.name}")
    registered = {
        name: cls
        for name, cls in keras.saving.get_custom_objects().items()
        if name.startswith("keras_cbloss>")
    }
    listed = _serializable_classes()
    assert len(set(listed)) == len(listed)
    assert set(registered.values()) == set(listed)
    objects = keras_cbloss.custom_objects()
    for cls in listed:
        assert objects[cls.__name__] is cls
        assert objects[f"keras_cbloss>{cls.__name__}"] is cls
    assert len(objects) == 2 * len(listed)


# --------------------------------------------------------------------------
# The models saved here and loaded in the fresh process.
# --------------------------------------------------------------------------

# The model compiled with every loss and metric: an output per loss (with
# the labels it takes), each metric on the output whose labels it takes.
EVERY_CLASS_OUTPUTS = {
    "softmax": (
        lambda: CBSoftmaxLoss(COUNTS, 0.999, from_logits=True),
        "sparse",
    ),
    "sigmoid": (
        lambda: CBSigmoidLoss(
            COUNTS, 0.99, from_logits=True, weighting="class"
        ),
        "multihot",
    ),
    "focal": (
        lambda: CBFocalLoss(COUNTS, 0.9999, 0.5, from_logits=True),
        "sparse",
    ),
    "adjusted": (
        lambda: LogitAdjustedLoss(COUNTS, 1.0, from_logits=True),
        "sparse",
    ),
}
EVERY_CLASS_METRICS = {
    BalancedAccuracy: ("softmax", lambda: BalancedAccuracy()),
    PerClassRecall: ("softmax", lambda: PerClassRecall(3)),
    ShotAccuracy: ("softmax", lambda: ShotAccuracy("few", COUNTS)),
    MeanAveragePrecision: ("sigmoid", lambda: MeanAveragePrecision()),
}
# Every head starts from `prior_bias_initializer`.
EVERY_CLASS_INITIALIZERS = {keras_cbloss.initializers.PriorBiasInitializer}

# The per-pixel model: a one-unit sigmoid head, labels 0/1 and 255 (void);
# its metrics threshold at 0.3 and skip 255.
VOID_COUNTS = [300, 12]
VOID_THRESHOLD = 0.3


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("f4")
    y = rng.integers(0, C, 32)
    return x, y


def _every_class_data():
    x, y = _data()
    rng = np.random.default_rng(2)
    multihot = (rng.random((len(y), C)) < 0.3).astype("f4")
    labels = {"sparse": y, "multihot": multihot}
    return x, {
        name: labels[form] for name, (_, form) in EVERY_CLASS_OUTPUTS.items()
    }


def _void_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 4, 4, 3)).astype("f4")
    y = (rng.random((8, 4, 4)) < 0.3).astype("int32")
    y[rng.random((8, 4, 4)) < 0.25] = 255  # void pixels
    return x, y


def _trained_model(name, prior_bias=True):
    keras.utils.set_random_seed(1)
    loss = LOSSES[name]()
    activation = None if loss.from_logits else "sigmoid"
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(
                C,
                activation=activation,
                bias_initializer=(
                    prior_bias_initializer(C) if prior_bias else "zeros"
                ),
            ),
        ]
    )
    model.compile("adam", loss=loss)
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    return model


def _every_class_model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = {
        name: keras.layers.Dense(
            C,
            name=name,
            bias_initializer=prior_bias_initializer(
                (np.asarray(COUNTS) / sum(COUNTS)).tolist()
            ),
        )(hidden)
        for name in EVERY_CLASS_OUTPUTS
    }
    model = keras.Model(inputs, outputs)
    metrics = {name: [] for name in EVERY_CLASS_OUTPUTS}
    for output, make in EVERY_CLASS_METRICS.values():
        metrics[output].append(make())
    model.compile(
        "adam",
        loss={name: make() for name, (make, _) in EVERY_CLASS_OUTPUTS.items()},
        metrics=metrics,
    )
    x, y = _every_class_data()
    model.fit(x, y, epochs=1, verbose=0)
    return model


def _void_model():
    keras.utils.set_random_seed(4)
    prior = VOID_COUNTS[1] / sum(VOID_COUNTS)
    model = keras.Sequential(
        [
            keras.Input((4, 4, 3)),
            keras.layers.Conv2D(
                1,
                1,
                activation="sigmoid",
                kernel_initializer="random_normal",
                bias_initializer=prior_bias_initializer(prior),
            ),
        ]
    )
    # random_normal's 0.05 scale would keep every pixel near the prior.
    kernel, bias = model.get_weights()
    model.set_weights([kernel * 40, bias + 2.5])
    options = dict(threshold=VOID_THRESHOLD, ignore_class=255)
    model.compile(
        "sgd",
        loss=CBSigmoidLoss(VOID_COUNTS, 0.999, ignore_class=255),
        metrics=[
            BalancedAccuracy(**options),
            PerClassRecall(1, **options),
            ShotAccuracy("few", VOID_COUNTS, **options),
        ],
    )
    return model


# The fresh process. `report` runs one case and records its outcome (or
# the exception, so that one failing case does not hide the others).
LOADER = textwrap.dedent("""
    import json, sys
    import keras, numpy as np

    class BlockPackage:
        # Makes `import keras_cbloss` fail, as where it is not installed.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "keras_cbloss":
                raise ModuleNotFoundError(f"No module named {name!r}")

    blocker = BlockPackage()
    sys.meta_path.insert(0, blocker)

    spec = json.loads(sys.argv[1])
    directory = spec["directory"]
    results = {}

    def data(name):
        arrays = np.load(f"{directory}/{name}_data.npz")
        x = arrays["x"]
        y = {k[2:]: arrays[k] for k in arrays.files if k.startswith("y_")}
        return x, y.get("", y)

    def report(case, function):
        try:
            results[case] = {"ok": True, **function()}
        except Exception as e:
            results[case] = {"ok": False, "error": type(e).__name__ + ": "
                             + " ".join(str(e).split())}

    def as_lists(value):
        if isinstance(value, dict):
            return {k: np.asarray(v).tolist() for k, v in value.items()}
        return np.asarray(value).tolist()

    def load(name, **kwargs):
        model = keras.saving.load_model(f"{directory}/{name}.keras", **kwargs)
        x, y = data(name)
        return {
            "class": type(model.loss).__name__,
            "config": model.loss.get_config(),
            "value": float(model.evaluate(x, y, verbose=0)),
            "bias": np.asarray(model.layers[-1].bias).tolist(),
        }

    def serve(name):
        model = keras.saving.load_model(f"{directory}/{name}.keras",
                                        compile=False)
        x, _ = data(name)
        return {"predictions": as_lists(model.predict(x, verbose=0))}

    def evaluate(name, **kwargs):
        model = keras.saving.load_model(f"{directory}/{name}.keras", **kwargs)
        x, y = data(name)
        losses = model.loss if isinstance(model.loss, dict) else {
            "": model.loss}
        return {
            "logs": model.evaluate(x, y, batch_size=len(x), verbose=0,
                                   return_dict=True),
            "losses": {k: [type(v).__name__, v.get_config()]
                       for k, v in losses.items()},
        }

    def serve_export():
        import tensorflow as tf
        served = tf.saved_model.load(spec["export_dir"])
        x, _ = data("CBFocalLoss")
        return {"predictions": np.asarray(served.serve(x)).tolist()}

    # 1. Without the package: compile=False loads and predicts; compiled,
    #    Keras' error names the loss; the SavedModel serves.
    try:
        import keras_cbloss
        results["import_blocked"] = False
    except ModuleNotFoundError:
        results["import_blocked"] = True
    for name in spec["served"]:
        report("serve_" + name, lambda: serve(name))
    report("without_package", lambda: load("CBFocalLoss_loss_only"))
    if spec["export_dir"]:
        report("served", serve_export)
    results["package_was_imported"] = "keras_cbloss" in sys.modules
    sys.meta_path.remove(blocker)

    # 2. With the package's registration, as users load.
    import keras_cbloss
    from keras_cbloss import CBFocalLoss
    from keras_cbloss.initializers import PriorBiasInitializer
    for name in spec["losses"]:
        report(name, lambda: load(name))
    report("void_pixels", lambda: evaluate("void_pixels"))
    plain = {"CBFocalLoss": CBFocalLoss,
             "PriorBiasInitializer": PriorBiasInitializer}
    report("plain_names_registered",
           lambda: load("CBFocalLoss", custom_objects=plain))

    # 3. Registration not in effect: only custom_objects can help.
    keras.saving.get_custom_objects().clear()
    report("registered_names", lambda: load("CBFocalLoss", custom_objects={
        "keras_cbloss>CBFocalLoss": CBFocalLoss}))
    report("helper", lambda: load(
        "CBFocalLoss", custom_objects=keras_cbloss.custom_objects()))
    report("every_class", lambda: evaluate(
        "every_class", custom_objects=keras_cbloss.custom_objects()))
    report("plain_names_unregistered",
           lambda: load("CBFocalLoss", custom_objects=plain))
    print("RESULT " + json.dumps(results))
""")


def _save_data(directory, name, x, y):
    ys = (
        {f"y_{k}": v for k, v in y.items()}
        if isinstance(y, dict)
        else {"y_": y}
    )
    np.savez(directory / f"{name}_data.npz", x=x, **ys)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Models saved in this process: `(directory, {name: model})`."""
    directory = tmp_path_factory.mktemp("saved")
    models = {name: _trained_model(name) for name in LOSSES}
    models[LOSS_ONLY] = _trained_model("CBFocalLoss", prior_bias=False)
    models[EVERY_CLASS] = _every_class_model()
    models[VOID] = _void_model()
    for name, model in models.items():
        model.save(directory / f"{name}.keras")
    for name in [*LOSSES, LOSS_ONLY]:
        _save_data(directory, name, *_data())
    _save_data(directory, EVERY_CLASS, *_every_class_data())
    _save_data(directory, VOID, *_void_data())
    if TF_BACKEND:
        models["CBFocalLoss"].export(str(directory / "serving"), verbose=False)
    return directory, models


@pytest.fixture(scope="module")
def fresh(saved):
    """What the fresh process reported for each case."""
    directory, _ = saved
    spec = {
        "directory": str(directory),
        "losses": list(LOSSES),
        "served": [*LOSSES, EVERY_CLASS, VOID],
        "export_dir": str(directory / "serving") if TF_BACKEND else "",
    }
    result = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(spec)],
        cwd=directory,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    lines = [s for s in result.stdout.splitlines() if s.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT ") :])


def _loaded(fresh, case):
    outcome = fresh[case]
    assert outcome["ok"], outcome["error"]
    return outcome


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_keras_file_round_trip_keeps_the_loss(saved, fresh, name):
    _, models = saved
    model = models[name]
    loss = model.loss
    x, y = _data()
    out = _loaded(fresh, name)
    assert out["class"] == name
    assert out["config"] == loss.get_config()
    assert out["config"]["class_counts"] == COUNTS
    np.testing.assert_allclose(
        out["value"], model.evaluate(x, y, verbose=0), rtol=1e-6
    )
    # and the value is the class-balanced loss of the loaded predictions
    logits = model.predict(x, verbose=0)
    if name == "CBSoftmaxLoss":
        per_sample = reference.softmax_loss(y, logits, loss.class_weights, True)
    else:
        per_sample = reference.focal_loss(
            y,
            logits,
            loss.class_weights,
            loss.from_logits,
            getattr(loss, "gamma", 0.0),
            loss.weighting,
        )
    np.testing.assert_allclose(out["value"], per_sample.mean(), rtol=1e-5)


@pytest.mark.parametrize(
    "case", ["registered_names", "helper", "plain_names_registered"]
)
def test_load_with_custom_objects(saved, fresh, case):
    # registered_names, helper: Keras' registry cleared, custom_objects
    # with the "keras_cbloss>Name" keys. plain_names_registered: the common
    # habit {"CBFocalLoss": CBFocalLoss} in a normal process, where
    # importing the class registered it (README, "Saving and loading").
    _, models = saved
    model = models["CBFocalLoss"]
    x, y = _data()
    out = _loaded(fresh, case)
    assert out["class"] == "CBFocalLoss"
    np.testing.assert_allclose(
        out["value"], model.evaluate(x, y, verbose=0), rtol=1e-6
    )
    np.testing.assert_allclose(
        out["bias"], np.asarray(model.layers[-1].bias), rtol=1e-6
    )


def test_plain_class_names_alone_are_not_enough(fresh):
    # Keras 3 looks registered classes up by "package>Name" only, so the
    # plain names find nothing once the registration is gone; the README
    # points to keras_cbloss.custom_objects().
    outcome = fresh["plain_names_unregistered"]
    assert not outcome["ok"]
    assert "Could not locate class" in outcome["error"], outcome["error"]


def test_loading_without_the_package_gives_keras_clear_error(fresh):
    assert not fresh["package_was_imported"]
    outcome = fresh["without_package"]
    assert not outcome["ok"]
    error = outcome["error"]
    assert error.startswith("TypeError: "), error  # as the README says
    assert "Could not locate class" in error
    assert "register_keras_serializable" in error
    assert "keras_cbloss>" in error


@pytest.mark.skipif(not TF_BACKEND, reason="SavedModel is TF's")
def test_export_serves_predictions_without_the_package(saved, fresh):
    _, models = saved
    x, _ = _data()
    expected = models["CBFocalLoss"].predict(x, verbose=0)
    assert not fresh["package_was_imported"]
    served = np.array(_loaded(fresh, "served")["predictions"])
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# Serving where keras_cbloss is not installed.
# --------------------------------------------------------------------------


def _x_of(name):
    if name == EVERY_CLASS:
        return _every_class_data()[0]
    if name == VOID:
        return _void_data()[0]
    return _data()[0]


@pytest.mark.parametrize("name", [*LOSSES, EVERY_CLASS, VOID])
def test_models_load_and_predict_with_keras_alone(saved, fresh, name):
    # Every head starts from prior_bias_initializer and every model is
    # compiled with the package's losses (and metrics); with compile=False
    # the file needs nothing from the package.
    assert fresh["import_blocked"]
    assert not fresh["package_was_imported"]
    _, models = saved
    expected = models[name].predict(_x_of(name), verbose=0)
    served = _loaded(fresh, f"serve_{name}")["predictions"]
    if isinstance(expected, dict):
        assert set(served) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(served[key], value, rtol=1e-6, atol=1e-7)
    else:
        np.testing.assert_allclose(served, expected, rtol=1e-6, atol=1e-7)


def test_the_saved_heads_name_no_class_of_the_package(saved):
    directory, models = saved
    for name in [*LOSSES, EVERY_CLASS, VOID]:
        for layer in models[name].layers:
            config = layer.get_config().get("bias_initializer")
            if isinstance(config, dict):
                assert config["module"].startswith("keras."), name
                assert config["registered_name"] is None


# --------------------------------------------------------------------------
# Every loss and metric, through custom_objects() with no registration.
# --------------------------------------------------------------------------


def test_every_class_is_in_the_every_class_model():
    losses = {type(make()) for make, _ in EVERY_CLASS_OUTPUTS.values()}
    classes = losses | set(EVERY_CLASS_METRICS) | EVERY_CLASS_INITIALIZERS
    assert classes == set(_serializable_classes())


def test_a_model_with_every_loss_and_metric_loads_through_custom_objects(
    saved, fresh
):
    _, models = saved
    model = models[EVERY_CLASS]
    x, y = _every_class_data()
    expected = model.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    out = _loaded(fresh, EVERY_CLASS)
    assert set(out["logs"]) == set(expected)
    metric_names = {make().name for _, make in EVERY_CLASS_METRICS.values()}
    for name in metric_names:  # each metric is logged, for its output
        assert any(key.endswith(name) for key in expected), name
    for key, value in expected.items():
        np.testing.assert_allclose(
            out["logs"][key], value, rtol=1e-6, err_msg=key
        )
    for output, loss in model.loss.items():
        assert out["losses"][output] == [type(loss).__name__, loss.get_config()]


# --------------------------------------------------------------------------
# Metrics with ignore_class and a threshold, reloaded.
# --------------------------------------------------------------------------


def _void_reference(probabilities, y, threshold):
    """Balanced accuracy, recall of class 1 and the loss, from NumPy."""
    p = np.asarray(probabilities, np.float64)[..., 0]
    keep = y != 255
    predicted = (p > threshold).astype(int)
    recall = [np.mean(predicted[keep & (y == c)] == c) for c in (0, 1)]
    weights = reference.cb_weights(VOID_COUNTS, 0.999)
    t = np.where(keep, y, 0).astype(np.float64)
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    per_pixel = ((1 - t) * weights[0] + t * weights[1]) * bce
    return {
        "balanced_accuracy": np.mean(recall),
        "recall_1": recall[1],
        "few_shot_accuracy": recall[1],  # class 1: 12 < 20 training images
        "loss": reference.masked_mean(per_pixel, keep),
    }


def test_void_pixel_metrics_reload_with_their_ignore_class_and_threshold(
    saved, fresh
):
    _, models = saved
    model = models[VOID]
    x, y = _void_data()
    assert (y == 255).any()
    probabilities = model.predict(x, verbose=0)
    want = _void_reference(probabilities, y, VOID_THRESHOLD)
    # The threshold matters on these predictions.
    at_default = _void_reference(probabilities, y, 0.5)
    assert (
        abs(at_default["balanced_accuracy"] - want["balanced_accuracy"]) > 0.01
    )
    logs = _loaded(fresh, VOID)["logs"]
    for key, value in want.items():
        np.testing.assert_allclose(logs[key], value, rtol=1e-5, err_msg=key)
    expected = model.evaluate(
        x, y, batch_size=len(x), verbose=0, return_dict=True
    )
    for key, value in expected.items():
        np.testing.assert_allclose(logs[key], value, rtol=1e-6, err_msg=key)


# --------------------------------------------------------------------------
# model.export() on the JAX backend (jax2tf), served by TensorFlow.
# --------------------------------------------------------------------------

# Run in the session's JAX child (tests/children.py).
JAX_EXPORTER = """
import keras, numpy as np
from keras_cbloss import CBFocalLoss, prior_bias_initializer

directory = args["directory"]
assert keras.backend.backend() == "jax"
rng = np.random.default_rng(0)
x = rng.normal(size=(32, 6)).astype("f4")
y = rng.integers(0, 4, 32)
keras.utils.set_random_seed(1)
model = keras.Sequential([
    keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
    keras.layers.Dense(4, bias_initializer=prior_bias_initializer(4))])
model.compile("adam", loss=CBFocalLoss([400, 90, 20, 3], 0.999, 2.0,
                                       from_logits=True))
model.fit(x, y, epochs=1, verbose=0)
model.export(directory + "/serving", verbose=False)
np.save(directory + "/x.npy", x)
np.save(directory + "/predictions.npy", model.predict(x, verbose=0))
result = {}
"""


@pytest.mark.skipif(not TF_BACKEND, reason="served with TensorFlow")
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs JAX")
def test_export_on_jax_serves_in_tensorflow(tmp_path):
    children.run(
        "jax", JAX_EXPORTER, directory=str(tmp_path), timeout=CHILD_TIMEOUT_S
    )
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "serving"))
    x = np.load(tmp_path / "x.npy")
    np.testing.assert_allclose(
        np.asarray(served.serve(x)),
        np.load(tmp_path / "predictions.npy"),
        rtol=1e-5,
        atol=1e-6,
    )
