"""Helpers shared by the long-tail examples: data profile, metrics, reports.

Kept out of the `keras_cbloss` package on purpose: these are the
experiment's bookkeeping (which images to keep, how to score a run, how to
summarize seeds), not part of the losses. The examples import this module
from their own directory, and `tests/test_examples.py` tests it.
"""

import csv
import json
import math
import pathlib

import numpy as np


def long_tail_counts(n_max, num_classes, imbalance):
    """Per-class training-set sizes of the paper's exponential profile.

    Formula:

    ```
    n_i = int(n_max * (1 / imbalance) ** (i / (C - 1))),  i = 0 .. C-1
    ```

    which is `n_max * imbalance ** (-i / (C - 1))` truncated to an integer,
    written exactly as the official data script does (`int()` of
    `img_max * imb_factor ** (i / (C - 1.0))`, with
    `imb_factor = 1 / imbalance`), so that the class sizes match the
    published CIFAR-LT sets image for image. Class 0 is the head, class C-1
    the tail with `n_max / imbalance` images. Every class keeps at least one
    image.

    Args:
        n_max: Int, size of the largest (first) class.
        num_classes: Int `C >= 2`.
        imbalance: Float `>= 1`, the ratio `n_max / n_min` (the paper's
            "imbalance factor": 10, 50, 100, ...).

    Returns:
        NumPy int64 array of shape `[C]`, non-increasing.

    Raises:
        ValueError: For `n_max < 1`, `num_classes < 2` or `imbalance < 1`.

    Example:

    >>> long_tail_counts(5000, 10, 100).tolist()
    [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555, Section 5.1.
    """
    if int(n_max) != n_max or n_max < 1:
        raise ValueError(
            "Invalid value for argument `n_max`. Expected an integer >= 1. "
            f"Received: n_max={n_max}"
        )
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(
            "Invalid value for argument `num_classes`. Expected an integer "
            f">= 2. Received: num_classes={num_classes}"
        )
    if not imbalance >= 1:
        raise ValueError(
            "Invalid value for argument `imbalance`. Expected a float >= 1 "
            f"(n_max / n_min). Received: imbalance={imbalance}"
        )
    imb_factor = 1.0 / imbalance
    counts = [
        int(n_max * imb_factor ** (i / (num_classes - 1.0)))
        for i in range(int(num_classes))
    ]
    return np.maximum(np.asarray(counts, dtype=np.int64), 1)


def long_tail_indices(labels, counts, rng):
    """Indices of a random subsample with `counts[c]` examples of class c.

    Each class's examples are drawn uniformly without replacement, as the
    official script does (shuffle a class's image list, keep the first
    `n_c`); a new `rng` gives a new subsample with the same profile.

    Args:
        labels: 1-D integer array of the full training set's labels.
        counts: 1-D integer array, how many examples to keep per class.
        rng: `numpy.random.Generator`.

    Returns:
        Sorted NumPy int64 array of indices into `labels`.

    Raises:
        ValueError: If a class has fewer examples than it should keep.
    """
    labels = np.asarray(labels)
    chosen = []
    for c, n_c in enumerate(np.asarray(counts)):
        pool = np.flatnonzero(labels == c)
        if len(pool) < n_c:
            raise ValueError(
                f"Class {c} has {len(pool)} examples, fewer than the "
                f"{int(n_c)} the long-tailed profile asks for."
            )
        chosen.append(rng.choice(pool, size=int(n_c), replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def balanced_split(labels, per_class, rng):
    """Splits indices into a balanced part (`per_class` of each class) and
    the rest.

    Args:
        labels: 1-D integer array.
        per_class: Int, examples per class in the balanced part.
        rng: `numpy.random.Generator`.

    Returns:
        A tuple `(balanced, rest)` of sorted int64 index arrays.
    """
    labels = np.asarray(labels)
    counts = np.full(labels.max() + 1, per_class)
    balanced = long_tail_indices(labels, counts, rng)
    rest = np.setdiff1d(np.arange(len(labels)), balanced)
    return balanced, rest.astype(np.int64)


def per_class_recall(y_true, y_pred, num_classes):
    """Recall of every class: the fraction of its examples predicted right.

    Args:
        y_true: 1-D integer array of true labels.
        y_pred: 1-D integer array of predicted labels.
        num_classes: Int `C`.

    Returns:
        NumPy float64 array of shape `[C]`; NaN for a class with no example.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    support = np.bincount(y_true, minlength=num_classes).astype(np.float64)
    hits = np.bincount(y_true[y_true == y_pred], minlength=num_classes).astype(
        np.float64
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, hits / support, np.nan)


def balanced_accuracy(y_true, y_pred, num_classes):
    """Mean per-class recall over the classes present in `y_true`."""
    return float(np.nanmean(per_class_recall(y_true, y_pred, num_classes)))


def prior_weighted_accuracy(recall, train_counts):
    """Accuracy expected on a test set with the training class frequencies.

    Formula:

    ```
    acc_prior = sum_c (n_c / N) * recall_c
    ```

    On a balanced test set plain accuracy equals balanced accuracy; this is
    the accuracy the same model would have if test images arrived as often
    as training images do, which is where re-weighting costs head-class
    accuracy.
    """
    train_counts = np.asarray(train_counts, np.float64)
    return float(np.sum(train_counts * recall) / train_counts.sum())


def tail_classes(train_counts, k=3):
    """The `k` classes with the fewest training examples (ties: higher id).

    With the exponential profile these are the last `k` class ids.
    """
    train_counts = np.asarray(train_counts)
    # lexsort sorts by the last key first: count, then descending class id.
    order = np.lexsort((-np.arange(len(train_counts)), train_counts))
    return np.sort(order[:k])


def paired_gains(values, baseline):
    """Paired differences `values - baseline` over seeds, with a t-test.

    Runs with the same seed share the data subsample, the initial weights
    and the batch order, so the per-seed difference removes most of the
    seed-to-seed noise that the two means carry on their own.

    Args:
        values: 1-D array, one score per seed.
        baseline: 1-D array of the same length, the baseline's scores.

    Returns:
        Dict with `mean` and `std` (sample std, ddof=1) of the differences,
        `wins` (seeds where `values > baseline`), `n` and `p`, the two-sided
        p-value of the paired t-test (NaN with fewer than two seeds or when
        every difference is the same).
    """
    diff = np.asarray(values, np.float64) - np.asarray(baseline, np.float64)
    n = len(diff)
    std = float(np.std(diff, ddof=1)) if n > 1 else math.nan
    p = math.nan
    if n > 1 and std > 0:
        from scipy import stats

        p = float(stats.ttest_rel(values, baseline).pvalue)
    return {
        "mean": float(np.mean(diff)),
        "std": std,
        "wins": int(np.sum(diff > 0)),
        "n": n,
        "p": p,
    }


def mean_std(values):
    """`(mean, sample std)` of a 1-D array; std is NaN for one value."""
    values = np.asarray(values, np.float64)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return float(np.mean(values)), std


def format_pm(mean, std, scale=100.0, digits=1, signed=False):
    """`'12.3 ± 4.5'` (or `'+12.3 ± 4.5'`), without the std when it is NaN."""
    sign = "+" if signed else ""
    text = f"{mean * scale:{sign}.{digits}f}"
    if not math.isnan(std):
        text += f" ± {std * scale:.{digits}f}"
    return text


def format_gain(gain):
    """A paired gain `{"mean", "std", "p"}` as `'+1.2 ± 0.3 (p=0.04)'`."""
    text = format_pm(gain["mean"], gain["std"], signed=True)
    if not np.isnan(gain["p"]):
        text += f" (p={gain['p']:.2g})"
    return text


def add_run_arguments(parser, epochs, batch_size, output_dir):
    """The seeded-run options the digits examples share: `--seeds`,
    `--epochs`, `--batch-size`, `--learning-rate` (Adam), `--output-dir`
    (a `pathlib.Path`, default `output_dir`) and `--run-eagerly`."""
    parser.add_argument(
        "--seeds",
        type=int,
        default=5,
        help="number of seeds; runs are paired by seed",
    )
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--output-dir", type=pathlib.Path, default=pathlib.Path(output_dir)
    )
    add_run_eagerly_argument(parser)


def add_run_eagerly_argument(parser):
    """`--run-eagerly`: `compile(run_eagerly=True)` for smoke runs."""
    parser.add_argument(
        "--run-eagerly",
        action="store_true",
        help="run the training and prediction steps eagerly "
        "(`compile(run_eagerly=True)`), not as compiled graphs: the same "
        "computation, slower per step, but nothing to trace, which is most "
        "of the time of a smoke run of a few steps",
    )


def check_run_arguments(parser, args):
    """Exits with argparse's usage error unless the run counts are >= 1."""
    if args.seeds < 1 or args.epochs < 1 or args.batch_size < 1:
        parser.error("--seeds, --epochs and --batch-size must be >= 1")


def to_jsonable(value):
    """Converts NumPy scalars and arrays (nested) to plain Python, NaN to
    None, so that `json.dump` writes strict JSON."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(to_jsonable(data), f, indent=2)
        f.write("\n")


def write_csv(path, rows):
    """Writes a list of flat dicts (same keys) as CSV."""
    rows = [to_jsonable(row) for row in rows]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
