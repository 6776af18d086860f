"""A one-unit binary head on imbalanced tabular data (breast cancer, 1:20).

The most common imbalanced task is binary: a `Dense(1)` head and 0/1
labels. This example takes scikit-learn's bundled Wisconsin breast-cancer
data (569 tumours, 30 features; no download), makes malignant the positive
class and keeps one malignant tumour per 20 benign ones in the training set
(about 15 positives), and trains the same small network with:

- `bce`: Keras' `BinaryCrossentropy`, the baseline;
- `cb_sigmoid`: `CBSigmoidLoss([n_neg, n_pos], beta)`;
- `cb_focal`: `CBFocalLoss([n_neg, n_pos], beta, gamma)`;

both class-balanced losses built without counts: `ClassCounter` counts the
0/1 labels as the two classes {0: negative, 1: positive} when `fit` starts.
Runs with the same seed share the split, the initial weights and the batch
order (paired seeds). The score is the balanced accuracy (mean of the two
recalls) on a balanced test split (50 + 50 tumours, threshold p = 0.5), and
the recall of the malignant class.

Usage:

    python examples/binary_breast_cancer.py              # ~1 min on 2 cores
    python examples/binary_breast_cancer.py --seeds 1 --epochs 2   # smoke

`--run-eagerly` runs the steps eagerly instead of compiling them: for a
smoke run of a few steps, where tracing is most of the time.

Prints a table of mean ± std over seeds and the paired gains over `bce`
(mean ± std of per-seed differences, paired t-test p), and writes it with
every number to `--output-dir` (default `outputs/binary_breast_cancer/`).
"""

import argparse
import os

import _long_tail as lt
import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import balanced_accuracy_score
from sklearn.metrics import recall_score

from keras_cbloss import CBFocalLoss
from keras_cbloss import CBSigmoidLoss
from keras_cbloss import ClassCounter

LOSSES = ("bce", "cb_sigmoid", "cb_focal")
TEST_PER_CLASS = 50


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument(
        "--imbalance",
        type=float,
        default=20.0,
        help="benign training tumours per malignant one",
    )
    parser.add_argument("--beta", type=float, default=0.999)
    parser.add_argument("--gamma", type=float, default=2.0)
    parser.add_argument("--output-dir", default="outputs/binary_breast_cancer")
    lt.add_run_eagerly_argument(parser)
    return parser.parse_args(argv)


def split(seed, imbalance):
    """Balanced test split and a 1:imbalance training set, standardised."""
    x, benign = load_breast_cancer(return_X_y=True)
    y = 1 - benign  # positive class: malignant
    rng = np.random.default_rng(seed)
    test, train = [], []
    for label in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == label))
        test.append(idx[:TEST_PER_CLASS])
        train.append(idx[TEST_PER_CLASS:])
    n_pos = max(1, int(round(len(train[0]) / imbalance)))
    train = np.concatenate([train[0], train[1][:n_pos]])
    test = np.concatenate(test)
    mean, std = x[train].mean(0), x[train].std(0) + 1e-12
    scale = lambda a: ((a - mean) / std).astype("float32")  # noqa: E731
    return (scale(x[train]), y[train]), (scale(x[test]), y[test])


def make_loss(name, args):
    if name == "bce":
        return keras.losses.BinaryCrossentropy(from_logits=True)
    if name == "cb_sigmoid":
        return CBSigmoidLoss(beta=args.beta, from_logits=True)
    return CBFocalLoss(beta=args.beta, gamma=args.gamma, from_logits=True)


def train_and_score(name, args, seed, train, test):
    keras.utils.set_random_seed(seed)
    x, y = train
    ds = (
        tf.data.Dataset.from_tensor_slices((x, y.astype("float32")))
        .shuffle(len(y), seed=seed)
        .batch(32)
    )
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1),  # one logit: p(malignant) = sigmoid(z)
        ]
    )
    loss = make_loss(name, args)
    model.compile(
        keras.optimizers.Adam(1e-2), loss=loss, run_eagerly=args.run_eagerly
    )
    callbacks = [] if name == "bce" else [ClassCounter(ds, verbose=0)]
    model.fit(
        ds, epochs=args.epochs, callbacks=callbacks, verbose=0, shuffle=False
    )
    logits = keras.ops.convert_to_numpy(model(test[0], training=False))[:, 0]
    predicted = (logits > 0).astype(int)
    return {
        "loss": name,
        "seed": seed,
        "balanced_accuracy": balanced_accuracy_score(test[1], predicted),
        "malignant_recall": recall_score(test[1], predicted),
        "counts": getattr(loss, "class_counts", None),
    }


def labels(args):
    """The loss names as the table shows them."""
    return {
        "bce": "`BinaryCrossentropy`",
        "cb_sigmoid": f"`CBSigmoidLoss`, beta {args.beta:g}",
        "cb_focal": f"`CBFocalLoss`, beta {args.beta:g}, gamma {args.gamma:g}",
    }


def table(records, seeds, args):
    by = {n: [r for r in records if r["loss"] == n] for n in LOSSES}
    names = labels(args)
    lines = [
        "| loss | balanced acc. | malignant recall | gain: bal. acc. "
        "| gain: malignant recall |",
        "|---|---|---|---|---|",
    ]
    for name in LOSSES:
        cells = [names[name]]
        for key in ("balanced_accuracy", "malignant_recall"):
            cells.append(lt.format_pm(*lt.mean_std([r[key] for r in by[name]])))
        for key in ("balanced_accuracy", "malignant_recall"):
            if name == "bce":
                cells.append("(baseline)")
                continue
            g = lt.paired_gains(
                [r[key] for r in by[name]], [r[key] for r in by["bce"]]
            )
            p = "" if np.isnan(g["p"]) else f" (p={g['p']:.2g})"
            cells.append(
                lt.format_pm(g["mean"], g["std"], signed=True)
                + f"{p}, {g['wins']}/{seeds} seeds"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    records = []
    for seed in range(args.seeds):
        train, test = split(seed, args.imbalance)
        for name in LOSSES:
            records.append(train_and_score(name, args, seed, train, test))
    counts = records[-1]["counts"]
    text = (
        f"Training counts [negative, positive] of the last seed: "
        f"{counts}; beta={args.beta}, gamma={args.gamma}, "
        f"{args.seeds} seeds, {args.epochs} epochs\n\n"
        + table(records, args.seeds, args)
    )
    print(text)
    with open(os.path.join(args.output_dir, "results.md"), "w") as f:
        f.write(text + "\n")
    lt.write_json(
        os.path.join(args.output_dir, "results.json"),
        {"settings": vars(args), "runs": records},
    )
    return records


if __name__ == "__main__":
    main()
