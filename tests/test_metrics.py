"""Tests of the long-tail metrics against scikit-learn.

Every expected value comes from scikit-learn (`balanced_accuracy_score`,
`recall_score(average=None)`) on the concatenated data, or from Liu et al.'s
shot rule written out in NumPy here. Backend-agnostic (keras.ops only);
run with `KERAS_BACKEND=jax` too. The MirroredStrategy check runs in the
session's TensorFlow child process with two logical CPUs
(tests/children.py).
"""

import inspect
import json
import warnings

import backend_utils
import children
import keras
import numpy as np
import pytest
import reference
from sklearn.metrics import average_precision_score
from sklearn.metrics import balanced_accuracy_score
from sklearn.metrics import recall_score

from keras_cbloss import BalancedAccuracy
from keras_cbloss import CBSigmoidLoss
from keras_cbloss import MeanAveragePrecision
from keras_cbloss import PerClassRecall
from keras_cbloss import ShotAccuracy
from keras_cbloss import shot_groups
from keras_cbloss.metrics import SHOTS

CHILD_TIMEOUT_S = 300  # a guard against hangs; the script takes a few s


# --------------------------------------------------------------------------
# Data and independent expectations.
# --------------------------------------------------------------------------


def _batches(
    num_batches=4,
    batch=24,
    num_classes=5,
    seed=0,
    spatial=(),
    absent=(),
    weighted=False,
):
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
        ws.append(
            np.broadcast_to(
                w.reshape((-1,) + (1,) * (y.ndim - 1)), y.shape
            ).ravel()
        )
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


@pytest.mark.parametrize(
    "form", ["ids_column", "one_hot", "logits", "probabilities"]
)
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
    assert (
        got
        > np.mean(
            recall_score(y, p, labels=range(5), average=None, zero_division=0)
        )
        + 0.05
    )


@pytest.mark.parametrize("ignore_class", [255, -1, 2])
def test_balanced_accuracy_per_pixel_maps_with_ignore_class(ignore_class):
    batches = _batches(
        num_batches=3, batch=4, spatial=(6, 7), seed=3, weighted=True
    )
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
    np.testing.assert_allclose(
        backend_utils.to_numpy(metric.result()), expected, rtol=1e-6
    )


def test_balanced_accuracy_reset_and_empty_state():
    metric = BalancedAccuracy()
    assert float(backend_utils.to_numpy(metric.result())) == 0.0
    batches = _batches()
    _feed(metric, batches)
    metric.reset_state()
    assert float(backend_utils.to_numpy(metric.result())) == 0.0
    got = _feed(metric, batches[:1])
    np.testing.assert_allclose(
        got, _sk_balanced(*_flat(batches[:1])), rtol=1e-6
    )


# --------------------------------------------------------------------------
# PerClassRecall and ShotAccuracy.
# --------------------------------------------------------------------------


def test_per_class_recall_matches_sklearn_recall_score():
    batches = _batches(weighted=True, absent=(4,), seed=6)
    y, p, w = _flat(batches)
    expected = recall_score(
        y, p, labels=range(5), average=None, sample_weight=w, zero_division=0
    )
    for c in range(5):
        metric = PerClassRecall(c)
        got = _feed(metric, batches)
        assert metric.name == f"recall_{c}"
        np.testing.assert_allclose(got, expected[c], rtol=1e-6, atol=1e-7)
    vector = BalancedAccuracy()
    _feed(vector, batches)
    np.testing.assert_allclose(
        backend_utils.to_numpy(vector.per_class_recall()),
        expected,
        rtol=1e-6,
        atol=1e-7,
    )


TRAIN_COUNTS = [900, 101, 100, 20, 19, 3]


@pytest.mark.parametrize("shot", ["many", "medium", "few"])
def test_shot_accuracy_matches_liu_et_al_rule(shot):
    batches = _batches(num_classes=6, seed=7, absent=(1,))
    y, p, _ = _flat(batches)
    metric = ShotAccuracy(shot, TRAIN_COUNTS)
    got = _feed(metric, batches)
    assert metric.name == f"{shot}_shot_accuracy"
    np.testing.assert_allclose(
        got, reference.shot_accuracy(y, p, TRAIN_COUNTS, shot), rtol=1e-6
    )


def test_shot_groups_thresholds_and_custom_values():
    groups = shot_groups(TRAIN_COUNTS)
    assert np.flatnonzero(groups["many"]).tolist() == [0, 1]
    assert np.flatnonzero(groups["medium"]).tolist() == [2, 3]
    assert np.flatnonzero(groups["few"]).tolist() == [4, 5]
    groups = shot_groups(TRAIN_COUNTS, many_threshold=500, few_threshold=4)
    assert np.flatnonzero(groups["medium"]).tolist() == [1, 2, 3, 4]
    batches = _batches(num_classes=6, seed=8)
    y, p, _ = _flat(batches)
    metric = ShotAccuracy(
        "medium", TRAIN_COUNTS, many_threshold=500, few_threshold=4
    )
    np.testing.assert_allclose(
        _feed(metric, batches),
        reference.shot_accuracy(y, p, TRAIN_COUNTS, "medium", 500, 4),
        rtol=1e-6,
    )


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
        reference.shot_accuracy(y, p, TRAIN_COUNTS, "many"),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="Expected 6 counts"):
        metric.set_class_counts([1, 2, 3])


# --------------------------------------------------------------------------
# Multi-label: each class its own binary problem (issue 15, section 2).
# --------------------------------------------------------------------------

# The values of issue 15: label recalls [2/3, 1/2, 1], balanced accuracy
# 0.77778, per-label AP [0.91667, 0.83333, 1.0], mAP 0.91667 at 0.5.
ISSUE_TARGETS = np.array(
    [[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0]], "float32"
)
ISSUE_SCORES = np.array(
    [
        [0.9, 0.4, 0.1],
        [0.55, 0.8, 0.3],
        [0.1, 0.2, 0.7],
        [0.3, 0.1, 0.9],
        [0.6, 0.45, 0.2],
    ],
    "float32",
)


def _quiet(fn, *args, **kwargs):
    """scikit-learn, without its warnings for one-sided columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _columns(t, s, w=None, unknown=None):
    """Per label: (known targets, scores, weights) of its column."""
    w = np.ones(len(t)) if w is None else np.asarray(w)
    out = []
    for c in range(t.shape[1]):
        known = np.ones(len(t), bool) if unknown is None else t[:, c] != unknown
        out.append((t[known, c].astype(int), s[known, c], w[known]))
    return out


def _sk_label_values(t, s, w=None, threshold=0.5, unknown=None):
    """scikit-learn per label: recall, balanced accuracy and AP."""
    cols = _columns(t, s, w, unknown)
    recall = [
        _quiet(recall_score, y, p > threshold, sample_weight=v, zero_division=0)
        for y, p, v in cols
    ]
    balanced = [
        _quiet(balanced_accuracy_score, y, p > threshold, sample_weight=v)
        for y, p, v in cols
    ]
    ap = [
        _quiet(average_precision_score, y, p, sample_weight=v)
        for y, p, v in cols
    ]
    return np.array(recall), np.array(balanced), np.array(ap)


def _feed_rows(metric, t, s, w=None, parts=1):
    for rows in np.array_split(np.arange(len(t)), parts):
        metric.update_state(
            t[rows], s[rows], sample_weight=None if w is None else w[rows]
        )
    return backend_utils.to_numpy(metric.result())


@pytest.mark.parametrize("parts", [1, 3])
def test_issue_values_in_one_batch_and_split_over_batches(parts):
    recall, balanced, ap = _sk_label_values(ISSUE_TARGETS, ISSUE_SCORES)
    np.testing.assert_allclose(recall, [2 / 3, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(balanced.mean(), 0.777778, rtol=1e-6)
    np.testing.assert_allclose(ap, [0.916667, 0.833333, 1.0], rtol=1e-6)
    for c in range(3):
        got = _feed_rows(
            PerClassRecall(c, multi_label=True),
            ISSUE_TARGETS,
            ISSUE_SCORES,
            parts=parts,
        )
        np.testing.assert_allclose(got, recall[c], rtol=1e-6)
    got = _feed_rows(
        BalancedAccuracy(multi_label=True),
        ISSUE_TARGETS,
        ISSUE_SCORES,
        parts=parts,
    )
    np.testing.assert_allclose(got, balanced.mean(), rtol=1e-6)
    metric = MeanAveragePrecision(max_samples=5)
    got = _feed_rows(metric, ISSUE_TARGETS, ISSUE_SCORES, parts=parts)
    np.testing.assert_allclose(got, 0.916667, rtol=1e-6)
    np.testing.assert_allclose(
        got, average_precision_score(ISSUE_TARGETS, ISSUE_SCORES), rtol=1e-6
    )
    np.testing.assert_allclose(
        backend_utils.to_numpy(metric.per_label_average_precision()),
        ap,
        rtol=1e-6,
    )


def _multi_hot(n=400, seed=20, unknown=0.0, weighted=False):
    """Multi-hot targets of 4 labels (falling frequency), tied scores."""
    rng = np.random.default_rng(seed)
    t = (rng.random((n, 4)) < [0.45, 0.3, 0.15, 0.05]).astype("float32")
    scores = rng.random((n, 4)) * 0.7 + 0.3 * t
    scores = np.round(scores, 2).astype("float32")  # many tied scores
    if unknown:
        t[rng.random(t.shape) < unknown] = -1
    w = rng.uniform(0.2, 2.0, n).astype("float32") if weighted else None
    return t, scores, w


def test_multi_hot_rows_match_sklearn_and_keras_recall():
    t, s, w = _multi_hot(weighted=True)
    recall, balanced, _ = _sk_label_values(t, s, w)
    for c in range(4):
        keras_recall = keras.metrics.Recall(class_id=c, thresholds=0.5)
        keras_recall.update_state(t, s, sample_weight=w)
        np.testing.assert_allclose(
            backend_utils.to_numpy(keras_recall.result()), recall[c], rtol=1e-6
        )
        got = _feed_rows(PerClassRecall(c, multi_label=True), t, s, w, 4)
        np.testing.assert_allclose(got, recall[c], rtol=1e-5)
    got = _feed_rows(BalancedAccuracy(multi_label=True), t, s, w, 4)
    np.testing.assert_allclose(got, balanced.mean(), rtol=1e-5)


def test_multi_hot_rows_without_multi_label_raise_and_the_fix_works():
    # Issue 15: these rows were read as their first positive class, and
    # recall_0 came back 0.43 where scikit-learn gives 0.72, silently.
    t, s, _ = _multi_hot()
    for metric in (
        BalancedAccuracy(),
        PerClassRecall(0),
        ShotAccuracy("few", [500, 100, 30, 5]),
    ):
        with pytest.raises(ValueError, match="pass `multi_label=True`"):
            metric.update_state(t, s)
    recall, _, _ = _sk_label_values(t, s)
    got = _feed_rows(PerClassRecall(0, multi_label=True), t, s)
    np.testing.assert_allclose(got, recall[0], rtol=1e-6)


def test_multi_hot_row_makes_compiled_result_nan_not_wrong():
    if backend_utils.BACKEND == "torch":
        pytest.skip("the torch path runs eagerly and raises (tested above)")
    metric = BalancedAccuracy(3)
    scores = np.eye(3, dtype="float32")

    def step(variables, y_true, y_pred):
        variables = metric.stateless_update_state(variables, y_true, y_pred)
        return metric.stateless_result(variables)

    fn = backend_utils.compiled(step)
    variables = [v.value for v in metric.variables]
    good = fn(variables, np.eye(3, dtype="float32"), scores)
    assert float(backend_utils.to_numpy(good)) == 1.0
    multi_hot = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]], "float32")
    assert np.isnan(backend_utils.to_numpy(fn(variables, multi_hot, scores)))


def test_all_zero_rows_are_unlabelled_positions_not_class_0():
    # A one-hot segmentation map whose void pixels are all-zero rows: they
    # used to count as class 0 (recall_0 and its support inflated).
    batches = _batches(
        num_batches=2,
        batch=3,
        spatial=(5, 4),
        seed=21,
        num_classes=3,
        weighted=True,
    )
    rng = np.random.default_rng(22)
    expected_y, expected_p, expected_w = [], [], []
    metrics = [BalancedAccuracy(), PerClassRecall(0)]
    for y, scores, w in batches:
        one_hot = np.eye(3, dtype="float32")[y]
        void = rng.random(y.shape) < 0.3
        one_hot[void] = 0
        scores[void, 0] += 5.0  # void pixels predicted as class 0
        for metric in metrics:
            metric.update_state(one_hot, scores, sample_weight=w)
        kept = ~void
        expected_y.append(y[kept])
        expected_p.append(scores.argmax(-1)[kept])
        expected_w.append(np.broadcast_to(w[:, None, None], y.shape)[kept])
    y, p, w = (np.concatenate(a) for a in (expected_y, expected_p, expected_w))
    np.testing.assert_allclose(
        backend_utils.to_numpy(metrics[0].result()),
        balanced_accuracy_score(y, p, sample_weight=w),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        backend_utils.to_numpy(metrics[1].result()),
        recall_score(y, p, labels=[0], average=None, sample_weight=w)[0],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        backend_utils.to_numpy(metrics[0].support),
        np.bincount(y, weights=w, minlength=3),
        rtol=1e-6,
    )


def test_soft_rows_count_as_their_argmax_and_bad_row_sums_raise():
    batches = _batches(seed=23, weighted=True)

    def smoothed(y, scores):  # label smoothing 0.1
        return (np.eye(5)[y] * 0.9 + 0.02).astype("float32"), scores

    got = _feed(BalancedAccuracy(), batches, smoothed)
    np.testing.assert_allclose(got, _sk_balanced(*_flat(batches)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"sum to 1.*\[\[0.5, 0.2, 0\]\]"):
        BalancedAccuracy().update_state(
            np.array([[1, 0, 0], [0.5, 0.2, 0]], "float32"),
            np.eye(3, dtype="float32")[:2],
        )


def _shot_recall(t, s, counts, shot, unknown=None, threshold=0.5):
    """Multi-label shot accuracy, written out: the mean scikit-learn recall
    over the group's labels that have a known positive."""
    group = shot_groups(counts)[shot]
    values = [
        recall_score(y, p > threshold)
        for c, (y, p, _) in enumerate(_columns(t, s, unknown=unknown))
        if group[c] and y.sum() > 0
    ]
    return float(np.mean(values)) if values else 0.0


def test_unknown_entries_are_skipped_per_entry_by_every_metric():
    t, s, w = _multi_hot(seed=24, unknown=0.2, weighted=True)
    recall, balanced, ap = _sk_label_values(t, s, w, unknown=-1)
    for c in range(4):
        got = _feed_rows(
            PerClassRecall(c, multi_label=True, ignore_class=-1),
            t,
            s,
            w,
            parts=3,
        )
        np.testing.assert_allclose(got, recall[c], rtol=1e-5)
    got = _feed_rows(
        BalancedAccuracy(multi_label=True, ignore_class=-1), t, s, w, parts=3
    )
    np.testing.assert_allclose(got, balanced.mean(), rtol=1e-5)
    metric = MeanAveragePrecision(max_samples=400, ignore_class=-1)
    np.testing.assert_allclose(
        _feed_rows(metric, t, s, w, parts=3), ap.mean(), rtol=1e-5
    )
    counts = [500, 60, 30, 4]  # training positives per label
    for shot in SHOTS:
        got = _feed_rows(
            ShotAccuracy(shot, counts, multi_label=True, ignore_class=-1),
            t,
            s,
            parts=3,
        )
        np.testing.assert_allclose(
            got, _shot_recall(t, s, counts, shot, -1), rtol=1e-6
        )
    # Without `ignore_class` the -1 entries are an error, not targets.
    with pytest.raises(ValueError, match=r"\[-1\].*`ignore_class=-1`"):
        BalancedAccuracy(multi_label=True).update_state(t, s)
    with pytest.raises(ValueError, match="ignore_class"):
        MeanAveragePrecision().update_state(t, s)


def test_multi_label_on_sparse_ids_and_one_unit_heads():
    batches = _batches(seed=25, weighted=True)
    y = np.concatenate([b[0] for b in batches])
    s = np.concatenate([b[1] for b in batches])
    w = np.concatenate([b[2] for b in batches])
    one_hot = np.eye(5, dtype="float32")[y]
    _, balanced, ap = _sk_label_values(one_hot, s, w, threshold=0.0)
    got = _feed(BalancedAccuracy(multi_label=True, threshold=0.0), batches)
    np.testing.assert_allclose(got, balanced.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        _feed(MeanAveragePrecision(max_samples=len(y)), batches),
        ap.mean(),
        rtol=1e-5,
    )
    # A one-unit head is one label: its balanced accuracy is the same with
    # either setting, and its AP is the positive class's.
    binary = (y == 0).astype("float32")
    margin = s[:, :1] - s[:, 1:2]  # a logit: threshold 0
    for head_labels, multi_label in ((binary, False), (binary[:, None], True)):
        metric = BalancedAccuracy(multi_label=multi_label, threshold=0.0)
        metric.update_state(head_labels, margin)
        np.testing.assert_allclose(
            backend_utils.to_numpy(metric.result()),
            balanced_accuracy_score(binary, margin[:, 0] > 0),
            rtol=1e-6,
        )
    metric = MeanAveragePrecision(max_samples=len(binary))
    metric.update_state(binary, s[:, :1], sample_weight=w)
    assert metric.num_classes == 1
    np.testing.assert_allclose(
        backend_utils.to_numpy(metric.result()),
        average_precision_score(binary, s[:, 0], sample_weight=w),
        rtol=1e-5,
    )


# --------------------------------------------------------------------------
# The Keras mask of y_pred (Embedding(mask_zero=True)), with sample_weight
# and ignore_class.
# --------------------------------------------------------------------------

VOCAB, STEPS, TAGS = 20, 8, 3


def _tokens(n=48, seed=26):
    """Padded token ids (0 = padding), their tags and per-sequence weights.

    The padding's tag is 0, a real class: counting it would change every
    metric. Some real tokens carry the tag -1 (unknown).
    """
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, (n, STEPS))
    for i, length in enumerate(rng.integers(2, STEPS + 1, n)):
        x[i, length:] = 0
    y = (x % TAGS).astype("int32")
    y[x == 0] = 0
    unknown = (x != 0) & (rng.random(x.shape) < 0.1)
    y[unknown] = -1
    w = rng.uniform(0.5, 2.0, n).astype("float32")
    return x, y, w


def _tagger():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((STEPS,)),
            keras.layers.Embedding(VOCAB, 8, mask_zero=True),
            keras.layers.Dense(TAGS),
        ]
    )


def _tagger_metrics():
    return [
        BalancedAccuracy(ignore_class=-1),
        PerClassRecall(0, ignore_class=-1),
        ShotAccuracy("many", [300, 150, 40], ignore_class=-1),
        BalancedAccuracy(
            multi_label=True,
            threshold=0.0,
            ignore_class=-1,
            name="multi_label_balanced",
        ),
        MeanAveragePrecision(max_samples=400, ignore_class=-1),
    ]


def _tagger_expected(y, scores, w, counted):
    """scikit-learn on the counted tokens only."""
    y, scores = y[counted], scores[counted]
    w = np.broadcast_to(w[:, None], counted.shape)[counted]
    p = scores.argmax(-1)
    one_hot = np.eye(TAGS)[y]
    _, balanced, ap = _sk_label_values(one_hot, scores, w, threshold=0.0)
    many = [c for c in range(TAGS) if c in y and c in (0, 1)]  # counts > 100
    return {
        "balanced_accuracy": balanced_accuracy_score(y, p, sample_weight=w),
        "recall_0": recall_score(
            y, p, labels=[0], average=None, sample_weight=w
        )[0],
        "many_shot_accuracy": np.mean(
            [
                recall_score(y, p, labels=[c], average=None, sample_weight=w)[0]
                for c in many
            ]
        ),
        "multi_label_balanced": balanced.mean(),
        "mean_average_precision": ap.mean(),
    }


def test_keras_mask_of_y_pred_is_honoured_by_every_metric():
    # Issue 15: a tagger reported balanced accuracy 0.949 where the value
    # over its real tokens was 1.0; the padding counted as class 0.
    x, y, w = _tokens()
    y_pred = _tagger()(x)
    from keras_cbloss._compat import get_keras_mask

    assert get_keras_mask(y_pred) is not None
    metrics = _tagger_metrics()
    for metric in metrics:
        metric.update_state(y, y_pred, sample_weight=w)
    counted = (x != 0) & (y != -1)
    expected = _tagger_expected(y, backend_utils.to_numpy(y_pred), w, counted)
    for metric in metrics:
        np.testing.assert_allclose(
            backend_utils.to_numpy(metric.result()),
            expected[metric.name],
            rtol=1e-5,
            err_msg=metric.name,
        )
    # Without the mask, the padding would count: a different number.
    plain = BalancedAccuracy(ignore_class=-1)
    plain.update_state(y, backend_utils.to_numpy(y_pred), sample_weight=w)
    assert (
        abs(
            float(backend_utils.to_numpy(plain.result()))
            - expected["balanced_accuracy"]
        )
        > 1e-3
    )


def test_keras_mask_in_fit_and_evaluate():
    x, y, w = _tokens(seed=27)
    model = _tagger()
    model.compile(
        keras.optimizers.Adam(0.05),
        keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=-1
        ),
        weighted_metrics=_tagger_metrics(),
        **backend_utils.fit_kwargs(),
    )
    # Per-token weights: Keras' loss does not broadcast [B] to [B, T].
    token_w = np.repeat(w[:, None], STEPS, axis=1)
    if backend_utils.BACKEND == "torch":
        # Keras 3.15 on PyTorch: a loss that reads a Keras mask rescales
        # the caller's sample_weight in place (`apply_mask` does
        # `sample_weight *= mask`), so weighted metrics after it receive
        # total/valid-scaled weights. The eager test above covers the mask
        # with sample_weight there.
        w = np.ones_like(w)
        token_w = None
    model.fit(x, y, sample_weight=token_w, batch_size=16, epochs=1, verbose=0)
    logs = model.evaluate(
        x, y, sample_weight=token_w, batch_size=16, verbose=0, return_dict=True
    )
    scores = model.predict(x, verbose=0)
    expected = _tagger_expected(y, scores, w, (x != 0) & (y != -1))
    for name, value in expected.items():
        np.testing.assert_allclose(logs[name], value, rtol=1e-5, err_msg=name)


# --------------------------------------------------------------------------
# MeanAveragePrecision.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_mean_average_precision_matches_sklearn_with_ties(weighted):
    t, s, w = _multi_hot(n=120, seed=28, weighted=weighted)
    s[::7] = 0.5  # whole rows tied across positives and negatives
    metric = MeanAveragePrecision(max_samples=120)
    got = _feed_rows(metric, t, s, w, parts=4)
    np.testing.assert_allclose(
        got, average_precision_score(t, s, sample_weight=w), rtol=1e-5
    )
    np.testing.assert_allclose(
        backend_utils.to_numpy(metric.per_label_average_precision()),
        average_precision_score(t, s, sample_weight=w, average=None),
        rtol=1e-5,
    )
    # Ties matter: ranking the tied rows in some order gives another AP.
    jittered = s + np.random.default_rng(0).normal(0, 1e-3, s.shape)
    assert (
        abs(average_precision_score(t, jittered, sample_weight=w) - got) > 1e-4
    )


def test_mean_average_precision_sparse_ids_on_per_pixel_maps():
    batches = _batches(
        num_batches=2, batch=3, spatial=(4, 5), seed=29, weighted=True
    )
    rng = np.random.default_rng(30)
    for y, _, _ in batches:
        y[rng.random(y.shape) < 0.2] = 255  # void pixels
    metric = MeanAveragePrecision(max_samples=120, ignore_class=255)
    got = _feed(metric, batches)
    ys, ss, ws = [], [], []
    for y, scores, w in batches:
        kept = y != 255
        ys.append(y[kept])
        ss.append(scores[kept])
        ws.append(np.broadcast_to(w[:, None, None], y.shape)[kept])
    y, s, w = (np.concatenate(a) for a in (ys, ss, ws))
    np.testing.assert_allclose(
        got,
        average_precision_score(np.eye(5)[y], s, sample_weight=w),
        rtol=1e-5,
    )


def test_mean_average_precision_label_without_positives_is_0_like_sklearn():
    t = ISSUE_TARGETS.copy()
    t[:, 1] = 0
    with pytest.warns(UserWarning, match="No positive class found"):
        expected = average_precision_score(t, ISSUE_SCORES, average=None)
    assert expected[1] == 0.0
    metric = MeanAveragePrecision(max_samples=5)
    got = _feed_rows(metric, t, ISSUE_SCORES)
    np.testing.assert_allclose(got, expected.mean(), rtol=1e-6)
    np.testing.assert_allclose(
        backend_utils.to_numpy(metric.per_label_average_precision()),
        expected,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        backend_utils.to_numpy(metric.label_support()), t.sum(0)
    )


def test_mean_average_precision_shot_split_matches_sklearn_columns():
    t, s, w = _multi_hot(n=200, seed=31, weighted=True)
    metric = MeanAveragePrecision(max_samples=200)
    _feed_rows(metric, t, s, w, parts=2)
    counts = [500, 60, 30, 4]
    split = metric.shot_average_precision(counts)
    for shot, group in shot_groups(counts).items():
        expected = average_precision_score(
            t[:, group], s[:, group], sample_weight=w
        )
        np.testing.assert_allclose(
            backend_utils.to_numpy(split[shot]),
            expected,
            rtol=1e-5,
            err_msg=shot,
        )
    with pytest.raises(ValueError, match="Expected 4 counts"):
        metric.shot_average_precision([10, 20])


def test_mean_average_precision_overflow_raises_and_more_room_fixes_it():
    t, s, _ = _multi_hot(n=12, seed=32)
    metric = MeanAveragePrecision(max_samples=10)
    metric.update_state(t[:6], s[:6])
    with pytest.raises(
        ValueError,
        match=r"room for 10 rows.*received 12.*"
        "larger `max_samples`",
    ):
        metric.update_state(t[6:], s[6:])
    with pytest.raises(ValueError, match="room for 10 rows"):
        MeanAveragePrecision(max_samples=10).update_state(t, s)
    metric = MeanAveragePrecision(max_samples=12)  # the fix
    np.testing.assert_allclose(
        _feed_rows(metric, t, s, parts=2),
        _quiet(average_precision_score, t, s),
        rtol=1e-6,
    )
    metric.reset_state()  # or a reset: room again
    np.testing.assert_allclose(
        _feed_rows(metric, t, s, parts=2),
        _quiet(average_precision_score, t, s),
        rtol=1e-6,
    )


def test_mean_average_precision_overflow_in_compiled_code_is_nan_then_raises():
    if backend_utils.BACKEND == "torch":
        pytest.skip("the torch path runs eagerly and raises (tested above)")
    t, s, _ = _multi_hot(n=12, seed=33)
    metric = MeanAveragePrecision(4, max_samples=10)

    def step(variables, y_true, y_pred):
        variables = metric.stateless_update_state(variables, y_true, y_pred)
        return variables, metric.stateless_result(variables)

    fn = backend_utils.compiled(step)
    variables = [v.value for v in metric.variables]
    variables, first = fn(variables, t[:6], s[:6])
    np.testing.assert_allclose(
        backend_utils.to_numpy(first),
        _quiet(average_precision_score, t[:6], s[:6]),
        rtol=1e-6,
    )
    variables, second = fn(variables, t[6:], s[6:])
    assert np.isnan(backend_utils.to_numpy(second))
    for variable, value in zip(metric.variables, variables):
        variable.assign(value)
    with pytest.raises(ValueError, match="received 12 rows"):
        metric.result()


def test_mean_average_precision_bad_targets_and_scores():
    with pytest.raises(ValueError, match=r"0/1 entries.*\[0.5\]"):
        MeanAveragePrecision(max_samples=4).update_state(
            [[1, 0.5]], [[0.2, 0.3]]
        )
    with pytest.raises(ValueError, match="NaN or inf"):
        MeanAveragePrecision(max_samples=4).update_state(
            [[1, 0]], [[np.nan, 0.3]]
        )
    # A NaN at a skipped entry is never ranked.
    metric = MeanAveragePrecision(max_samples=4, ignore_class=-1)
    metric.update_state(
        np.array([[1, -1], [0, 1]], "float32"),
        np.array([[0.9, np.nan], [0.4, 0.7]], "float32"),
    )
    assert float(backend_utils.to_numpy(metric.result())) == 1.0


def test_every_metric_refuses_a_squeezed_one_unit_head():
    for metric in (
        BalancedAccuracy(),
        MeanAveragePrecision(),
        PerClassRecall(0, multi_label=True),
    ):
        with pytest.raises(ValueError, match=r"keeps its unit axis"):
            metric.update_state(np.array([0, 1]), np.array([0.2, 0.8]))


def test_mean_average_precision_under_jax_data_parallel():
    if backend_utils.BACKEND != "jax":
        pytest.skip("keras.distribution runs on JAX")
    import jax

    devices = jax.devices("cpu")
    if len(devices) < 2:
        pytest.skip("needs two CPU devices (the JAX run sets XLA_FLAGS)")
    x, y = _tiny_data(n=64)
    with keras.distribution.DataParallel(devices=devices[:2]).scope():
        model = _tiny_model()
        model.compile(
            "sgd",
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[MeanAveragePrecision(max_samples=64), BalancedAccuracy()],
        )
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
        scores = model.predict(x, batch_size=16, verbose=0)
    np.testing.assert_allclose(
        logs["mean_average_precision"],
        average_precision_score(np.eye(4)[y], scores),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        logs["balanced_accuracy"],
        balanced_accuracy_score(y, scores.argmax(-1)),
        rtol=1e-5,
    )


# --------------------------------------------------------------------------
# Bad input.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: BalancedAccuracy(1), ValueError, "integer >= 2"),
        (lambda: BalancedAccuracy(2.5), TypeError, "num_classes"),
        (lambda: BalancedAccuracy(threshold="high"), TypeError, "threshold"),
        (
            lambda: BalancedAccuracy(threshold=float("nan")),
            ValueError,
            "threshold",
        ),
        (lambda: BalancedAccuracy(ignore_class=1.5), TypeError, "ignore_class"),
        (lambda: PerClassRecall(-1), ValueError, "class_id"),
        (
            lambda: PerClassRecall(3, num_classes=3),
            ValueError,
            r"class_id.*\[0, 3\)",
        ),
        (lambda: ShotAccuracy("tail"), ValueError, "shot"),
        (lambda: ShotAccuracy("few", [10, -1]), ValueError, "non-negative"),
        (
            lambda: ShotAccuracy("few", many_threshold=10, few_threshold=20),
            ValueError,
            "few_threshold <= many_threshold",
        ),
        (lambda: BalancedAccuracy(multi_label="yes"), TypeError, "multi_label"),
        (
            lambda: PerClassRecall(1, 1, multi_label=True),
            ValueError,
            r"class_id.*\[0, 1\)",
        ),
        (
            lambda: BalancedAccuracy(0, multi_label=True),
            ValueError,
            "num_classes.*positive integer",
        ),
        (
            lambda: MeanAveragePrecision(0),
            ValueError,
            "num_classes.*positive integer",
        ),
        (
            lambda: MeanAveragePrecision(max_samples=0),
            ValueError,
            "max_samples",
        ),
        (
            lambda: MeanAveragePrecision(max_samples=2.5),
            TypeError,
            "max_samples",
        ),
        (
            lambda: MeanAveragePrecision(ignore_class=0.5),
            TypeError,
            "ignore_class",
        ),
    ],
)
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
    with pytest.raises(ValueError, match="Labels and predictions do not match"):
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
    metrics = [
        BalancedAccuracy(7, threshold=0.2, ignore_class=255),
        PerClassRecall(3, 5, name="tail"),
        ShotAccuracy(
            "medium", TRAIN_COUNTS, many_threshold=150, few_threshold=10
        ),
    ]
    for metric in metrics:
        config = metric.get_config()
        json.dumps(config)  # plain Python values only
        clone = type(metric).from_config(config)
        assert clone.get_config() == config
        assert [v.shape for v in clone.variables] == [
            v.shape for v in metric.variables
        ]
    serialized = keras.saving.serialize_keras_object(metrics[2])
    assert serialized["registered_name"] == "keras_cbloss>ShotAccuracy"


# Every constructor argument, each with a value other than its default.
CONFIG_CASES = [
    (
        BalancedAccuracy,
        {
            "num_classes": 7,
            "threshold": 0.2,
            "ignore_class": 255,
            "multi_label": True,
            "name": "ba",
            "dtype": "float32",
        },
    ),
    (
        PerClassRecall,
        {
            "class_id": 3,
            "num_classes": 5,
            "threshold": 0.7,
            "ignore_class": -1,
            "multi_label": True,
            "name": "tail",
            "dtype": "float32",
        },
    ),
    (
        ShotAccuracy,
        {
            "shot": "medium",
            "class_counts": [900, 150, 40, 3],
            "many_threshold": 150.0,
            "few_threshold": 10.0,
            "threshold": 0.3,
            "ignore_class": 255,
            "multi_label": True,
            "name": "med",
            "dtype": "float32",
        },
    ),
    (
        MeanAveragePrecision,
        {
            "num_classes": 4,
            "max_samples": 64,
            "ignore_class": -1,
            "name": "map",
            "dtype": "float32",
        },
    ),
]


@pytest.mark.parametrize(
    "cls,arguments", CONFIG_CASES, ids=[c.__name__ for c, _ in CONFIG_CASES]
)
def test_get_config_carries_every_argument_with_the_value_given(cls, arguments):
    signature = inspect.signature(cls.__init__).parameters
    assert set(arguments) == set(signature) - {"self"}  # none left out
    config = cls(**arguments).get_config()
    json.dumps(config)  # plain Python values only
    for name, value in arguments.items():
        assert config[name] == value, name
    clone = cls.from_config(config)
    for name, value in arguments.items():
        assert clone.get_config()[name] == value, name


def test_saved_model_keeps_the_metrics_void_label_and_threshold(tmp_path):
    # Issue 16: a metric config without `ignore_class` or `threshold` passed
    # the round-trip test, and a reloaded model then failed on its voids.
    x, y = _tiny_data(num_classes=2)
    y = y.astype("float32")
    y[::7] = 255  # void
    kept = y != 255
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(1, activation="sigmoid")]
    )
    counts = np.bincount(y[kept].astype(int))
    model.compile(
        "adam",
        CBSigmoidLoss(counts, 0.9, ignore_class=255),
        metrics=[
            BalancedAccuracy(threshold=0.3, ignore_class=255),
            MeanAveragePrecision(max_samples=96, ignore_class=255),
        ],
        **backend_utils.fit_kwargs(),
    )
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    logs = loaded.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    p = loaded.predict(x, verbose=0)[kept, 0]
    t = y[kept].astype(int)
    expected = balanced_accuracy_score(t, p > 0.3)
    assert np.any((p > 0.3) != (p > 0.5))  # the threshold matters here
    np.testing.assert_allclose(logs["balanced_accuracy"], expected, rtol=1e-5)
    np.testing.assert_allclose(
        logs["mean_average_precision"], average_precision_score(t, p), rtol=1e-5
    )


def _tiny_model(num_classes=4, features=6):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(num_classes)]
    )


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
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            BalancedAccuracy(),
            PerClassRecall(3),
            ShotAccuracy("many", counts, many_threshold=40, few_threshold=10),
            few,
        ],
        **backend_utils.fit_kwargs(),
    )
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[_SetCountsAtTrainBegin(few, counts)],
    )
    assert {
        "balanced_accuracy",
        "recall_3",
        "many_shot_accuracy",
        "few_shot_accuracy",
    } <= set(history.history)
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0).argmax(-1)
    np.testing.assert_allclose(
        logs["balanced_accuracy"], balanced_accuracy_score(y, p), rtol=1e-5
    )
    np.testing.assert_allclose(
        logs["recall_3"],
        recall_score(y, p, labels=[3], average=None)[0],
        rtol=1e-5,
    )
    for shot in ("many", "few"):
        np.testing.assert_allclose(
            logs[f"{shot}_shot_accuracy"],
            reference.shot_accuracy(y, p, counts, shot, 40, 10),
            rtol=1e-5,
        )

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    reloaded_logs = loaded.evaluate(
        x, y, batch_size=16, verbose=0, return_dict=True
    )
    for name, value in logs.items():
        np.testing.assert_allclose(reloaded_logs[name], value, rtol=1e-5)


def test_one_unit_sigmoid_head_in_fit():
    x, y = _tiny_data(num_classes=2)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(
        "adam",
        "binary_crossentropy",
        metrics=[BalancedAccuracy(), PerClassRecall(1)],
        **backend_utils.fit_kwargs(),
    )
    model.fit(
        x, y[:, None].astype("float32"), batch_size=32, epochs=1, verbose=0
    )
    logs = model.evaluate(
        x, y.astype("float32"), batch_size=32, verbose=0, return_dict=True
    )
    p = (model.predict(x, verbose=0)[:, 0] > 0.5).astype(int)
    np.testing.assert_allclose(
        logs["balanced_accuracy"], balanced_accuracy_score(y, p), rtol=1e-5
    )
    np.testing.assert_allclose(logs["recall_1"], recall_score(y, p), rtol=1e-5)


# --------------------------------------------------------------------------
# MirroredStrategy: state summed across two replicas.
# --------------------------------------------------------------------------

# Run in the session's child process with two logical CPUs
# (tests/children.py).
MIRRORED_SCRIPT = """
import numpy as np
import keras
from keras_cbloss import BalancedAccuracy, MeanAveragePrecision
from keras_cbloss import PerClassRecall, ShotAccuracy
rng = np.random.default_rng(12)
y = rng.choice(4, 80, p=[0.6, 0.25, 0.1, 0.05]).astype("int32")
x = (rng.normal(size=(80, 6)) + np.eye(4, 6)[y]).astype("float32")
w = rng.uniform(0.2, 2.0, 80).astype("float32")
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    # `weighted_metrics`: Keras hands sample_weight only to those.
    model.compile("sgd", "sparse_categorical_crossentropy",
                  weighted_metrics=[BalancedAccuracy(), PerClassRecall(2),
                           BalancedAccuracy(multi_label=True, name="ml_ba"),
                           MeanAveragePrecision(max_samples=100),
                           ShotAccuracy("few", [48, 20, 8, 4],
                                        few_threshold=10)])
    model.fit(x, y, sample_weight=w, batch_size=16, epochs=1, verbose=0)
    logs = model.evaluate(x, y, sample_weight=w, batch_size=16, verbose=0,
                          return_dict=True)
    copies = len(model.metrics[-1].variables[0].value.values)
result = {
    "replicas": strategy.num_replicas_in_sync, "copies": copies,
    "logs": logs, "y": y.tolist(), "w": w.tolist(),
    "scores": model.predict(x, verbose=0).tolist()}
"""


@pytest.mark.slow
def test_mirrored_strategy_sums_state_across_replicas():
    if backend_utils.BACKEND != "tensorflow":
        pytest.skip("tf.distribute needs the TensorFlow backend")
    run = children.run(
        "tensorflow_two_cpus", MIRRORED_SCRIPT, timeout=CHILD_TIMEOUT_S
    )
    assert run["replicas"] == 2 and run["copies"] == 2
    y, scores, w = (np.asarray(run[k]) for k in ("y", "scores", "w"))
    p = scores.argmax(-1)
    logs = run["logs"]
    # Each replica wrote its rows to its own share of the AP buffers.
    np.testing.assert_allclose(
        logs["mean_average_precision"],
        average_precision_score(np.eye(4)[y], scores, sample_weight=w),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        logs["ml_ba"],
        np.mean(
            [
                balanced_accuracy_score(
                    y == c, scores[:, c] > 0.5, sample_weight=w
                )
                for c in range(4)
            ]
        ),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        logs["balanced_accuracy"],
        balanced_accuracy_score(y, p, sample_weight=w),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        logs["recall_2"],
        recall_score(y, p, labels=[2], average=None, sample_weight=w)[0],
        rtol=1e-5,
        atol=1e-7,
    )
    few = [c for c in (2, 3) if np.any(y == c)]  # counts 8 and 4 < 10
    expected_few = np.mean(
        [np.sum(w[(y == c) & (p == c)]) / np.sum(w[y == c]) for c in few]
    )
    np.testing.assert_allclose(
        logs["few_shot_accuracy"], expected_few, rtol=1e-5, atol=1e-7
    )
