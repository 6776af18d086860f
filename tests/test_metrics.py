"""Tests of the long-tail metrics against scikit-learn.

Every expected value comes from scikit-learn (`balanced_accuracy_score`,
`recall_score(average=None)`) on the concatenated data, or from Liu et al.'s
shot rule written out in NumPy here. Backend-agnostic (keras.ops only);
run with `KERAS_BACKEND=jax` too. The MirroredStrategy check runs in a
subprocess with two logical CPUs (TensorFlow backend).
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.metrics import recall_score

import backend_utils
import reference
from keras_cbloss import BalancedAccuracy
from keras_cbloss import PerClassRecall
from keras_cbloss import ShotAccuracy
from keras_cbloss import shot_groups

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 300  # a guard against hangs; the child takes ~15 s


# --------------------------------------------------------------------------
# Data and independent expectations.
# --------------------------------------------------------------------------


def _batches(num_batches=4, batch=24, num_classes=5, seed=0, spatial=(),
             absent=(), weighted=False):
    """Random (y_true ids, y_pred scores, sample_weight) batches.

    Classes in `absent` never occur in y_true but are predicted often.
    """
    rng = np.random.default_rng(seed)
    present = [c for c in range(num_classes) if c not in absent]
    out = []
    for _ in range(num_batches):
        y = rng.choice(present, size=(batch, *spatial))
        scores = rng.normal(size=(batch, *spatial, num_classes))
        # Some signal, so that recall differs between classes.
        signal = rng.random((batch, *spatial, 1))
        scores += 1.5 * np.eye(num_classes)[y] * signal
        for c in absent:
            scores[..., c] += 0.8
        w = rng.uniform(0.1, 3.0, batch) if weighted else None
        out.append((y.astype("int32"), scores.astype("float32"), w))
    return out


def _flat(batches, ignore_class=None):
    """Concatenated true ids, argmax ids and per-position weights."""
    ys, ps, ws = [], [], []
    for y, scores, w in batches:
        ys.append(y.ravel())
        ps.append(scores.argmax(-1).ravel())
        w = np.ones(y.shape[0]) if w is None else w
        ws.append(np.broadcast_to(
            w.reshape((-1,) + (1,) * (y.ndim - 1)), y.shape).ravel())
    y, p, w = (np.concatenate(a) for a in (ys, ps, ws))
    if ignore_class is not None:
        keep = y != ignore_class
        y, p, w = y[keep], p[keep], w[keep]
    return y, p, w


def _sk_balanced(y, p, w):
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
        warnings.simplefilter("ignore", UserWarning)
        return balanced_accuracy_score(y, p, sample_weight=w)


def _feed(metric, batches, transform=lambda y, s: (y, s)):
    for y, scores, w in batches:
        y_true, y_pred = transform(y, scores)
        metric.update_state(y_true, y_pred, sample_weight=w)
    return float(backend_utils.to_numpy(metric.result()))


# --------------------------------------------------------------------------
# BalancedAccuracy against scikit-learn.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("num_classes", [None, 5])
def test_balanced_accuracy_matches_sklearn_over_batches(weighted, num_classes):
    batches = _batches(weighted=weighted)
    metric = BalancedAccuracy(num_classes)
    got = _feed(metric, batches)
    assert metric.num_classes == 5
    np.testing.assert_allclose(got, _sk_balanced(*_flat(batches)), rtol=1e-6)


@pytest.mark.parametrize("form", ["ids_column", "one_hot", "logits",
                                  "probabilities"])
def test_balanced_accuracy_label_and_prediction_forms(form):
    batches = _batches(weighted=True, seed=1)

    def transform(y, scores):
        if form == "ids_column":
            return y[:, None], scores
        if form == "one_hot":
            return np.eye(5, dtype="float32")[y], scores
        if form == "probabilities":
            e = np.exp(scores - scores.max(-1, keepdims=True))
            return y, e / e.sum(-1, keepdims=True)
        return y.astype("float32"), scores  # float ids, logits

    got = _feed(BalancedAccuracy(), batches, transform)
    np.testing.assert_allclose(got, _sk_balanced(*_flat(batches)), rtol=1e-6)


def test_balanced_accuracy_drops_classes_absent_from_y_true_like_sklearn():
    batches = _batches(absent=(1, 3), seed=2)
    y, p, w = _flat(batches)
    assert set(p) >= {1, 3} and not {1, 3} & set(y)
    with pytest.warns(UserWarning, match="y_pred contains classes not in"):
        expected = balanced_accuracy_score(y, p)
    got = _feed(BalancedAccuracy(), batches)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Counting them as recall 0 would give a different, lower number.
    assert got > np.mean(recall_score(y, p, labels=range(5), average=None,
                                      zero_division=0)) + 0.05


@pytest.mark.parametrize("ignore_class", [255, -1, 2])
def test_balanced_accuracy_per_pixel_maps_with_ignore_class(ignore_class):
    batches = _batches(num_batches=3, batch=4, spatial=(6, 7), seed=3,
                       weighted=True)
    rng = np.random.default_rng(4)
    for y, _, _ in batches:  # void pixels, whatever the prediction
        y[rng.random(y.shape) < 0.2] = ignore_class
    metric = BalancedAccuracy(ignore_class=ignore_class)
    got = _feed(metric, batches)
    expected = _sk_balanced(*_flat(batches, ignore_class=ignore_class))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("logits", [False, True])
def test_balanced_accuracy_one_unit_binary_head(logits):
    rng = np.random.default_rng(5)
    y = (rng.random(200) < 0.15).astype("float32")
    z = rng.normal(size=200) + 2.0 * y - 0.5
    y_pred = z if logits else 1 / (1 + np.exp(-z))
    threshold = 0.0 if logits else 0.5
    metric = BalancedAccuracy(threshold=threshold)
    for part in np.array_split(np.arange(200), 3):
        metric.update_state(y[part, None], y_pred[part, None].astype("f4"))
    assert metric.num_classes == 2
    expected = balanced_accuracy_score(y.astype(int), (z > 0).astype(int))
    np.testing.assert_allclose(backend_utils.to_numpy(metric.result()),
                               expected, rtol=1e-6)


def test_balanced_accuracy_reset_and_empty_state():
    metric = BalancedAccuracy()
    assert float(backend_utils.to_numpy(metric.result())) == 0.0
    batches = _batches()
    _feed(metric, batches)
    metric.reset_state()
    assert float(backend_utils.to_numpy(metric.result())) == 0.0
    got = _feed(metric, batches[:1])
    np.testing.assert_allclose(got, _sk_balanced(*_flat(batches[:1])),
                               rtol=1e-6)


# --------------------------------------------------------------------------
# PerClassRecall and ShotAccuracy.
# --------------------------------------------------------------------------


def test_per_class_recall_matches_sklearn_recall_score():
    batches = _batches(weighted=True, absent=(4,), seed=6)
    y, p, w = _flat(batches)
    expected = recall_score(y, p, labels=range(5), average=None,
                            sample_weight=w, zero_division=0)
    for c in range(5):
        metric = PerClassRecall(c)
        got = _feed(metric, batches)
        assert metric.name == f"recall_{c}"
        np.testing.assert_allclose(got, expected[c], rtol=1e-6, atol=1e-7)
    vector = BalancedAccuracy()
    _feed(vector, batches)
    np.testing.assert_allclose(
        backend_utils.to_numpy(vector.per_class_recall()), expected,
        rtol=1e-6, atol=1e-7)


TRAIN_COUNTS = [900, 101, 100, 20, 19, 3]


@pytest.mark.parametrize("shot", ["many", "medium", "few"])
def test_shot_accuracy_matches_liu_et_al_rule(shot):
    batches = _batches(num_classes=6, seed=7, absent=(1,))
    y, p, _ = _flat(batches)
    metric = ShotAccuracy(shot, TRAIN_COUNTS)
    got = _feed(metric, batches)
    assert metric.name == f"{shot}_shot_accuracy"
    np.testing.assert_allclose(
        got, reference.shot_accuracy(y, p, TRAIN_COUNTS, shot), rtol=1e-6)


def test_shot_groups_thresholds_and_custom_values():
    groups = shot_groups(TRAIN_COUNTS)
    assert np.flatnonzero(groups["many"]).tolist() == [0, 1]
    assert np.flatnonzero(groups["medium"]).tolist() == [2, 3]
    assert np.flatnonzero(groups["few"]).tolist() == [4, 5]
    groups = shot_groups(TRAIN_COUNTS, many_threshold=500, few_threshold=4)
    assert np.flatnonzero(groups["medium"]).tolist() == [1, 2, 3, 4]
    batches = _batches(num_classes=6, seed=8)
    y, p, _ = _flat(batches)
    metric = ShotAccuracy("medium", TRAIN_COUNTS, many_threshold=500,
                          few_threshold=4)
    np.testing.assert_allclose(
        _feed(metric, batches),
        reference.shot_accuracy(y, p, TRAIN_COUNTS, "medium", 500, 4),
        rtol=1e-6)


def test_shot_accuracy_empty_group_is_zero_not_nan():
    batches = _batches(num_classes=3, seed=9)
    metric = ShotAccuracy("few", [500, 400, 300])  # no few-shot class
    assert _feed(metric, batches) == 0.0


def test_shot_accuracy_without_counts_says_how_to_set_them():
    metric = ShotAccuracy("many")
    batches = _batches(num_classes=6, seed=10)
    with pytest.raises(ValueError, match="set_class_counts"):
        _feed(metric, batches)
    metric.set_class_counts(TRAIN_COUNTS)  # the fix the message names
    y, p, _ = _flat(batches)
    np.testing.assert_allclose(
        float(backend_utils.to_numpy(metric.result())),
        reference.shot_accuracy(y, p, TRAIN_COUNTS, "many"), rtol=1e-6)
    with pytest.raises(ValueError, match="Expected 6 counts"):
        metric.set_class_counts([1, 2, 3])


# --------------------------------------------------------------------------
# Bad input.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("make,error,match", [
    (lambda: BalancedAccuracy(1), ValueError, "integer >= 2"),
    (lambda: BalancedAccuracy(2.5), TypeError, "num_classes"),
    (lambda: BalancedAccuracy(threshold="high"), TypeError, "threshold"),
    (lambda: BalancedAccuracy(threshold=float("nan")), ValueError,
     "threshold"),
    (lambda: BalancedAccuracy(ignore_class=1.5), TypeError, "ignore_class"),
    (lambda: PerClassRecall(-1), ValueError, "class_id"),
    (lambda: PerClassRecall(3, num_classes=3), ValueError,
     r"class_id.*\[0, 3\)"),
    (lambda: ShotAccuracy("tail"), ValueError, "shot"),
    (lambda: ShotAccuracy("few", [10, -1]), ValueError, "non-negative"),
    (lambda: ShotAccuracy("few", many_threshold=10, few_threshold=20),
     ValueError, "few_threshold <= many_threshold"),
])
def test_bad_arguments_raise_keras_style_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_out_of_range_labels_raise_when_eager():
    metric = BalancedAccuracy()
    scores = np.zeros((3, 4), "float32")
    with pytest.raises(ValueError, match=r"\[0, 4\).*\[7, -1\]"):
        metric.update_state(np.array([0, 7, -1]), scores)
    with pytest.raises(ValueError, match=r"\[1.5\]"):
        metric.update_state(np.array([0.0, 1.5, 2.0]), scores)
    with pytest.raises(ValueError, match="has 3"):
        metric.update_state(np.array([0, 1]), np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="Labels and predictions do not "
                       "match"):
        metric.update_state(np.zeros((3, 2, 2)), scores)


def test_out_of_range_labels_make_compiled_result_nan_not_wrong():
    if backend_utils.BACKEND == "torch":
        pytest.skip("the torch path runs eagerly and raises (tested above)")
    metric = BalancedAccuracy(4)
    scores = np.eye(4, dtype="float32")[[0, 1, 2]]

    def step(variables, y_true, y_pred):
        variables = metric.stateless_update_state(variables, y_true, y_pred)
        return metric.stateless_result(variables)

    fn = backend_utils.compiled(step)
    variables = [v.value for v in metric.variables]
    good = fn(variables, np.array([0, 1, 2]), scores)
    assert float(backend_utils.to_numpy(good)) == 1.0
    bad = fn(variables, np.array([0, 7, 2]), scores)
    assert np.isnan(backend_utils.to_numpy(bad))


# --------------------------------------------------------------------------
# Serialization and compiled training.
# --------------------------------------------------------------------------


def test_get_config_round_trip_keeps_state_shape_and_arguments():
    metrics = [BalancedAccuracy(7, threshold=0.2, ignore_class=255),
               PerClassRecall(3, 5, name="tail"),
               ShotAccuracy("medium", TRAIN_COUNTS, many_threshold=150,
                             few_threshold=10)]
    for metric in metrics:
        config = metric.get_config()
        json.dumps(config)  # plain Python values only
        clone = type(metric).from_config(config)
        assert clone.get_config() == config
        assert [v.shape for v in clone.variables] == [
            v.shape for v in metric.variables]
    serialized = keras.saving.serialize_keras_object(metrics[2])
    assert serialized["registered_name"] == "keras_cbloss>ShotAccuracy"


def _tiny_model(num_classes=4, features=6):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((features,)),
                             keras.layers.Dense(num_classes)])


def _tiny_data(num_classes=4, n=96, features=6):
    rng = np.random.default_rng(11)
    prior = np.array([0.6, 0.25, 0.1, 0.05])[:num_classes]
    y = rng.choice(num_classes, n, p=prior / prior.sum())
    x = rng.normal(size=(n, features)) + 0.7 * np.eye(num_classes, features)[y]
    return x.astype("float32"), y.astype("int32")


class _SetCountsAtTrainBegin(keras.callbacks.Callback):
    """What `ClassCounter` does for metrics: counts in, step rebuilt."""

    def __init__(self, metric, counts):
        super().__init__()
        self.metric, self.counts = metric, counts

    def on_train_begin(self, logs=None):
        from keras_cbloss._compat import clear_jax_traces
        from keras_cbloss._compat import rebuild_step_functions

        self.metric.set_class_counts(self.counts)
        clear_jax_traces(self.model)
        rebuild_step_functions(self.model)


def test_compiled_fit_and_evaluate_log_sklearn_values(tmp_path):
    x, y = _tiny_data()
    counts = np.bincount(y, minlength=4)
    few = ShotAccuracy("few", many_threshold=40, few_threshold=10)
    model = _tiny_model()
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[BalancedAccuracy(), PerClassRecall(3),
                           ShotAccuracy("many", counts, many_threshold=40,
                                        few_threshold=10), few],
                  **backend_utils.fit_kwargs())
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0,
                        callbacks=[_SetCountsAtTrainBegin(few, counts)])
    assert {"balanced_accuracy", "recall_3", "many_shot_accuracy",
            "few_shot_accuracy"} <= set(history.history)
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0).argmax(-1)
    np.testing.assert_allclose(logs["balanced_accuracy"],
                               balanced_accuracy_score(y, p), rtol=1e-5)
    np.testing.assert_allclose(
        logs["recall_3"], recall_score(y, p, labels=[3], average=None)[0],
        rtol=1e-5)
    for shot in ("many", "few"):
        np.testing.assert_allclose(
            logs[f"{shot}_shot_accuracy"],
            reference.shot_accuracy(y, p, counts, shot, 40, 10), rtol=1e-5)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    reloaded_logs = loaded.evaluate(x, y, batch_size=16, verbose=0,
                                    return_dict=True)
    for name, value in logs.items():
        np.testing.assert_allclose(reloaded_logs[name], value, rtol=1e-5)


def test_one_unit_sigmoid_head_in_fit():
    x, y = _tiny_data(num_classes=2)
    model = keras.Sequential([keras.Input((6,)),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy",
                  metrics=[BalancedAccuracy(), PerClassRecall(1)],
                  **backend_utils.fit_kwargs())
    model.fit(x, y[:, None].astype("float32"), batch_size=32, epochs=1,
              verbose=0)
    logs = model.evaluate(x, y.astype("float32"), batch_size=32, verbose=0,
                          return_dict=True)
    p = (model.predict(x, verbose=0)[:, 0] > 0.5).astype(int)
    np.testing.assert_allclose(logs["balanced_accuracy"],
                               balanced_accuracy_score(y, p), rtol=1e-5)
    np.testing.assert_allclose(logs["recall_1"],
                               recall_score(y, p), rtol=1e-5)


# --------------------------------------------------------------------------
# MirroredStrategy: state summed across two replicas.
# --------------------------------------------------------------------------

MIRRORED_CHILD = """
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_cbloss import BalancedAccuracy, PerClassRecall, ShotAccuracy
rng = np.random.default_rng(12)
y = rng.choice(4, 80, p=[0.6, 0.25, 0.1, 0.05]).astype("int32")
x = (rng.normal(size=(80, 6)) + np.eye(4, 6)[y]).astype("float32")
w = rng.uniform(0.2, 2.0, 80).astype("float32")
strategy = tf.distribute.MirroredStrategy(
    [d.name for d in tf.config.list_logical_devices("CPU")])
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    # `weighted_metrics`: Keras hands sample_weight only to those.
    model.compile("sgd", "sparse_categorical_crossentropy",
                  weighted_metrics=[BalancedAccuracy(), PerClassRecall(2),
                           ShotAccuracy("few", [48, 20, 8, 4],
                                        few_threshold=10)])
    model.fit(x, y, sample_weight=w, batch_size=16, epochs=1, verbose=0)
    logs = model.evaluate(x, y, sample_weight=w, batch_size=16, verbose=0,
                          return_dict=True)
    copies = len(model.metrics[-1].variables[0].value.values)
print("RESULT " + json.dumps({
    "replicas": strategy.num_replicas_in_sync, "copies": copies,
    "logs": logs, "y": y.tolist(), "w": w.tolist(),
    "pred": model.predict(x, verbose=0).argmax(-1).tolist()}))
"""


@pytest.mark.slow
def test_mirrored_strategy_sums_state_across_replicas():
    if backend_utils.BACKEND != "tensorflow":
        pytest.skip("tf.distribute needs the TensorFlow backend")
    env = dict(os.environ, KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(
                   [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", MIRRORED_CHILD], env=env,
                            capture_output=True, text=True,
                            timeout=CHILD_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-5000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
    run = json.loads(line[-1][len("RESULT "):])
    assert run["replicas"] == 2 and run["copies"] == 2
    y, p, w = (np.asarray(run[k]) for k in ("y", "pred", "w"))
    logs = run["logs"]
    np.testing.assert_allclose(
        logs["balanced_accuracy"],
        balanced_accuracy_score(y, p, sample_weight=w), rtol=1e-5)
    np.testing.assert_allclose(
        logs["recall_2"],
        recall_score(y, p, labels=[2], average=None, sample_weight=w)[0],
        rtol=1e-5, atol=1e-7)
    few = [c for c in (2, 3) if np.any(y == c)]  # counts 8 and 4 < 10
    expected_few = np.mean([np.sum(w[(y == c) & (p == c)]) /
                            np.sum(w[y == c]) for c in few])
    np.testing.assert_allclose(logs["few_shot_accuracy"], expected_few,
                               rtol=1e-5, atol=1e-7)
