"""Multi-label long tail on grids of digits (digits-MLT), scored by mAP.

Builds a multi-label, long-tailed image set from scikit-learn's bundled 8x8
digit images (no download): every image is a 2x2 grid of cells, each cell
blank or holding one digit image, and its labels are the set of digits
present (multi-hot over the 10 digits; a digit appears at most once per
image). In training, digit c is present in exactly `n_c` images with the
paper's exponential profile (`--rho 100`, `--head 500`: 500 images hold a 0,
5 images a 9), spread over `--train-images 800` images of 1 to 4 digits;
the test set is fixed and balanced (every digit present in 100 of 500
images). Training and test images draw their digits from disjoint halves of
the digits data (50 images per digit held out for the test set).

The same small network (an MLP on the 16x16 pixels, sigmoid output per
label, bias at p = 1/C) is trained with, paired by seed:

- `bce`: Keras' `BinaryCrossentropy`, the baseline;
- `focal`: Keras' `BinaryFocalCrossentropy` with the same `--gamma` as the
  CB focal loss and no class balancing: the control that separates the
  focal term from the class-balanced weights;
- `cb_sigmoid_sample`, `cb_sigmoid_class`: `CBSigmoidLoss` with
  `weighting="sample"` (the paper: an image's weight is the sum of `w_c`
  over the labels it has) and `weighting="class"` (label c's term gets
  `w_c`, positive or negative);
- `cb_focal_sample`, `cb_focal_class`: `CBFocalLoss`, both modes;
- `cb_focal_sample_drw`: CB focal (sample) with deferred re-weighting
  (`DeferredReweighting`: beta = 0, the plain focal loss, until 80% of the
  epochs, then `--beta`).

The package's losses are built without counts: `ClassCounter` counts the
multi-hot training labels (a column sum: a label's count is the number of
images that hold it) when `fit` starts. Runs with the same seed share the
training images, the initial weights and the batch order, so the per-seed
difference to `bce` (the "paired gain") measures the loss, not the draw.

Scores on the test set: mAP (the mean over labels of scikit-learn's
`average_precision_score`, the measure COCO-MLT and VOC-MLT report), the
mAP of the head, medium and tail labels (Liu et al.'s and COCO-MLT's
groups: more than 100, 20 to 100, fewer than 20 training positives), and,
at the threshold p = 0.5, the label-wise recall (mean over labels and over
the tail labels) and the label-wise precision, which shows the price of a
recall bought by moving the threshold.

Usage:

    python examples/multilabel_digits.py   # 1 min CPU; 163 s on 2 busy cores
    python examples/multilabel_digits.py --seeds 2 --epochs 2   # smoke run

`--run-eagerly` runs the steps eagerly instead of compiling them: for a
smoke run of a few steps, where tracing is most of the time.

Writes to `--output-dir` (default `outputs/multilabel_digits/`):
`results.md` (the tables), `results.json` (all numbers and settings),
`results.csv` (one row per run), `predictions.npz` (the test labels and
every run's test logits, from which every score can be recomputed) and
`per_label.png` (per-label AP and recall of BCE and the CB losses).

Choice of beta: `--beta 0.99`, as in `long_tail_digits.py` and fixed before
any run: `1 / (1 - beta) = 100` lies inside the range of label counts
(500 down to 5), where the effective number differs from the raw count.

References:
    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
    CVPR 2019, arXiv:1901.05555.
    Wu et al., "Distribution-Balanced Loss for Multi-Label Classification
    in Long-Tailed Datasets", ECCV 2020, arXiv:2007.09654 (COCO-MLT,
    VOC-MLT; head/medium/tail mAP).
    Liu et al., "Large-Scale Long-Tailed Recognition in an Open World",
    CVPR 2019, arXiv:1904.05160 (the many/medium/few-shot thresholds).
"""

import argparse
import os
import time
from pathlib import Path

# Silences TensorFlow's C++ start-up logging; must precede its import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _long_tail as lt  # noqa: E402  (next to this file)
import _report  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from long_tail_digits import drw_start_epoch  # noqa: E402
from long_tail_digits import make_train_dataset  # noqa: E402

from keras_cbloss import CBFocalLoss  # noqa: E402
from keras_cbloss import CBSigmoidLoss  # noqa: E402
from keras_cbloss import ClassCounter  # noqa: E402
from keras_cbloss import DeferredReweighting  # noqa: E402
from keras_cbloss import prior_bias_initializer  # noqa: E402
from keras_cbloss import shot_groups  # noqa: E402

NUM_LABELS = 10
GRID = 2  # cells per side: 2x2 cells of 8x8 pixels
CELL = 8
MAX_LABELS = GRID * GRID
TEST_PER_DIGIT = 50  # digit images held out for the test grids
TEST_POSITIVES = 100  # test images holding each digit
TEST_IMAGES = 500  # so a test image holds 2 digits on average
SPLIT_SEED = 0  # the held-out digits and the test set are the same for all
STEPS_PER_EXECUTION = 25  # one epoch of the default run
BASELINE = "bce"
LOSSES = {
    "bce": "BCE (Keras)",
    "focal": "focal (Keras)",
    "cb_sigmoid_sample": "CB sigmoid, sample",
    "cb_sigmoid_class": "CB sigmoid, class",
    "cb_focal_sample": "CB focal, sample",
    "cb_focal_class": "CB focal, class",
    "cb_focal_sample_drw": "CB focal, sample + DRW",
}
KERAS_LOSSES = ("bce", "focal")
CB_LOSSES = tuple(name for name in LOSSES if name not in KERAS_LOSSES)
DEFERRED = {"cb_focal_sample_drw": "cb_focal_sample"}
# The CB focal runs against Keras' focal loss with the same gamma: the pair
# isolates the class-balanced weighting from the focal term.
OVER_FOCAL = {name: "focal" for name in CB_LOSSES if "focal" in name}
GROUPS = ("head", "medium", "tail")  # shot_groups' many, medium, few
METRICS = (
    "map",
    "head_map",
    "medium_map",
    "tail_map",
    "recall",
    "tail_recall",
    "precision",
)
HEADERS = {
    "map": "mAP",
    "head_map": "head mAP",
    "medium_map": "medium mAP",
    "tail_map": "tail mAP",
    "recall": "recall",
    "tail_recall": "tail recall",
    "precision": "precision",
}
PER_LABEL = {
    "per_label_ap": "ap",
    "per_label_recall": "recall",
    "per_label_precision": "precision",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    lt.add_run_arguments(
        parser, epochs=40, batch_size=32, output_dir="outputs/multilabel_digits"
    )
    parser.add_argument(
        "--rho",
        type=float,
        default=100.0,
        help="imbalance: training images holding digit 0 "
        "per image holding digit 9",
    )
    parser.add_argument(
        "--head",
        type=int,
        default=500,
        help="training images holding digit 0 (the head)",
    )
    parser.add_argument(
        "--train-images",
        type=int,
        default=800,
        help="training images (each holds 1 to 4 digits)",
    )
    parser.add_argument(
        "--beta", type=float, default=0.99, help="beta of the CB losses"
    )
    parser.add_argument(
        "--gamma", type=float, default=1.0, help="gamma of the CB focal loss"
    )
    parser.add_argument(
        "--drw-fraction",
        type=float,
        default=0.8,
        help="deferred re-weighting starts after this fraction of the epochs",
    )
    args = parser.parse_args(argv)
    lt.check_run_arguments(parser, args)
    if not 0.0 <= args.drw_fraction < 1.0:
        parser.error("--drw-fraction must be in [0, 1)")
    try:  # the profile's and the loss's own checks, before any training
        counts = lt.long_tail_counts(args.head, NUM_LABELS, args.rho)
        CBFocalLoss(None, args.beta, args.gamma)
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    if not (args.head <= args.train_images <= counts.sum()):
        parser.error(
            f"--train-images must be in [--head, {counts.sum()}] (every "
            "image holds 1 to 4 digits, and at most one of each); received "
            f"{args.train_images}"
        )
    return args


# --------------------------------------------------------------------------
# Data.
# --------------------------------------------------------------------------


def multi_hot_rows(counts, num_images, rng, max_labels=MAX_LABELS):
    """Random multi-hot rows whose column sums are exactly `counts`.

    Label c is put in `counts[c]` distinct rows drawn uniformly among the
    rows with room left (fewer than `max_labels` labels), the most frequent
    label first; then each empty row takes a label from a row holding two or
    more that it does not hold itself, which keeps the column sums.

    Args:
        counts: 1-D integer array, positives per label.
        num_images: Int, the number of rows; `max(counts) <= num_images <=
            sum(counts)`, and `sum(counts) <= max_labels * num_images`.
        rng: `numpy.random.Generator`.
        max_labels: Int, most labels in one row.

    Returns:
        NumPy float32 array `[num_images, C]` of 0s and 1s: every row holds
        1 to `max_labels` labels, column c sums to `counts[c]`.

    Raises:
        ValueError: If the sizes make such rows impossible.
    """
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if not (counts.max() <= num_images <= total <= max_labels * num_images):
        raise ValueError(
            f"Cannot spread {counts.tolist()} positives over {num_images} "
            f"rows of 1 to {max_labels} labels."
        )
    rows = np.zeros((num_images, len(counts)), np.float32)
    for c in np.argsort(-counts, kind="stable"):
        room = np.flatnonzero(rows.sum(1) < max_labels)
        if len(room) < counts[c]:
            raise ValueError(f"No room left for label {c}; use more rows.")
        rows[rng.choice(room, size=counts[c], replace=False), c] = 1
    for empty in np.flatnonzero(rows.sum(1) == 0):
        # A row with two or more labels gives one of them away.
        donors = np.flatnonzero(rows.sum(1) >= 2)
        donor = rng.choice(donors)
        c = rng.choice(np.flatnonzero(rows[donor]))
        rows[donor, c], rows[empty, c] = 0, 1
    return rows


def grid_images(labels, x_digits, y_digits, rng):
    """Draws each row's digits into random cells of a 2x2 grid.

    Label c's images are drawn from the digit images of class c without
    replacement while there are enough (so a tail label's few positives
    are different digit images), with replacement otherwise.

    Args:
        labels: Multi-hot `[N, C]` rows.
        x_digits: Digit images `[M, 8, 8]` in [0, 1].
        y_digits: Their classes `[M]`.
        rng: `numpy.random.Generator`.

    Returns:
        Float32 images `[N, 16 * 16]` (flattened), blank cells 0.
    """
    n = len(labels)
    images = np.zeros((n, GRID * CELL, GRID * CELL), np.float32)
    cells = np.stack([rng.permutation(MAX_LABELS) for _ in range(n)])
    slot = np.zeros(n, np.int64)  # the next free cell of each image
    for c in range(labels.shape[1]):
        rows = np.flatnonzero(labels[:, c])
        pool = np.flatnonzero(y_digits == c)
        chosen = rng.choice(pool, size=len(rows), replace=len(rows) > len(pool))
        for row, digit in zip(rows, chosen):
            r, col = divmod(int(cells[row, slot[row]]), GRID)
            slot[row] += 1
            images[
                row, r * CELL : (r + 1) * CELL, col * CELL : (col + 1) * CELL
            ] = x_digits[digit]
    return images.reshape(n, -1)


def load_digit_split():
    """The held-out digit images (for the test grids) and the rest.

    Returns:
        `(x_test_digits, y_test_digits, x_pool, y_pool)`: 8x8 images in
        [0, 1] and int32 classes, `TEST_PER_DIGIT` per class held out.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    test, pool = lt.balanced_split(
        y, TEST_PER_DIGIT, np.random.default_rng(SPLIT_SEED)
    )
    return x[test], y[test], x[pool], y[pool]


def make_test_set(x_digits, y_digits):
    """The fixed, balanced test set: every digit in `TEST_POSITIVES` of the
    `TEST_IMAGES` images."""
    rng = np.random.default_rng([SPLIT_SEED, 2])
    counts = np.full(NUM_LABELS, TEST_POSITIVES)
    labels = multi_hot_rows(counts, TEST_IMAGES, rng)
    return grid_images(labels, x_digits, y_digits, rng), labels


def make_train_set(x_pool, y_pool, args, seed):
    """A new long-tailed training set for `seed`: `(x, y, counts)`."""
    counts = lt.long_tail_counts(args.head, NUM_LABELS, args.rho)
    rng = np.random.default_rng([seed, 1])  # apart from the split's stream
    labels = multi_hot_rows(counts, args.train_images, rng)
    return grid_images(labels, x_pool, y_pool, rng), labels, counts


# --------------------------------------------------------------------------
# Model, losses, training.
# --------------------------------------------------------------------------


def build_model(name):
    """A small MLP with one logit per label; every output starts at 1/C."""
    inputs = keras.Input((GRID * CELL * GRID * CELL,), name="pixels")
    x = keras.layers.Dense(128, activation="relu")(inputs)
    x = keras.layers.Dropout(0.2)(x)
    logits = keras.layers.Dense(
        NUM_LABELS,
        bias_initializer=prior_bias_initializer(NUM_LABELS),
        name="logits",
    )(x)
    return keras.Model(inputs, logits, name=f"digits_mlt_{name}")


def make_loss(name, args):
    """The loss of a run, from logits; the CB losses wait for the counts."""
    if name == BASELINE:
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if name == "focal":
        return keras.losses.BinaryFocalCrossentropy(
            gamma=args.gamma, from_logits=True
        )
    weighting = "class" if "_class" in name else "sample"
    if name.startswith("cb_sigmoid"):
        return CBSigmoidLoss(
            None, args.beta, from_logits=True, weighting=weighting
        )
    if name.startswith("cb_focal"):
        return CBFocalLoss(
            None, args.beta, args.gamma, from_logits=True, weighting=weighting
        )
    raise ValueError(f"Unknown loss {name!r}")


def train(name, args, seed, x, y):
    """Trains one run; returns `(model, loss)`."""
    # Same seed for every loss: same initial weights, dropout masks and
    # batch order (set before the pipeline: its shuffle reads the seed).
    keras.utils.set_random_seed(seed)
    ds = make_train_dataset(x, y, args.batch_size, seed)
    model = build_model(name)
    loss = make_loss(name, args)
    # Several steps per call of the compiled train function: the same
    # updates (the same scores, to the digit), with less Python per step.
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=loss,
        steps_per_execution=STEPS_PER_EXECUTION,
        run_eagerly=args.run_eagerly,
    )
    callbacks = []
    if name in CB_LOSSES:
        # A labels-only view: counting must not advance the shuffle of `ds`.
        labels_ds = tf.data.Dataset.from_tensor_slices(y).batch(1024)
        callbacks.append(ClassCounter(labels_ds, NUM_LABELS, verbose=0))
    if name in DEFERRED:
        callbacks.append(
            DeferredReweighting(
                drw_start_epoch(args.epochs, args.drw_fraction), args.beta
            )
        )
    model.fit(
        ds, epochs=args.epochs, verbose=0, callbacks=callbacks, shuffle=False
    )
    return model, loss


# --------------------------------------------------------------------------
# Scores.
# --------------------------------------------------------------------------


def per_label_ap(y_true, scores):
    """Average precision of every label (scikit-learn's, not interpolated).

    The one place the example computes AP: mAP and the head/medium/tail mAP
    are means of this vector.

    Args:
        y_true: Multi-hot `[N, C]`.
        scores: `[N, C]` scores, any monotone function of p (logits here:
            float32 sigmoids of large logits would tie at 1.0).

    Returns:
        NumPy float64 `[C]`; NaN for a label without positives.
    """
    from sklearn.metrics import average_precision_score

    y_true = np.asarray(y_true)
    scores = np.asarray(scores)
    return np.array(
        [
            average_precision_score(y_true[:, c], scores[:, c])
            if y_true[:, c].any()
            else np.nan
            for c in range(y_true.shape[1])
        ]
    )


def per_label_recall_precision(y_true, predicted):
    """Recall and precision of every label from 0/1 predictions `[N, C]`.

    Returns:
        `(recall, precision)`, NumPy float64 `[C]` each; NaN for a label
        without positives (recall) or without predicted positives
        (precision).
    """
    y_true = np.asarray(y_true) > 0
    predicted = np.asarray(predicted) > 0
    hits = np.sum(y_true & predicted, axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits / y_true.sum(axis=0)
        precision = hits / predicted.sum(axis=0)
    return recall, precision


def label_groups(counts):
    """Head / medium / tail labels: `shot_groups`' many / medium / few
    (more than 100, 20 to 100, fewer than 20 training positives)."""
    shots = shot_groups(counts)
    return dict(zip(GROUPS, (shots["many"], shots["medium"], shots["few"])))


def _mean(values):
    """The mean of the non-NaN values; NaN when there are none (a profile
    without head labels, a run that never predicts a label)."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(np.mean(values)) if len(values) else float("nan")


def score(logits, y_test, counts):
    """The scores of one run on the test set (p = 0.5 is logit 0)."""
    ap = per_label_ap(y_test, logits)
    recall, precision = per_label_recall_precision(y_test, logits > 0)
    groups = label_groups(counts)
    record = {"map": float(np.mean(ap))}
    for group, mask in groups.items():
        record[f"{group}_map"] = _mean(ap[mask])
    record.update(
        {
            "recall": float(np.mean(recall)),
            "tail_recall": _mean(recall[groups["tail"]]),
            # A label never predicted has no precision: left out of the mean.
            "precision": _mean(precision),
            "per_label_ap": ap.tolist(),
            "per_label_recall": recall.tolist(),
            "per_label_precision": precision.tolist(),
        }
    )
    return record


# --------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------


def run_all(args, x_test, y_test, x_pool, y_pool):
    """Trains every loss on every seed's training set, paired by seed.

    Returns:
        `(records, logits)`: one record per run, and the test logits of
        each run keyed `"{loss}/seed{seed}"`.
    """
    total = args.seeds * len(LOSSES)
    records, logits = [], {}
    for seed in range(args.seeds):
        x, y, counts = make_train_set(x_pool, y_pool, args, seed)
        print(
            f"seed {seed}: {len(y)} training images, label counts "
            f"{counts.tolist()}"
        )
        for name in LOSSES:
            start = time.perf_counter()
            model, loss = train(name, args, seed, x, y)
            seconds = time.perf_counter() - start
            if name in CB_LOSSES:
                # ClassCounter counted the multi-hot columns exactly.
                np.testing.assert_array_equal(loss.class_counts, counts)
            # One eager call: `predict` would trace a function per model.
            run_logits = keras.ops.convert_to_numpy(
                model(x_test, training=False)
            )
            logits[f"{name}/seed{seed}"] = run_logits
            record = {"loss": name, "seed": seed}
            record.update(score(run_logits, y_test, counts))
            record.update(
                {"train_counts": counts.tolist(), "train_seconds": seconds}
            )
            records.append(record)
            print(
                f"  [{len(records):2d}/{total}] seed {seed} "
                f"{LOSSES[name]:<24} mAP {record['map']:6.1%}  "
                f"tail mAP {record['tail_map']:6.1%}  "
                f"recall {record['recall']:6.1%}  "
                f"({seconds:.1f} s)",
                flush=True,
            )
    return records, logits


def tables(summary, counts, args):
    """The Markdown tables: scores with gains over BCE, the CB focal runs
    against Keras' focal loss, and the deferral."""
    groups = label_groups(counts)
    spans = {
        g: _report.span(np.flatnonzero(m).tolist()) for g, m in groups.items()
    }
    headers = dict(HEADERS)
    for group in GROUPS:
        headers[f"{group}_map"] = f"{group} mAP ({spans[group]})"
    headers["tail_recall"] = f"tail recall ({spans['tail']})"
    ap_metrics = ("map", "head_map", "medium_map", "tail_map")
    threshold_metrics = ("recall", "tail_recall", "precision")
    lines = _report.metric_table(summary, ap_metrics, headers, BASELINE)
    lines += [""]
    lines += _report.metric_table(summary, threshold_metrics, headers, BASELINE)
    gain_titles = " | ".join(f"gain: {headers[m]}" for m in ap_metrics)
    for title, key, pairs in (
        ("CB focal vs Keras focal", "gain_over_focal", OVER_FOCAL),
        ("deferred vs from the start", "gain_over_from_start", DEFERRED),
    ):
        lines += [
            "",
            f"| {title} | {gain_titles} |",
            "|---|" + "---|" * len(ap_metrics),
        ]
        lines += [
            _report.gain_row(
                f"{summary[n]['label']} vs {summary[other]['label']}",
                summary[n],
                key,
                ap_metrics,
            )
            for n, other in pairs.items()
        ]
    lines += [
        "",
        f"Percent, mean ± std over {args.seeds} seed(s) on the balanced test "
        f"set ({TEST_IMAGES} images, every digit in {TEST_POSITIVES}). "
        f"Training label counts {list(counts)} ({args.train_images} images). "
        "mAP: mean over labels of average precision (scikit-learn); head, "
        "medium, tail: labels with more than 100, 20 to 100, fewer than 20 "
        "training positives. Recall, precision: mean over labels at p = 0.5 "
        "(precision over the labels predicted at least once). Gains are "
        "paired by seed: mean ± std of the per-seed difference, and the "
        "two-sided paired t-test p.",
    ]
    return "\n".join(lines)


def plot(summary, counts, path):
    """Per-label AP and recall of the Keras losses and the four CB losses
    weighted from the start."""
    plt = _report.pyplot()
    names = KERAS_LOSSES + tuple(n for n in CB_LOSSES if n not in DEFERRED)
    fig, axes = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True)
    for ax, key, ylabel in zip(
        axes,
        ("per_label_ap", "per_label_recall"),
        ("test AP", "test recall at p = 0.5"),
    ):
        _report.bar_panel(ax, summary, counts, names, key, ylabel)
    axes[0].set_title(
        "Per-label AP and recall, mean ± std over seeds "
        "(head label on the left)"
    )
    axes[1].set_xlabel("digit and the number of training images holding it")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(args, records, y_test, logits):
    """Prints the tables and writes the results, predictions and plot."""
    summary = _report.summarize(
        records,
        LOSSES,
        deferred=DEFERRED,
        metrics=METRICS,
        baseline=BASELINE,
        reweighted=None,
        per_class=tuple(PER_LABEL),
        other_gains={"gain_over_focal": OVER_FOCAL},
    )
    counts = records[0]["train_counts"]
    table = tables(summary, counts, args)
    print()
    print(table)
    out = args.output_dir
    _report.write_results(
        out,
        table,
        {
            "settings": {
                k: str(v) if isinstance(v, Path) else v
                for k, v in vars(args).items()
            },
            "test_images": TEST_IMAGES,
            "test_positives_per_label": TEST_POSITIVES,
            "label_groups": {
                g: np.flatnonzero(m).tolist()
                for g, m in label_groups(counts).items()
            },
            "drw_start_epoch": drw_start_epoch(args.epochs, args.drw_fraction),
            "summary": summary,
            "runs": records,
        },
        records,
        per_class=PER_LABEL,
    )
    np.savez_compressed(out / "predictions.npz", y_true=y_test, **logits)
    plot(summary, counts, out / "per_label.png")
    return summary


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    x_digits, y_digits, x_pool, y_pool = load_digit_split()
    x_test, y_test = make_test_set(x_digits, y_digits)
    print(
        f"digits-MLT: rho={args.rho:g}, head={args.head}, "
        f"{args.train_images} training images, beta={args.beta}, "
        f"gamma={args.gamma}, {args.epochs} epochs (DRW from epoch "
        f"{drw_start_epoch(args.epochs, args.drw_fraction)}), "
        f"{args.seeds} seed(s); test set {TEST_IMAGES} images"
    )
    records, logits = run_all(args, x_test, y_test, x_pool, y_pool)
    summary = report(args, records, y_test, logits)
    print(
        f"outputs in {args.output_dir}/; "
        f"total time {time.perf_counter() - start:.0f} s"
    )
    return summary


if __name__ == "__main__":
    main()
