"""Tests of the examples: their helpers, pipelines and short runs.

The examples are scripts, not package modules; `examples/` is on the test
path (pyproject.toml), so this file imports them and their helper modules
directly. The short runs (the quick start as it ships; the digits example
with 2 seeds and 2 epochs; one CIFAR step on tensorflow-datasets' mock data)
run in this process, in a temporary directory: what they check is the
scripts' output, not a process boundary, and each fresh interpreter would
cost a TensorFlow import. Apart from the quick start they pass
`--run-eagerly`: for a few steps, tracing a model per run would be most of
their time (the compiled losses and callbacks have tests of their own). The
full default digits run is not part of the suite (README, "See it work",
for its time).
"""

import decimal
import json
import math
import runpy
from pathlib import Path

import _long_tail
import _report
import keras
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# tf.data pipelines and model.export(): the TensorFlow backend.
needs_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the examples run on the TensorFlow backend",
)


@pytest.fixture(scope="module")
def lt():
    return _long_tail


# --------------------------------------------------------------------------
# The long-tailed profile, against an independent computation.
# --------------------------------------------------------------------------

# Class sizes of the published CIFAR-LT training sets (Cui et al., 2019;
# reused by LDAM-DRW, BBN and most later work).
PUBLISHED_TOTALS = [
    (10, 5000, 10, 20431),
    (10, 5000, 50, 13996),
    (10, 5000, 100, 12406),
    (100, 500, 10, 19573),
    (100, 500, 50, 12608),
    (100, 500, 100, 10847),
]


@pytest.mark.parametrize("classes,n_max,imbalance,total", PUBLISHED_TOTALS)
def test_long_tail_counts_give_published_cifar_lt_sizes(
    lt, classes, n_max, imbalance, total
):
    counts = lt.long_tail_counts(n_max, classes, imbalance)
    assert counts.sum() == total
    assert counts[0] == n_max and counts[-1] == n_max // imbalance


def test_long_tail_counts_cifar10_lt_100_class_by_class(lt):
    np.testing.assert_array_equal(
        lt.long_tail_counts(5000, 10, 100),
        [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50],
    )


def _profile_in_decimal(n_max, num_classes, rho):
    """n_i = floor(n_max * rho ** (-i / (C - 1))) at 50 digits.

    Written from the formula in exp/log form, independently of the float
    expression the example uses. A true value within 1e-9 of an integer is
    taken as that integer (the ends of the profile are exact integers, which
    float rounding may put on either side).
    """
    decimal.getcontext().prec = 50
    rho = decimal.Decimal(str(rho))
    counts = []
    for i in range(num_classes):
        exponent = -decimal.Decimal(i) / decimal.Decimal(num_classes - 1)
        value = decimal.Decimal(n_max) * (exponent * rho.ln()).exp()
        nearest = value.to_integral_value()
        if abs(value - nearest) < decimal.Decimal("1e-9"):
            value = nearest
        counts.append(max(1, math.floor(value)))
    return counts


@pytest.mark.parametrize("n_max", [124, 500, 5000, 1281])
@pytest.mark.parametrize("num_classes", [2, 10, 37, 100])
@pytest.mark.parametrize("rho", [1, 10, 20, 50, 100, 200, 256.5])
def test_long_tail_counts_match_high_precision_formula(
    lt, n_max, num_classes, rho
):
    expected = _profile_in_decimal(n_max, num_classes, rho)
    counts = lt.long_tail_counts(n_max, num_classes, rho)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, expected)
    assert np.all(np.diff(counts) <= 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_max": 0, "num_classes": 10, "imbalance": 10},
        {"n_max": 10, "num_classes": 1, "imbalance": 10},
        {"n_max": 10, "num_classes": 10, "imbalance": 0.5},
        {"n_max": 10, "num_classes": 10, "imbalance": float("nan")},
    ],
)
def test_long_tail_counts_rejects_bad_arguments(lt, kwargs):
    with pytest.raises(ValueError, match="Invalid value for argument"):
        lt.long_tail_counts(**kwargs)


def test_long_tail_indices_follow_profile_and_change_with_seed(lt):
    labels = np.random.default_rng(0).integers(0, 5, size=1000)
    counts = lt.long_tail_counts(150, 5, 20)
    idx = lt.long_tail_indices(labels, counts, np.random.default_rng(1))
    assert len(np.unique(idx)) == len(idx) == counts.sum()
    np.testing.assert_array_equal(np.bincount(labels[idx]), counts)
    same = lt.long_tail_indices(labels, counts, np.random.default_rng(1))
    other = lt.long_tail_indices(labels, counts, np.random.default_rng(2))
    np.testing.assert_array_equal(idx, same)
    assert not np.array_equal(idx, other)
    with pytest.raises(ValueError, match="Class 0 has"):
        lt.long_tail_indices(
            labels, [10000, 1, 1, 1, 1], np.random.default_rng(0)
        )


def test_balanced_split_is_balanced_and_partitions(lt):
    labels = np.repeat(np.arange(4), [30, 20, 25, 12])
    balanced, rest = lt.balanced_split(labels, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(labels[balanced]), [10] * 4)
    assert not set(balanced) & set(rest)
    np.testing.assert_array_equal(
        np.sort(np.concatenate([balanced, rest])), np.arange(len(labels))
    )


# --------------------------------------------------------------------------
# Metrics and summaries.
# --------------------------------------------------------------------------


def test_recall_and_balanced_accuracy_match_sklearn(lt):
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.metrics import recall_score

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, size=300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 6, 300))
    np.testing.assert_allclose(
        lt.per_class_recall(y_true, y_pred, 6),
        recall_score(y_true, y_pred, average=None),
    )
    np.testing.assert_allclose(
        lt.balanced_accuracy(y_true, y_pred, 6),
        balanced_accuracy_score(y_true, y_pred),
    )


def test_recall_is_nan_for_absent_classes(lt):
    recall = lt.per_class_recall([0, 0, 1], [0, 1, 1], 3)
    np.testing.assert_array_equal(recall, [0.5, 1.0, np.nan])
    assert lt.balanced_accuracy([0, 0, 1], [0, 1, 1], 3) == 0.75


def test_prior_weighted_accuracy_is_accuracy_at_training_frequencies(lt):
    recall = np.array([1.0, 0.5, 0.0])
    counts = np.array([6, 3, 1])
    # A test set with 6, 3 and 1 images of the classes gets 6 + 1.5 + 0
    # right out of 10.
    assert lt.prior_weighted_accuracy(recall, counts) == pytest.approx(0.75)


def test_tail_classes_are_the_rarest(lt):
    np.testing.assert_array_equal(
        lt.tail_classes([50, 3, 40, 1, 3, 9], k=3), [1, 3, 4]
    )


def test_paired_gains(lt):
    gains = lt.paired_gains([0.8, 0.7, 0.9], [0.7, 0.7, 0.6])
    diff = np.array([0.1, 0.0, 0.3])
    assert gains["mean"] == pytest.approx(diff.mean())
    assert gains["std"] == pytest.approx(diff.std(ddof=1))
    assert gains["wins"] == 2 and gains["n"] == 3
    # Paired t-test by hand: t = mean / (std / sqrt(n)), df = n - 1.
    from scipy import stats

    t = diff.mean() / (diff.std(ddof=1) / math.sqrt(3))
    assert gains["p"] == pytest.approx(2 * stats.t.sf(t, df=2))
    single = lt.paired_gains([0.8], [0.7])
    assert math.isnan(single["std"]) and math.isnan(single["p"])


def test_json_output_is_strict(lt, tmp_path):
    path = tmp_path / "x.json"
    lt.write_json(
        path,
        {"a": np.float32(0.5), "b": np.arange(2), "c": [np.nan, np.int64(3)]},
    )
    assert json.loads(path.read_text()) == {
        "a": 0.5,
        "b": [0, 1],
        "c": [None, 3],
    }


def test_inverse_frequency_is_the_beta_to_one_limit_of_cb_weights():
    # The README's explanation, from the formula: for n << 1 / (1 - beta),
    # E(n) ~ n and the CB weights are inverse frequency; they part ways
    # once class sizes approach 1 / (1 - beta).
    import long_tail_digits as digits

    from keras_cbloss import class_balanced_weights

    counts = [124, 74, 44, 26, 16, 9, 5, 3, 2, 1]
    inverse = list(digits.inverse_frequency_class_weight(counts).values())
    np.testing.assert_allclose(
        class_balanced_weights(counts, 1 - 1e-9), inverse, rtol=1e-6
    )
    np.testing.assert_allclose(
        class_balanced_weights(counts, 0.9999), inverse, rtol=2e-2
    )
    at_099 = class_balanced_weights(counts, 0.99)
    assert at_099[0] / inverse[0] > 1.5  # the head is down-weighted less


# --------------------------------------------------------------------------
# The digits example.
# --------------------------------------------------------------------------


@pytest.mark.slow
@needs_tensorflow
def test_digits_example_runs_end_to_end(lt, tmp_path, capsys):
    import long_tail_digits

    out = tmp_path / "out"
    # Two seeds for the paired gains' std; one batch per epoch and no
    # tracing keep the 16 runs to seconds.
    long_tail_digits.main(
        [
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--batch-size",
            "512",
            "--run-eagerly",
            "--output-dir",
            str(out),
        ]
    )
    stdout = capsys.readouterr().out
    # A progress line per run, the tables, and the round trip.
    assert stdout.count("] seed ") == 16
    assert "2 epochs (DRW from epoch 1)" in stdout
    for row in (
        "| CB focal |",
        "| CE + DRW |",
        "| CB focal + DRW |",
        "| logit-adjusted (tau=1) |",
        "| CE + DRW vs CB softmax |",
        "| CB focal + DRW vs CB focal |",
    ):
        assert row in stdout, row
    # With at most 124 images per class, digit 0 alone is many-shot.
    assert (
        "many-shot (class 0) | medium-shot (classes 1-3) | few-shot "
        "(classes 4-9)"
    ) in stdout
    assert "identical test predictions" in stdout
    for name in (
        "results.md",
        "results.json",
        "results.csv",
        "per_class_recall.png",
        "class_weights.png",
        "best_model.keras",
        "saved_model/saved_model.pb",
    ):
        assert (out / name).is_file(), name
    assert (out / "per_class_recall.png").stat().st_size > 10_000

    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    assert [(r["seed"], r["loss"]) for r in runs[:8]] == [
        (0, "ce"),
        (0, "ce_class_weight"),
        (0, "cb_softmax"),
        (0, "cb_sigmoid"),
        (0, "cb_focal"),
        (0, "ce_drw"),
        (0, "cb_focal_drw"),
        (0, "logit_adjusted"),
    ]
    assert len(runs) == 16
    assert results["drw_start_epoch"] == 1
    profile = lt.long_tail_counts(124, 10, 100).tolist()
    assert all(r["train_counts"] == profile for r in runs)
    for r in runs:
        assert 0 <= r["balanced_accuracy"] <= 1
        assert r["balanced_accuracy"] == pytest.approx(r["accuracy"])
        # ShotAccuracy: the mean recall over each group (scikit-learn free
        # check from the run's own per-class recall).
        recall = np.array(r["per_class_recall"])
        assert r["many_shot_accuracy"] == pytest.approx(recall[0], abs=1e-6)
        assert r["medium_shot_accuracy"] == pytest.approx(
            recall[1:4].mean(), abs=1e-6
        )
        assert r["few_shot_accuracy"] == pytest.approx(
            recall[4:].mean(), abs=1e-6
        )
    summary = results["summary"]
    gain = summary["cb_focal"]["tail_recall"]["gain_over_ce"]
    assert gain["n"] == 2 and gain["std"] is not None
    deferred = summary["cb_focal_drw"]["balanced_accuracy"]
    drw_values = np.array(deferred["values"])
    focal_values = np.array(summary["cb_focal"]["balanced_accuracy"]["values"])
    assert deferred["gain_over_from_start"]["mean"] == pytest.approx(
        np.mean(drw_values - focal_values)
    )
    assert "gain_over_class_weight" in summary["logit_adjusted"]["tail_recall"]
    assert results["best_package_loss"] in long_tail_digits.PACKAGE_LOSSES
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 17 and "recall_9" in csv_lines[0]
    assert "few_shot_accuracy" in csv_lines[0]
    _check_csv_is_the_json_rounded(csv_lines, runs)


def _check_csv_is_the_json_rounded(csv_lines, runs):
    header = csv_lines[0].split(",")
    for line, run in zip(csv_lines[1:], runs):
        row = dict(zip(header, line.split(",")))
        for c, recall in enumerate(run["per_class_recall"]):
            assert float(row[f"recall_{c}"]) == round(recall, 4)
        for key in ("balanced_accuracy", "tail_recall", "prior_accuracy"):
            assert float(row[key]) == round(run[key], 4)
            assert len(row[key].partition(".")[2]) <= 4, row[key]
        assert float(row["train_seconds"]) == round(run["train_seconds"], 2)


@pytest.mark.slow
@needs_tensorflow
def test_quick_start_runs_as_shipped(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLES / "quick_start.py"), run_name="__main__")
    stdout = capsys.readouterr().out
    # int(100 * 0.6**c) images of digit c, counted by ClassCounter.
    assert "[100, 60, 36, 21, 12, 7, 4, 2, 1, 1]" in stdout
    score = float(stdout.split("balanced accuracy: ")[1].split()[0])
    # 0.80 when measured; chance is 0.1. A wide margin: this is a smoke test.
    assert 0.6 < score <= 1.0
    assert (tmp_path / "outputs" / "quick_start" / "model.keras").is_file()
    assert "loaded back with CBFocalLoss" in stdout


@pytest.mark.slow
@needs_tensorflow
def test_binary_example_counts_both_classes_and_scores_like_sklearn(
    tmp_path,
):
    import binary_breast_cancer
    from sklearn.datasets import load_breast_cancer

    records = binary_breast_cancer.main(
        [
            "--seeds",
            "1",
            "--epochs",
            "2",
            "--run-eagerly",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert [r["loss"] for r in records] == ["bce", "cb_sigmoid", "cb_focal"]
    # ClassCounter counted the Dense(1) model's 0/1 labels as two classes:
    # the benign tumours left after the 50-per-class test split, and one
    # malignant tumour per 20 of them.
    _, benign = load_breast_cancer(return_X_y=True)
    n_neg = int(benign.sum()) - 50
    expected = [n_neg, round(n_neg / 20)]
    for record in records[1:]:
        assert list(record["counts"]) == expected
    for record in records:
        assert 0.0 <= record["balanced_accuracy"] <= 1.0
    assert (tmp_path / "results.md").is_file()


# --------------------------------------------------------------------------
# The digits example's report.
# --------------------------------------------------------------------------


def _records():
    rng = np.random.default_rng(0)
    records = []
    for seed in range(3):
        for name in ("ce", "ce_class_weight", "cb_focal"):
            recall = rng.random(4)
            records.append(
                {
                    "loss": name,
                    "seed": seed,
                    "balanced_accuracy": float(recall.mean()),
                    "tail_recall": float(recall[-2:].mean()),
                    "prior_accuracy": float(recall @ [0.4, 0.3, 0.2, 0.1]),
                    "accuracy": float(recall.mean()),
                    "per_class_recall": recall.tolist(),
                    "train_counts": [40, 30, 20, 10],
                    "train_seconds": float(rng.random() * 10),
                }
            )
    return records


def test_summary_pairs_runs_by_seed():
    labels = {"ce": "CE", "ce_class_weight": "CE + w", "cb_focal": "CB"}
    records = _records()
    summary = _report.summarize(records, labels, ["cb_focal"])
    focal = [r for r in records if r["loss"] == "cb_focal"]
    ce = [r for r in records if r["loss"] == "ce"]
    diff = [f["tail_recall"] - c["tail_recall"] for f, c in zip(focal, ce)]
    gain = summary["cb_focal"]["tail_recall"]["gain_over_ce"]
    assert gain["mean"] == pytest.approx(np.mean(diff))
    assert gain["std"] == pytest.approx(np.std(diff, ddof=1))
    assert "gain_over_class_weight" in summary["cb_focal"]["tail_recall"]
    assert "gain_over_ce" not in summary["ce"]["tail_recall"]
    np.testing.assert_allclose(
        summary["ce"]["per_class_recall_mean"],
        np.mean([r["per_class_recall"] for r in ce], axis=0),
    )


def test_summary_compares_deferred_runs_with_weighting_from_the_start():
    labels = {
        "ce": "CE",
        "ce_class_weight": "CE + w",
        "cb_focal": "CB",
        "cb_focal_drw": "CB + DRW",
    }
    records = _records()
    for record in [r for r in records if r["loss"] == "cb_focal"]:
        record = dict(
            record,
            loss="cb_focal_drw",
            balanced_accuracy=record["balanced_accuracy"] - 0.01,
        )
        records.append(record)
    summary = _report.summarize(
        records,
        labels,
        ["cb_focal", "cb_focal_drw"],
        {"cb_focal_drw": "cb_focal"},
    )
    gain = summary["cb_focal_drw"]["balanced_accuracy"]["gain_over_from_start"]
    assert gain["mean"] == pytest.approx(-0.01)
    assert "gain_over_from_start" not in summary["cb_focal"]["tail_recall"]
    table = _report.results_table(
        summary,
        ["cb_focal", "cb_focal_drw"],
        3,
        50,
        2,
        {"cb_focal_drw": "cb_focal"},
    )
    assert "| CB + DRW vs CB | -1.0 ± 0.0 |" in table


def test_shot_table_names_the_groups_and_reports_gains():
    records = _records()
    for record in records:
        recall = np.array(record["per_class_recall"])
        record.update(
            many_shot_accuracy=float(recall[0]),
            medium_shot_accuracy=float(recall[1:3].mean()),
            few_shot_accuracy=float(recall[3]),
        )
    labels = {"ce": "CE", "ce_class_weight": "CE + w", "cb_focal": "CB"}
    summary = _report.summarize(records, labels, ["cb_focal"])
    # 150 > 100 many; 60 and 20 medium; 5 few (Liu et al.'s thresholds).
    table = _report.shot_table(summary, [150, 60, 20, 5])
    assert (
        "many-shot (class 0) | medium-shot (classes 1-2) | few-shot (class 3)"
    ) in table
    few = [r["few_shot_accuracy"] for r in records if r["loss"] == "cb_focal"]
    ce = [r["few_shot_accuracy"] for r in records if r["loss"] == "ce"]
    row = next(line for line in table.splitlines() if line.startswith("| CB |"))
    assert f"{100 * np.mean(np.subtract(few, ce)):+.1f} ±" in row


def test_recall_plot_shows_both_baselines(tmp_path):
    labels = {"ce": "CE", "ce_class_weight": "CE + w", "cb_focal": "CB"}
    summary = _report.summarize(_records(), labels, ["cb_focal"])
    path = tmp_path / "recall.png"
    drawn = _report.plot_per_class_recall(
        summary, [40, 30, 20, 10], "cb_focal", path
    )
    # plain CE, the class_weight baseline (the README's main comparison)
    # and the best CB loss
    assert drawn == ["CE", "CE + w", "CB"]
    assert path.stat().st_size > 10_000


# --------------------------------------------------------------------------
# The CIFAR example, on tensorflow-datasets' mock data.
# --------------------------------------------------------------------------


# Mock rows: enough that every class has a few (CIFAR-100's 1000 mock rows
# give n_max = 4, so the profile steps 4, 3, 2, 1 across the classes).
@pytest.mark.parametrize(
    "dataset,num_examples,imbalance",
    [("cifar10", 300, 10), ("cifar100", 1000, 100)],
)
def test_cifar_pipeline_builds_the_long_tailed_profile(
    lt, dataset, num_examples, imbalance
):
    import long_tail_cifar as cifar
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=num_examples):
        data = cifar.build_datasets(dataset, imbalance, batch_size=32, seed=0)
        labels = np.concatenate(
            [
                y
                for _, y in tfds.load(
                    dataset, split="train", as_supervised=True
                ).batch(1000)
            ]
        )
        n_max = np.bincount(labels, minlength=data.num_classes).min()
        expected = lt.long_tail_counts(n_max, data.num_classes, imbalance)
        assert len(set(expected.tolist())) >= 3  # a profile, not a flat set
        np.testing.assert_array_equal(data.counts, expected)

        seen, shapes = [], set()
        for images, y in data.train:
            seen.append(y.numpy())
            shapes.add(tuple(images.shape[1:]))
            assert images.dtype == "float32"
            assert 0 <= images.numpy().min() and images.numpy().max() <= 255
        np.testing.assert_array_equal(
            np.bincount(np.concatenate(seen), minlength=data.num_classes),
            expected,
        )
        assert shapes == {(32, 32, 3)}
        counted = np.concatenate(list(data.train_labels.as_numpy_iterator()))
        np.testing.assert_array_equal(
            np.bincount(counted, minlength=data.num_classes), expected
        )
        test_size = sum(int(y.shape[0]) for _, y in data.test)
        assert test_size == num_examples  # the full test split

        if dataset == "cifar10":  # once, on the smaller mock set
            # Another seed: other images, the same profile, and its decoding
            # pass matches its labels-only pass (else RuntimeError).
            other = cifar.build_datasets(
                dataset, imbalance, batch_size=32, seed=1
            )
            np.testing.assert_array_equal(other.counts, expected)


def test_resnet32_has_the_papers_structure():
    import keras
    import long_tail_cifar as cifar

    model = cifar.resnet_cifar(10, depth=32, loss="cb_focal")
    convs = [la for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    dense = [la for la in model.layers if isinstance(la, keras.layers.Dense)]
    assert len(convs) + len(dense) == 32
    assert model.output_shape == (None, 10)
    # He et al. (2016), Table 6: ResNet-32 has 0.46M parameters.
    assert 0.45e6 < model.count_params() < 0.48e6
    head = dense[0]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(head.bias), -np.log(9.0), rtol=1e-6
    )
    assert head.bias_regularizer is None
    softmax_head = cifar.resnet_cifar(10, depth=8).get_layer("logits")
    assert softmax_head.bias_regularizer is not None


def test_paper_schedule_warms_up_and_decays_at_160_and_180():
    import long_tail_cifar as cifar

    schedule = cifar.paper_schedule(200, 0.1, steps_per_epoch=97)
    lr = schedule.learning_rate
    assert lr(0) == 0
    assert lr(2.5) == pytest.approx(0.05)
    assert lr(5) == pytest.approx(0.1)
    assert lr(159.99) == pytest.approx(0.1)
    assert lr(160) == pytest.approx(1e-3)
    assert lr(180) == pytest.approx(1e-5)
    assert lr(199.99) == pytest.approx(1e-5)


@pytest.mark.slow
@needs_tensorflow
def test_cifar_example_trains_a_step_on_mock_data(tmp_path):
    import long_tail_cifar
    import tensorflow_datasets as tfds

    out = tmp_path / "out"
    with tfds.testing.mock_data(num_examples=200):
        results = long_tail_cifar.main(
            [
                "--dataset",
                "cifar10",
                "--imbalance",
                "10",
                "--loss",
                "cb_focal",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--depth",
                "8",
                "--eval-every",
                "1",
                "--run-eagerly",
                "--output-dir",
                str(out),
            ]
        )
    model = keras.saving.load_model(out / "model.keras")
    # ClassCounter handed the subsample's counts to the loss, and they were
    # saved with the model.
    np.testing.assert_array_equal(
        model.loss.class_counts, results["train_counts"]
    )
    results = json.loads((out / "results.json").read_text())
    assert results["test_size"] == 200
    assert 0 <= results["top1_error"] <= 1
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "val_loss" in history[0]


# --------------------------------------------------------------------------
# The beta dial (duplicated digits-LT).
# --------------------------------------------------------------------------


def test_beta_dial_profile_and_duplicated_train_set(monkeypatch):
    import beta_dial as dial

    counts, prototypes = dial.class_profile(2000)
    assert counts.tolist() == [2000, 928, 430, 200, 92, 43, 20, 9, 4, 2]
    assert prototypes.tolist() == [40, 28, 20, 14, 10, 7, 5, 3, 2, 2]
    data = dial.load_digits_splits()
    test_val = np.concatenate([data["x_test"], data["x_val"]]).reshape(-1, 64)
    pool = data["x_pool"].reshape(-1, 64)
    # The three splits are disjoint images (digits has no exact duplicates
    # across these rows), and test/validation are balanced.
    assert not (test_val[:, None, :] == pool[None, :, :]).all(-1).any()
    for split, per_class in (("y_test", 50), ("y_val", 20)):
        assert np.bincount(data[split]).tolist() == [per_class] * 10
    x, y = dial.duplicated_train_set(
        data["x_pool"], data["y_pool"], counts, prototypes, seed=0
    )
    assert x.shape == (counts.sum(), 64) and x.min() >= 0 and x.max() <= 1
    np.testing.assert_array_equal(np.bincount(y), counts)
    # Augmentation (a shift of at most a pixel, noise): every copy differs
    # from its source and from the other copies.
    source = np.repeat(data["x_pool"][:1], 50, axis=0)
    copies = dial.augment(source, np.random.default_rng(0))
    assert (np.abs(copies - source).max(axis=(1, 2)) > 0).all()
    assert len(np.unique(copies.reshape(50, -1), axis=0)) == 50
    # Without augmentation, class c has exactly N_c distinct images.
    monkeypatch.setattr(dial, "augment", lambda images, rng: images)
    x, y = dial.duplicated_train_set(
        data["x_pool"], data["y_pool"], counts, prototypes, seed=1
    )
    distinct = [len(np.unique(x[y == c], axis=0)) for c in range(10)]
    assert distinct == prototypes.tolist()


@pytest.mark.slow
@needs_tensorflow
def test_beta_dial_example_runs_quick(tmp_path, capsys):
    import beta_dial

    out = tmp_path / "dial"
    beta_dial.main(
        [
            "--quick",
            "--batch-size",
            "512",
            "--run-eagerly",
            "--output-dir",
            str(out),
        ]
    )
    stdout = capsys.readouterr().out
    assert stdout.count("] seed ") == 2 * 4  # 2 seeds x (CE, 2 betas, 1/n)
    assert "| 1/n (beta -> 1) |" in stdout
    assert "Chosen on the validation split" in stdout
    for name in ("results.md", "results.json", "results.csv", "beta_dial.png"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert list(results["summary"]) == ["ce", "cb_0.9", "cb_0.99", "inv_freq"]
    for run in results["runs"]:
        assert 0 <= run["balanced_accuracy"] <= 1
        assert 0 <= run["val_balanced_accuracy"] <= 1
    assert len(results["selection"]["chosen"]) == 2


# --------------------------------------------------------------------------
# The multi-label digits example (digits-MLT).
# --------------------------------------------------------------------------


def test_multi_hot_rows_have_the_profile_as_column_sums(lt):
    import multilabel_digits as mld

    counts = lt.long_tail_counts(500, 10, 100)
    rows = mld.multi_hot_rows(counts, 800, np.random.default_rng(0))
    assert rows.shape == (800, 10)
    assert set(np.unique(rows)) == {0.0, 1.0}
    np.testing.assert_array_equal(rows.sum(axis=0), counts)
    per_row = rows.sum(axis=1)
    assert per_row.min() >= 1 and per_row.max() <= 4
    other = mld.multi_hot_rows(counts, 800, np.random.default_rng(1))
    assert not np.array_equal(rows, other)
    # 10 labels, 10 positives: 2 rows of at most 4 labels cannot hold them.
    with pytest.raises(ValueError, match="Cannot spread"):
        mld.multi_hot_rows(np.ones(10, int), 2, np.random.default_rng(0))


def test_grid_images_hold_exactly_the_labelled_digits():
    import multilabel_digits as mld

    x_digits, y_digits, _, _ = mld.load_digit_split()
    rng = np.random.default_rng(0)
    labels = mld.multi_hot_rows(np.full(10, 30), 120, rng)
    images = mld.grid_images(labels, x_digits, y_digits, rng)
    assert images.shape == (120, 256) and images.dtype == np.float32
    flat_digits = x_digits.reshape(len(x_digits), 64)
    for image, row in zip(images.reshape(-1, 16, 16), labels):
        found = []
        for r in range(2):
            for c in range(2):
                cell = image[8 * r : 8 * r + 8, 8 * c : 8 * c + 8].reshape(64)
                if not cell.any():
                    continue
                # The cell is one of the held-out digit images, pixel for
                # pixel; its class is a label of the image.
                match = np.flatnonzero((flat_digits == cell).all(axis=1))
                assert len(match) >= 1
                found.append(int(y_digits[match[0]]))
        assert sorted(found) == np.flatnonzero(row).tolist()


def test_per_label_scores_match_hand_values_and_sklearn():
    import multilabel_digits as mld
    from sklearn.metrics import precision_score
    from sklearn.metrics import recall_score

    # The values, computed by hand (label 0: positives ranked 1, 2
    # and 4 -> AP = (1 + 1 + 3/4) / 3).
    y_true = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0]])
    p = np.array(
        [
            [0.9, 0.4, 0.1],
            [0.55, 0.8, 0.3],
            [0.1, 0.2, 0.7],
            [0.3, 0.1, 0.9],
            [0.6, 0.45, 0.2],
        ]
    )
    np.testing.assert_allclose(
        mld.per_label_ap(y_true, p), [11 / 12, 5 / 6, 1.0]
    )
    recall, precision = mld.per_label_recall_precision(y_true, p > 0.5)
    np.testing.assert_allclose(recall, [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(
        recall, recall_score(y_true, p > 0.5, average=None)
    )
    np.testing.assert_allclose(
        precision, precision_score(y_true, p > 0.5, average=None)
    )
    # No positives: AP and recall are undefined, not 0.
    y_true[:, 2] = 0
    assert np.isnan(mld.per_label_ap(y_true, p)[2])
    assert np.isnan(mld.per_label_recall_precision(y_true, p > 0.5)[0][2])


@pytest.mark.slow
@needs_tensorflow
def test_multilabel_example_runs_and_scores_like_sklearn(lt, tmp_path, capsys):
    import multilabel_digits as mld
    from sklearn.metrics import average_precision_score
    from sklearn.metrics import recall_score

    out = tmp_path / "out"
    mld.main(
        [
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--batch-size",
            "300",
            "--run-eagerly",
            "--head",
            "200",
            "--train-images",
            "300",
            "--output-dir",
            str(out),
        ]
    )
    stdout = capsys.readouterr().out
    assert stdout.count("] seed ") == 14
    for name in (
        "results.md",
        "results.json",
        "results.csv",
        "predictions.npz",
        "per_label.png",
    ):
        assert (out / name).is_file(), name
    assert (out / "per_label.png").stat().st_size > 10_000
    table = (out / "results.md").read_text()
    assert "| CB focal, sample + DRW vs CB focal, sample |" in table
    assert "| CB focal, class vs focal (Keras) |" in table
    # [200, 119, 71, 42, 25, 15, 8, 5, 3, 2] positives: labels 0-1 have
    # more than 100, 2-4 have 20 to 100, 5-9 fewer than 20.
    assert "head mAP (0-1) | medium mAP (2-4) | tail mAP (5-9)" in table

    results = json.loads((out / "results.json").read_text())
    runs = results["runs"]
    assert len(runs) == 14
    assert [r["loss"] for r in runs[:7]] == list(mld.LOSSES)
    profile = lt.long_tail_counts(200, 10, 100)
    predictions = np.load(out / "predictions.npz")
    y_true = predictions["y_true"]
    # The balanced test set: every digit in 100 of the 500 images.
    np.testing.assert_array_equal(y_true.sum(axis=0), [100] * 10)
    head, medium, tail = (
        profile > 100,
        (profile >= 20) & (profile <= 100),
        profile < 20,
    )
    for run in runs:
        assert run["train_counts"] == profile.tolist()
        logits = predictions[f"{run['loss']}/seed{run['seed']}"]
        assert logits.shape == (500, 10)
        ap = average_precision_score(y_true, logits, average=None)
        np.testing.assert_allclose(run["map"], ap.mean(), rtol=1e-12)
        np.testing.assert_allclose(run["per_label_ap"], ap, rtol=1e-12)
        for group, mask in (("head", head), ("medium", medium), ("tail", tail)):
            np.testing.assert_allclose(
                run[f"{group}_map"], ap[mask].mean(), rtol=1e-12
            )
        recall = recall_score(
            y_true, logits > 0, average=None, zero_division=np.nan
        )
        np.testing.assert_allclose(run["per_label_recall"], recall)
        assert run["recall"] == pytest.approx(recall.mean())
        assert run["tail_recall"] == pytest.approx(recall[tail].mean())

    summary = results["summary"]
    bce = np.array([r["map"] for r in runs if r["loss"] == "bce"])
    focal = np.array([r["map"] for r in runs if r["loss"] == "cb_focal_class"])
    entry = summary["cb_focal_class"]["map"]
    assert entry["mean"] == pytest.approx(focal.mean())
    gain = entry["gain_over_bce"]
    assert gain["mean"] == pytest.approx(np.mean(focal - bce))
    assert gain["std"] == pytest.approx(np.std(focal - bce, ddof=1))
    assert "gain_over_class_weight" not in entry
    keras_focal = np.array([r["map"] for r in runs if r["loss"] == "focal"])
    assert entry["gain_over_focal"]["mean"] == pytest.approx(
        np.mean(focal - keras_focal)
    )
    deferred = summary["cb_focal_sample_drw"]["tail_map"]
    assert "gain_over_from_start" in deferred
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 15
    assert "ap_9" in csv_lines[0] and "recall_9" in csv_lines[0]


def test_committed_multilabel_table_is_the_scripts_output_of_its_json():
    # docs/results.md includes docs/outputs/multilabel_digits/results.md;
    # that table must be what the script makes of the runs in results.json
    # (no hand edits, no stale numbers).
    import multilabel_digits as mld

    out = EXAMPLES.parent / "docs" / "outputs" / "multilabel_digits"
    results = json.loads((out / "results.json").read_text())
    runs = [
        {
            k: np.array(v, np.float64)
            if isinstance(v, list) and k.startswith("per_label")
            else v
            for k, v in run.items()
        }
        for run in results["runs"]
    ]
    summary = _report.summarize(
        runs,
        mld.LOSSES,
        deferred=mld.DEFERRED,
        metrics=mld.METRICS,
        baseline=mld.BASELINE,
        reweighted=None,
        per_class=(),
        other_gains={"gain_over_focal": mld.OVER_FOCAL},
    )
    settings = results["settings"]
    args = mld.parse_args(
        [
            "--seeds",
            str(settings["seeds"]),
            "--train-images",
            str(settings["train_images"]),
        ]
    )
    table = mld.tables(summary, runs[0]["train_counts"], args)
    assert (out / "results.md").read_text() == table + "\n"
    assert len(runs) == 5 * len(mld.LOSSES)  # the default run
