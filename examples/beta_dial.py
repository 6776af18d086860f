"""The beta dial: which beta on a long tail made of near-duplicates?

The class-balanced loss (Cui et al., CVPR 2019) weights class c by
`(1 - beta) / (1 - beta ** n_c)`, the inverse of its "effective number" of
samples. `beta = 0` is plain cross-entropy; `beta -> 1` is inverse
frequency (1/n); in between, a class's weight stops growing once it has
about `1 / (1 - beta)` images. The paper's premise is that samples overlap,
so that extra copies of the same few images add little, and it suggests
`beta = (N - 1) / N` for a class made of N distinct prototypes.

This script builds exactly that situation from scikit-learn's bundled 8x8
digits (no download): class c has N_c distinct prototype images (40 for the
head down to 2 for the tail) and n_c training images (2000 down to 2), every
one an augmented copy (a random shift of at most one pixel and grey-level
noise) of one of its prototypes. The test set is balanced (50 real images
per class) and a separate balanced validation split (20 per class) is used
to pick beta the way a user would. The same small network is trained, paired
by seed, with:

- `ce`: plain softmax cross-entropy (beta = 0);
- `cb_<beta>`: `CBSoftmaxLoss` at each beta of `--betas` (default 0.9, 0.95,
  0.975, 0.99, 0.999); 0.975 is the paper's `(N - 1) / N` for the head
  class's N = 40 prototypes;
- `inv_freq`: cross-entropy with `fit(class_weight=...)` at 1/n (scaled to
  sum to C like the CB weights), the beta -> 1 limit.

Runs with the same seed share the prototypes, the augmented copies, the
initial weights and the batch order, so the per-seed difference between two
settings measures the setting. Every setting gets the same fixed number of
epochs.

Usage:

    python examples/beta_dial.py            # 5 seeds, about 3 min on 2 cores
    python examples/beta_dial.py --quick    # a smoke run (seconds)

`--run-eagerly` runs the steps eagerly instead of compiling them: for a
smoke run of a few steps, where tracing is most of the time.

Writes to `--output-dir` (default `outputs/beta_dial/`): `results.md` (the
table), `results.json` (all numbers and settings), `results.csv` (one row
per run) and `beta_dial.png` (balanced accuracy and tail recall against
beta).

References:
    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
    CVPR 2019, arXiv:1901.05555 (Section 3, beta = (N - 1) / N).
"""

import argparse
import os
import time
from pathlib import Path

# Silences TensorFlow's C++ start-up logging; must precede its import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _long_tail as lt  # noqa: E402  (next to this script)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cbloss import BalancedAccuracy  # noqa: E402
from keras_cbloss import CBSoftmaxLoss  # noqa: E402
from keras_cbloss import class_balanced_weights  # noqa: E402

NUM_CLASSES = 10
TEST_PER_CLASS = 50
VAL_PER_CLASS = 20
SPLIT_SEED = 0  # test and validation splits are the same for every seed
TAIL_K = 3
DEFAULT_BETAS = (0.9, 0.95, 0.975, 0.99, 0.999)
N_PROTOTYPES_MAX = 40  # distinct images of the head class
N_PROTOTYPES_MIN = 2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--betas", type=float, nargs="+", default=list(DEFAULT_BETAS)
    )
    parser.add_argument(
        "--n-max",
        type=int,
        default=2000,
        help="training images of the head class (the tail has 2)",
    )
    lt.add_run_arguments(
        parser, epochs=20, batch_size=64, output_dir="outputs/beta_dial"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 seeds, 1 epoch, n_max 100, betas 0.9 0.99",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.n_max = 2, 1, 100
        args.betas = [0.9, 0.99]
    lt.check_run_arguments(parser, args)
    if args.n_max < N_PROTOTYPES_MAX:
        parser.error(f"--n-max must be >= {N_PROTOTYPES_MAX}")
    try:  # the loss's own check, before any training starts
        for beta in args.betas:
            CBSoftmaxLoss(None, beta)
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    args.betas = sorted(set(args.betas))
    return args


# --------------------------------------------------------------------------
# Data: a long tail of augmented copies of a few prototypes per class.
# --------------------------------------------------------------------------


def load_digits_splits():
    """Balanced test and validation splits, and the prototype pool.

    Returns:
        Dict with `x_test`, `y_test`, `x_val`, `y_val`, `x_pool`, `y_pool`;
        images are 8x8 grey levels in [0, 1], labels int32.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    rng = np.random.default_rng(SPLIT_SEED)
    test, rest = lt.balanced_split(y, TEST_PER_CLASS, rng)
    val_in_rest, pool_in_rest = lt.balanced_split(y[rest], VAL_PER_CLASS, rng)
    val, pool = rest[val_in_rest], rest[pool_in_rest]
    return {
        "x_test": x[test],
        "y_test": y[test],
        "x_val": x[val],
        "y_val": y[val],
        "x_pool": x[pool],
        "y_pool": y[pool],
    }


def class_profile(n_max):
    """Training images n_c and distinct prototypes N_c per class.

    Both follow the paper's exponential profile: n_c from `n_max` down to 2,
    N_c from 40 down to 2 (never more than n_c).
    """
    counts = lt.long_tail_counts(n_max, NUM_CLASSES, n_max / 2)
    prototypes = lt.long_tail_counts(
        N_PROTOTYPES_MAX, NUM_CLASSES, N_PROTOTYPES_MAX / N_PROTOTYPES_MIN
    )
    prototypes = np.clip(prototypes, N_PROTOTYPES_MIN, counts)
    return counts, prototypes


def augment(images, rng):
    """A random shift of at most one pixel (zero fill) and grey noise."""
    shifted = np.zeros_like(images)
    shifts = rng.integers(-1, 2, size=(len(images), 2))
    for i, (dy, dx) in enumerate(shifts):
        rolled = np.roll(images[i], (dy, dx), axis=(0, 1))
        if dy:  # zero the row/column that wrapped around
            rolled[0 if dy > 0 else -1, :] = 0.0
        if dx:
            rolled[:, 0 if dx > 0 else -1] = 0.0
        shifted[i] = rolled
    noise = rng.normal(0.0, 0.05, size=images.shape).astype(np.float32)
    return np.clip(shifted + noise, 0.0, 1.0)


def duplicated_train_set(x_pool, y_pool, counts, prototypes, seed):
    """n_c augmented copies of N_c prototypes of class c, for `seed`.

    Copies are spread evenly: copy k of class c comes from prototype
    k mod N_c.

    Returns:
        `(x, y)`: flattened images `[sum(n), 64]` and int32 labels.
    """
    rng = np.random.default_rng([seed, 2])
    xs, ys = [], []
    for c, (n_c, proto_c) in enumerate(zip(counts, prototypes)):
        pool = np.flatnonzero(y_pool == c)
        chosen = rng.choice(pool, size=int(proto_c), replace=False)
        sources = x_pool[chosen[np.arange(n_c) % proto_c]]
        xs.append(augment(sources, rng))
        ys.append(np.full(n_c, c, np.int32))
    x = np.concatenate(xs).reshape(-1, 64)
    return x, np.concatenate(ys)


# --------------------------------------------------------------------------
# Settings, model, one run.
# --------------------------------------------------------------------------


def settings(betas):
    """Ordered `{name: beta}`: CE (0), the CB betas, 1/n (1.0)."""
    named = {"ce": 0.0}
    named.update({f"cb_{b:g}": float(b) for b in betas})
    named["inv_freq"] = 1.0
    return named


def inverse_frequency_class_weight(counts):
    """`fit(class_weight=...)` at 1/n, scaled to sum to C."""
    weights = 1.0 / np.asarray(counts, np.float64)
    weights *= len(weights) / weights.sum()
    return {c: float(w) for c, w in enumerate(weights)}


def build_model():
    inputs = keras.Input((64,), name="pixels")
    x = keras.layers.Dense(128, activation="relu")(inputs)
    x = keras.layers.Dropout(0.2)(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits)


def train_and_score(name, beta, args, seed, train, data):
    """Trains one setting and scores it on validation and test."""
    x_train, y_train, counts = train
    keras.utils.set_random_seed(seed)  # same init and dropout per seed
    ds = tf.data.Dataset.from_tensor_slices((x_train, y_train))
    ds = ds.shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(args.batch_size).prefetch(tf.data.AUTOTUNE)
    class_weight = None
    if name == "inv_freq":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        class_weight = inverse_frequency_class_weight(counts)
    elif name == "ce":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        loss = CBSoftmaxLoss(counts, beta, from_logits=True)
    model = build_model()
    model.compile(
        keras.optimizers.Adam(args.learning_rate),
        loss=loss,
        metrics=[BalancedAccuracy()],
        run_eagerly=args.run_eagerly,
    )
    start = time.perf_counter()
    model.fit(
        ds,
        epochs=args.epochs,
        verbose=0,
        class_weight=class_weight,
        shuffle=False,
    )
    seconds = time.perf_counter() - start
    # The validation score a user would select beta with: the package's
    # metric, through evaluate().
    val = model.evaluate(
        data["x_val"].reshape(-1, 64),
        data["y_val"],
        verbose=0,
        return_dict=True,
    )
    y_pred = np.argmax(
        model.predict(data["x_test"].reshape(-1, 64), verbose=0), axis=-1
    )
    recall = lt.per_class_recall(data["y_test"], y_pred, NUM_CLASSES)
    return {
        "setting": name,
        "beta": beta,
        "seed": seed,
        "val_balanced_accuracy": float(val["balanced_accuracy"]),
        "balanced_accuracy": float(np.mean(recall)),
        "tail_recall": float(np.mean(recall[lt.tail_classes(counts, TAIL_K)])),
        "per_class_recall": recall.tolist(),
        "train_seconds": seconds,
    }


# --------------------------------------------------------------------------
# Summary, selection on validation, table and plot.
# --------------------------------------------------------------------------

METRICS = ("balanced_accuracy", "tail_recall", "val_balanced_accuracy")


def summarize(records, names):
    """Mean/std per setting; paired gains over CE and over 1/n."""

    def values(name, metric):
        return np.array([r[metric] for r in records if r["setting"] == name])

    summary = {}
    for name, beta in names.items():
        entry = {"beta": beta}
        for m in METRICS:
            mean, std = lt.mean_std(values(name, m))
            entry[m] = {
                "mean": mean,
                "std": std,
                "values": values(name, m).tolist(),
            }
            for base in ("ce", "inv_freq"):
                if name != base:
                    entry[m][f"gain_over_{base}"] = lt.paired_gains(
                        values(name, m), values(base, m)
                    )
        summary[name] = entry
    return summary


def select_on_validation(records, names):
    """Per seed, the setting with the best validation balanced accuracy.

    Returns:
        Dict: the chosen setting per seed and the test scores it gives, and
        the test scores of the best single setting chosen in hindsight.
    """
    seeds = sorted({r["seed"] for r in records})
    chosen, test = [], []
    for seed in seeds:
        runs = [r for r in records if r["seed"] == seed]
        best = max(runs, key=lambda r: r["val_balanced_accuracy"])
        chosen.append(best["setting"])
        test.append(best["balanced_accuracy"])
    mean, std = lt.mean_std(test)
    return {
        "seeds": seeds,
        "chosen": chosen,
        "test_balanced_accuracy": {"mean": mean, "std": std, "values": test},
    }


def _label(name, beta, head_prototypes):
    if name == "ce":
        return "CE (beta = 0)"
    if name == "inv_freq":
        return "1/n (beta -> 1)"
    label = f"CB softmax, beta = {beta:g}"
    if np.isclose(beta, (head_prototypes - 1) / head_prototypes):
        label += f" = (N-1)/N, N = {head_prototypes}"
    return label


def results_table(summary, selection, counts, prototypes, num_seeds):
    """Markdown table (percent) and the validation-selection line."""
    lines = [
        "| setting | 1/(1-beta) | balanced acc. | tail recall | "
        "gain over CE: bal. acc. | gain over 1/n: bal. acc. | "
        "val. bal. acc. |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in summary.items():
        beta = entry["beta"]
        size = (
            "1" if beta == 0 else "inf" if beta == 1 else f"{1 / (1 - beta):g}"
        )
        cells = [_label(name, beta, int(prototypes[0])), size]
        cells += [
            lt.format_pm(entry[m]["mean"], entry[m]["std"])
            for m in ("balanced_accuracy", "tail_recall")
        ]
        for base in ("ce", "inv_freq"):
            gain = entry["balanced_accuracy"].get(f"gain_over_{base}")
            cells.append("(baseline)" if gain is None else lt.format_gain(gain))
        cells.append(
            lt.format_pm(
                entry["val_balanced_accuracy"]["mean"],
                entry["val_balanced_accuracy"]["std"],
            )
        )
        lines.append("| " + " | ".join(cells) + " |")
    picked = selection["test_balanced_accuracy"]
    lines += [
        "",
        f"Chosen on the validation split, per seed: "
        f"{', '.join(selection['chosen'])}; test balanced accuracy of the "
        f"chosen setting {lt.format_pm(picked['mean'], picked['std'])}.",
        "",
        f"Percent, mean ± std over {num_seeds} seed(s). Training: n_c = "
        f"{counts.tolist()} images per class, augmented copies of N_c = "
        f"{prototypes.tolist()} distinct images. Test: {TEST_PER_CLASS} "
        f"real images per class (balanced, so accuracy = balanced "
        f"accuracy); validation: {VAL_PER_CLASS} per class. Tail recall: "
        f"the {TAIL_K} rarest classes. Gains are paired by seed (mean ± std "
        "of the per-seed difference, two-sided paired t-test p).",
    ]
    return "\n".join(lines)


def plot_dial(summary, path):
    """Balanced accuracy and tail recall against 1/(1-beta)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    betas = np.array([summary[n]["beta"] for n in names])
    finite = betas < 1
    x = np.where(finite, 1.0 / (1.0 - np.minimum(betas, 0.999999)), np.nan)
    x[~finite] = 10 * np.nanmax(x)  # 1/n drawn one decade to the right
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, title in zip(
        axes,
        ("balanced_accuracy", "tail_recall"),
        (
            "balanced accuracy (balanced test set)",
            f"tail recall ({TAIL_K} rarest classes)",
        ),
    ):
        mean = np.array([summary[n][metric]["mean"] for n in names])
        std = np.array([summary[n][metric]["std"] for n in names], float)
        std = None if np.isnan(std).all() else std
        ax.errorbar(
            x[finite],
            mean[finite],
            yerr=None if std is None else std[finite],
            marker="o",
            capsize=3,
            label="CE (left) and CB softmax",
        )
        ax.errorbar(
            x[~finite],
            mean[~finite],
            yerr=None if std is None else std[~finite],
            marker="s",
            color="k",
            capsize=3,
            linestyle="none",
            label="1/n (beta -> 1)",
        )
        ax.set_xscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(
            ["CE" if b == 0 else "1/n" if b == 1 else f"{b:g}" for b in betas],
            rotation=45,
        )
        ax.set_xlabel("beta (axis: 1 / (1 - beta), the saturation size)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("The beta dial on duplicated digits-LT, mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    data = load_digits_splits()
    counts, prototypes = class_profile(args.n_max)
    names = settings(args.betas)
    print(
        f"duplicated digits-LT: n_c = {counts.tolist()}, N_c = "
        f"{prototypes.tolist()}; {args.epochs} epochs, {args.seeds} "
        f"seed(s); CB weights at beta = {args.betas[-1]:g}: "
        f"{np.round(class_balanced_weights(counts, args.betas[-1]), 3)}"
    )
    records, k, total = [], 0, args.seeds * len(names)
    for seed in range(args.seeds):
        x_train, y_train = duplicated_train_set(
            data["x_pool"], data["y_pool"], counts, prototypes, seed
        )
        for name, beta in names.items():
            k += 1
            record = train_and_score(
                name, beta, args, seed, (x_train, y_train, counts), data
            )
            records.append(record)
            print(
                f"  [{k:2d}/{total}] seed {seed} {name:<9} "
                f"bal.acc {record['balanced_accuracy']:6.1%}  "
                f"tail {record['tail_recall']:6.1%}  "
                f"val {record['val_balanced_accuracy']:6.1%}  "
                f"({record['train_seconds']:.1f} s)",
                flush=True,
            )

    summary = summarize(records, names)
    selection = select_on_validation(records, names)
    table = results_table(summary, selection, counts, prototypes, args.seeds)
    print()
    print(table)
    (out / "results.md").write_text(table + "\n")
    lt.write_json(
        out / "results.json",
        {
            "settings": {
                k: str(v) if isinstance(v, Path) else v
                for k, v in vars(args).items()
            },
            "train_counts": counts.tolist(),
            "prototypes": prototypes.tolist(),
            "summary": summary,
            "selection": selection,
            "runs": records,
        },
    )
    lt.write_csv(
        out / "results.csv",
        [
            {k: v for k, v in r.items() if k != "per_class_recall"}
            for r in records
        ],
    )
    plot_dial(summary, out / "beta_dial.png")
    print(f"outputs in {out}/; total time {time.perf_counter() - start:.0f} s")
    return summary


if __name__ == "__main__":
    main()
