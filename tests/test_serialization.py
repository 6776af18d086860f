"""Saving and loading models compiled with the CB losses.

The loading side runs in a fresh Python process, as deployment does: one
process for the whole module, which goes through the cases in the order in
which they can share it (before `keras_cbloss` is imported, then with the
package's registration, then with Keras' registry cleared) and reports each
case's outcome; the tests below check them one by one.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import reference
from backend_utils import make_loss
from keras_cbloss import prior_bias_initializer

COUNTS = [400, 90, 20, 3]
C = len(COUNTS)
LOSSES = {
    "CBSoftmaxLoss": lambda: make_loss("softmax", COUNTS, 0.999,
                                       from_logits=True),
    "CBSigmoidLoss": lambda: make_loss("sigmoid", COUNTS, 0.99,
                                       weighting="class"),
    "CBFocalLoss": lambda: make_loss("focal", COUNTS, 0.9999, 0.5,
                                     from_logits=True),
}
# A focal model without the prior-bias initializer: the loss is then the
# only class of the package in the file.
LOSS_ONLY = "CBFocalLoss_loss_only"
TF_BACKEND = keras.backend.backend() == "tensorflow"
CHILD_TIMEOUT_S = 300  # a guard against hangs; the child takes ~15 s


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("f4")
    y = rng.integers(0, C, 32)
    return x, y


def _trained_model(name, prior_bias=True):
    keras.utils.set_random_seed(1)
    loss = LOSSES[name]()
    activation = None if loss.from_logits else "sigmoid"
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(
            C, activation=activation,
            bias_initializer=(
                prior_bias_initializer(C) if prior_bias else "zeros"
            ),
        ),
    ])
    model.compile("adam", loss=loss)
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    return model


# The fresh process. `report` runs one case and records its outcome (or
# the exception, so that one failing case does not hide the others).
LOADER = textwrap.dedent("""
    import json, sys
    import keras, numpy as np

    directory, names, export_dir = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
    x, y = np.load(directory + "/x.npy"), np.load(directory + "/y.npy")
    results = {}

    def report(case, function):
        try:
            results[case] = {"ok": True, **function()}
        except Exception as e:
            results[case] = {"ok": False, "error": type(e).__name__ + ": "
                             + " ".join(str(e).split())}

    def load(name, **kwargs):
        model = keras.saving.load_model(f"{directory}/{name}.keras", **kwargs)
        return {
            "class": type(model.loss).__name__,
            "config": model.loss.get_config(),
            "value": float(model.evaluate(x, y, verbose=0)),
            "bias": np.asarray(model.layers[-1].bias).tolist(),
        }

    def serve():
        import tensorflow as tf
        served = tf.saved_model.load(export_dir)
        return {"predictions": np.asarray(served.serve(x)).tolist()}

    # 1. Without the package: Keras' error; the SavedModel serves anyway.
    report("without_package", lambda: load("CBFocalLoss_loss_only"))
    if export_dir != "-":
        report("served", serve)
    results["package_was_imported"] = "keras_cbloss" in sys.modules

    # 2. With the package's registration, as users load.
    import keras_cbloss
    from keras_cbloss import CBFocalLoss
    from keras_cbloss.initializers import PriorBiasInitializer
    for name in names:
        report(name, lambda: load(name))
    plain = {"CBFocalLoss": CBFocalLoss,
             "PriorBiasInitializer": PriorBiasInitializer}
    report("plain_names_registered",
           lambda: load("CBFocalLoss", custom_objects=plain))

    # 3. Registration not in effect: only custom_objects can help.
    keras.saving.get_custom_objects().clear()
    report("registered_names", lambda: load("CBFocalLoss", custom_objects={
        "keras_cbloss>CBFocalLoss": CBFocalLoss,
        "keras_cbloss>PriorBiasInitializer": PriorBiasInitializer}))
    report("helper", lambda: load(
        "CBFocalLoss", custom_objects=keras_cbloss.custom_objects()))
    report("plain_names_unregistered",
           lambda: load("CBFocalLoss", custom_objects=plain))
    print("RESULT " + json.dumps(results))
""")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Models saved in this process: `(directory, {name: model})`."""
    directory = tmp_path_factory.mktemp("saved")
    models = {name: _trained_model(name) for name in LOSSES}
    models[LOSS_ONLY] = _trained_model("CBFocalLoss", prior_bias=False)
    for name, model in models.items():
        model.save(directory / f"{name}.keras")
    if TF_BACKEND:
        models["CBFocalLoss"].export(str(directory / "serving"),
                                     verbose=False)
    x, y = _data()
    np.save(directory / "x.npy", x)
    np.save(directory / "y.npy", y)
    return directory, models


@pytest.fixture(scope="module")
def fresh(saved):
    """What the fresh process reported for each case."""
    directory, _ = saved
    export_dir = str(directory / "serving") if TF_BACKEND else "-"
    result = subprocess.run(
        [sys.executable, "-c", LOADER, str(directory), *LOSSES, export_dir],
        cwd=directory, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    lines = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):])


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
    np.testing.assert_allclose(out["value"], model.evaluate(x, y, verbose=0),
                               rtol=1e-6)
    # and the value is the class-balanced loss of the loaded predictions
    logits = model.predict(x, verbose=0)
    if name == "CBSoftmaxLoss":
        per_sample = reference.softmax_loss(y, logits, loss.class_weights, True)
    else:
        per_sample = reference.focal_loss(
            y, logits, loss.class_weights, loss.from_logits,
            getattr(loss, "gamma", 0.0), loss.weighting,
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
