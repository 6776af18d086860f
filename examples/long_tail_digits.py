"""What the class-balanced losses buy on real long-tailed data (digits-LT).

Builds a long-tailed training set from scikit-learn's bundled 8x8 digit
images (no download) with the paper's exponential profile, and trains the
same small network with eight losses, paired by seed:

- `ce`: softmax cross-entropy, the baseline;
- `ce_class_weight`: cross-entropy with `fit(class_weight=...)` at inverse
  class frequency (the usual quick fix), scaled to sum to C like the CB
  weights;
- `cb_softmax`, `cb_sigmoid`, `cb_focal`: the class-balanced losses of
  keras_cbloss, built without counts; `ClassCounter` counts the training
  labels (a labels-only `tf.data` view) when `fit` starts. Sigmoid and
  focal heads start from the prior bias (`prior_bias_initializer`);
- `ce_drw`, `cb_focal_drw`: deferred re-weighting (Cao et al., 2019) with
  `DeferredReweighting`: CB softmax and CB focal with beta = 0 (the plain
  loss) until 80% of the epochs (`--drw-fraction`, Cao et al.'s 160 of
  200), then the same `--beta` as the CB losses. Before the switch `ce_drw`
  is plain cross-entropy, and with the same seed it follows the `ce` run;
- `logit_adjusted`: `LogitAdjustedLoss` with tau = 1 (Menon et al., 2021;
  Ren et al.'s balanced softmax), counts from `ClassCounter`; predictions
  are the argmax of the model's own logits, as the paper prescribes.

Runs with the same seed share the training subsample, the initial weights
and the batch order, so the per-seed difference to `ce` (the "paired gain")
measures the loss and not the luck of the draw. Scores are on a balanced
test split (50 images per class, fixed): balanced accuracy (the mean of
per-class recall; on this balanced split it equals plain accuracy), the
mean recall of the 3 rarest training classes, and the accuracy at training
frequencies (per-class recall weighted by the training class sizes: what a
test set as long-tailed as the training set would give). Balanced accuracy
and the many/medium/few-shot accuracies (Liu et al., 2019: more than 100,
20 to 100, fewer than 20 training images) come from the package's metrics
`BalancedAccuracy` and `ShotAccuracy`; with at most 124 images per class
the many-shot group is digit 0 alone, medium-shot digits 1 to 3 and
few-shot digits 4 to 9.

Usage:

    python examples/long_tail_digits.py     # 136 s on a 2-core CPU machine
    python examples/long_tail_digits.py --seeds 1 --epochs 5   # smoke run

`--run-eagerly` runs the steps eagerly instead of compiling them: for a
smoke run of a few steps, where tracing every run's model is most of the
time (the test suite runs `--seeds 2 --epochs 2 --batch-size 512
--run-eagerly`).

Writes to `--output-dir` (default `outputs/long_tail_digits/`):
`results.md` (the table), `results.json` (all numbers and settings),
`results.csv` (one row per run), `per_class_recall.png`,
`class_weights.png`, `best_model.keras` and `saved_model/`. The run ends
with a deployment round trip: the best CB model is saved to `.keras`,
loaded back, its test predictions are checked to be identical, and
`model.export()` writes a serving SavedModel that is loaded and checked.

Choice of beta: with `--rho 100` the head class has 124 images and the
tail one; `beta = 0.999` or `0.9999` makes `1 / (1 - beta)` (1000 or 10000)
far larger than any class, where `E(n) ~ n` and the CB weights equal
inverse frequency. The default `beta = 0.99` puts the saturation size
`1 / (1 - beta) = 100` at the head class's size, where the paper's idea (a
class's new images increasingly overlap the ones it has) can act.

References:
    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
    CVPR 2019, arXiv:1901.05555.
    Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware
    Margin Loss", NeurIPS 2019, arXiv:1906.07413 (deferred re-weighting).
    Menon et al., "Long-tail learning via logit adjustment", ICLR 2021,
    arXiv:2007.07314.
    Liu et al., "Large-Scale Long-Tailed Recognition in an Open World",
    CVPR 2019, arXiv:1904.05160 (many/medium/few-shot accuracy).
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

from keras_cbloss import BalancedAccuracy  # noqa: E402
from keras_cbloss import CBFocalLoss  # noqa: E402
from keras_cbloss import CBSigmoidLoss  # noqa: E402
from keras_cbloss import CBSoftmaxLoss  # noqa: E402
from keras_cbloss import ClassCounter  # noqa: E402
from keras_cbloss import DeferredReweighting  # noqa: E402
from keras_cbloss import LogitAdjustedLoss  # noqa: E402
from keras_cbloss import ShotAccuracy  # noqa: E402
from keras_cbloss import count_classes  # noqa: E402
from keras_cbloss import prior_bias_initializer  # noqa: E402

NUM_CLASSES = 10
TEST_PER_CLASS = 50
SPLIT_SEED = 0  # the balanced test split is the same for every seed
TAIL_K = 3
LOSSES = {
    "ce": "softmax CE",
    "ce_class_weight": "CE + class_weight (1/n)",
    "cb_softmax": "CB softmax",
    "cb_sigmoid": "CB sigmoid",
    "cb_focal": "CB focal",
    "ce_drw": "CE + DRW",
    "cb_focal_drw": "CB focal + DRW",
    "logit_adjusted": "logit-adjusted (tau=1)",
}
CB_LOSSES = ("cb_softmax", "cb_sigmoid", "cb_focal")
# Deferred re-weighting runs and the run weighted from the first epoch with
# the same loss and beta: the pair isolates the deferral.
DEFERRED = {"ce_drw": "cb_softmax", "cb_focal_drw": "cb_focal"}
# The losses of keras_cbloss: ClassCounter gives them their counts.
PACKAGE_LOSSES = CB_LOSSES + tuple(DEFERRED) + ("logit_adjusted",)
SHOTS = ("many", "medium", "few")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    lt.add_run_arguments(
        parser, epochs=100, batch_size=32, output_dir="outputs/long_tail_digits"
    )
    parser.add_argument(
        "--rho",
        type=float,
        default=100.0,
        help="imbalance n_max / n_min of the training set",
    )
    parser.add_argument(
        "--beta", type=float, default=0.99, help="beta of the CB losses"
    )
    parser.add_argument(
        "--gamma", type=float, default=1.0, help="gamma of the CB focal loss"
    )
    parser.add_argument(
        "--tau", type=float, default=1.0, help="tau of the logit-adjusted loss"
    )
    parser.add_argument(
        "--drw-fraction",
        type=float,
        default=0.8,
        help="deferred re-weighting starts after this "
        "fraction of the epochs (Cao et al.: 160 of 200)",
    )
    args = parser.parse_args(argv)
    lt.check_run_arguments(parser, args)
    if not 0.0 <= args.drw_fraction < 1.0:
        parser.error("--drw-fraction must be in [0, 1)")
    try:  # the losses' own checks, before any training starts
        CBFocalLoss(None, args.beta, args.gamma)
        LogitAdjustedLoss(None, args.tau)
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    return args


# --------------------------------------------------------------------------
# Data.
# --------------------------------------------------------------------------


def load_digits_split():
    """Balanced test split and the pool the training subsamples come from.

    Returns:
        `(x_test, y_test, x_pool, y_pool)`; images are flattened 8x8 grey
        levels scaled to [0, 1], labels int32.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    test, pool = lt.balanced_split(
        y, TEST_PER_CLASS, np.random.default_rng(SPLIT_SEED)
    )
    return x[test], y[test], x[pool], y[pool]


def long_tail_train_set(x_pool, y_pool, rho, seed):
    """A new long-tailed subsample of the pool for `seed`.

    `n_max` is the smallest class in the pool (124 images), so that every
    class can supply its share whatever its rank; class 0 is the head.
    """
    n_max = int(np.bincount(y_pool, minlength=NUM_CLASSES).min())
    counts = lt.long_tail_counts(n_max, NUM_CLASSES, rho)
    # [seed, 1] keeps these streams apart from the split's.
    idx = lt.long_tail_indices(y_pool, counts, np.random.default_rng([seed, 1]))
    return x_pool[idx], y_pool[idx], counts


def make_train_dataset(x, y, batch_size, seed):
    """Shuffled, batched, prefetched `tf.data` pipeline of `(x, y)`."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------
# Model and losses.
# --------------------------------------------------------------------------


def build_model(loss_name):
    """A small MLP that outputs logits.

    All losses take logits (`from_logits=True`, the log-space path). The
    sigmoid and focal heads start every class at p = 1/C instead of 0.5, so
    that the C - 1 negative terms per image do not dominate the first steps.
    """
    if loss_name in ("cb_sigmoid", "cb_focal", "cb_focal_drw"):
        bias_initializer = prior_bias_initializer(NUM_CLASSES)
    else:
        bias_initializer = "zeros"
    inputs = keras.Input((64,), name="pixels")
    x = keras.layers.Dense(128, activation="relu")(inputs)
    x = keras.layers.Dropout(0.2)(x)
    logits = keras.layers.Dense(
        NUM_CLASSES, bias_initializer=bias_initializer, name="logits"
    )(x)
    return keras.Model(inputs, logits, name=f"digits_{loss_name}")


def make_loss(loss_name, args):
    """The loss of a run; the package's losses get their counts from
    `ClassCounter`, and the DRW runs their beta from `DeferredReweighting`."""
    if loss_name in ("ce", "ce_class_weight"):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if loss_name in ("cb_softmax", "ce_drw"):
        return CBSoftmaxLoss(None, args.beta, from_logits=True)
    if loss_name == "cb_sigmoid":
        return CBSigmoidLoss(None, args.beta, from_logits=True)
    if loss_name in ("cb_focal", "cb_focal_drw"):
        return CBFocalLoss(None, args.beta, args.gamma, from_logits=True)
    if loss_name == "logit_adjusted":
        return LogitAdjustedLoss(None, args.tau, from_logits=True)
    raise ValueError(f"Unknown loss {loss_name!r}")


def drw_start_epoch(epochs, fraction):
    """The 0-based epoch where deferred re-weighting starts: the first one
    after `fraction` of the budget (80 of 100 for 0.8, as 160 of 200)."""
    return int(fraction * epochs)


def training_callbacks(loss_name, args, labels_ds):
    """`ClassCounter` for the package's losses, plus DRW for the DRW runs."""
    callbacks = []
    if loss_name in PACKAGE_LOSSES:
        callbacks.append(ClassCounter(labels_ds, NUM_CLASSES, verbose=0))
    if loss_name in DEFERRED:
        callbacks.append(
            DeferredReweighting(
                drw_start_epoch(args.epochs, args.drw_fraction), args.beta
            )
        )
    return callbacks


def inverse_frequency_class_weight(counts):
    """`fit(class_weight=...)` dict at inverse frequency, summing to C.

    Scaled like the CB weights (sum C) so that the two runs differ only in
    the weights' shape, not in the effective learning rate.
    """
    weights = 1.0 / np.asarray(counts, np.float64)
    weights *= len(weights) / weights.sum()
    return {c: float(w) for c, w in enumerate(weights)}


def train_and_score(loss_name, args, seed, train, test):
    """Trains one run and scores it on the balanced test split.

    Returns:
        `(model, record)`; `record` holds the scores, the per-class recall
        and the counts the loss used.
    """
    x_train, y_train, counts = train
    x_test, y_test = test
    # Same seed for every loss: same initial hidden weights, same dropout
    # masks and batch order, so that runs are paired. Before the pipeline is
    # built: its shuffle order depends on the global seed at that point.
    keras.utils.set_random_seed(seed)
    ds = make_train_dataset(x_train, y_train, args.batch_size, seed)
    # Counting reads a labels-only view of the same training labels: a pass
    # over `ds` itself would advance its reshuffling, and the weighted runs
    # would no longer see the baseline's batch order.
    labels_ds = tf.data.Dataset.from_tensor_slices(y_train).batch(1024)
    model = build_model(loss_name)
    loss = make_loss(loss_name, args)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=loss,
        run_eagerly=args.run_eagerly,
    )
    callbacks = training_callbacks(loss_name, args, labels_ds)
    class_weight = None
    if loss_name == "ce_class_weight":
        # fit() needs the weights up front, so count the pipeline first.
        class_weight = inverse_frequency_class_weight(
            count_classes(labels_ds, NUM_CLASSES, verbose=0)
        )

    start = time.perf_counter()
    # shuffle=False: the pipeline shuffles (fit cannot shuffle a Dataset).
    model.fit(
        ds,
        epochs=args.epochs,
        verbose=0,
        callbacks=callbacks,
        class_weight=class_weight,
        shuffle=False,
    )
    seconds = time.perf_counter() - start

    if loss_name in PACKAGE_LOSSES:
        # The callback must have counted exactly the subsample's profile.
        np.testing.assert_array_equal(loss.class_counts, counts)
    if loss_name in DEFERRED:  # trained to the end: the final beta
        assert loss.beta == args.beta
    record = {"loss": loss_name, "seed": seed}
    record.update(score(model.predict(x_test, verbose=0), y_test, counts))
    record.update({"train_counts": counts.tolist(), "train_seconds": seconds})
    return model, record


def score(logits, y_test, counts):
    """The scores of one run on the balanced test split.

    Balanced and shot accuracy come from the package's metrics; the
    per-class recall (for the tail, the plots and a cross-check) from NumPy.
    """
    y_pred = np.argmax(logits, axis=-1)
    recall = lt.per_class_recall(y_test, y_pred, NUM_CLASSES)
    metrics = [BalancedAccuracy(NUM_CLASSES)] + [
        ShotAccuracy(shot, counts) for shot in SHOTS
    ]
    results = {}
    for metric in metrics:
        metric.update_state(y_test, logits)
        results[metric.name] = float(metric.result())
    # The metric and the NumPy recall must agree (float32 accumulation).
    np.testing.assert_allclose(
        results["balanced_accuracy"], np.mean(recall), atol=1e-6
    )
    results.update(
        {
            "tail_recall": float(
                np.mean(recall[lt.tail_classes(counts, TAIL_K)])
            ),
            "accuracy": float(np.mean(y_pred == y_test)),
            "prior_accuracy": lt.prior_weighted_accuracy(recall, counts),
            "per_class_recall": recall.tolist(),
        }
    )
    return results


# --------------------------------------------------------------------------
# Deployment round trip.
# --------------------------------------------------------------------------


def deployment_round_trip(model, x_test, output_dir):
    """Saves to `.keras`, loads back, compares, and exports a SavedModel.

    Raises:
        AssertionError: If the reloaded or served model predicts
            differently.
    """
    keras_path = output_dir / "best_model.keras"
    model.save(keras_path)
    # keras_cbloss is imported, so its registered losses deserialize
    # without custom_objects.
    loaded = keras.saving.load_model(keras_path)
    before = model.predict(x_test, verbose=0)
    after = loaded.predict(x_test, verbose=0)
    np.testing.assert_array_equal(after, before)
    assert loaded.loss.get_config() == model.loss.get_config()

    export_dir = output_dir / "saved_model"
    model.export(str(export_dir), verbose=False)
    # Keep the loaded object alive: its functions reference its variables.
    reloaded = tf.saved_model.load(str(export_dir))
    served = reloaded.serve(x_test).numpy()
    np.testing.assert_array_equal(served.argmax(-1), before.argmax(-1))
    np.testing.assert_allclose(served, before, rtol=1e-5, atol=1e-5)
    return keras_path, export_dir


# --------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------


def run_all(args, x_test, y_test, x_pool, y_pool):
    """Trains every loss on every seed's subsample, paired by seed.

    Returns:
        `(records, best_models)`: one record per run, and for each of the
        package's losses `(balanced accuracy, seed, model)` of its best run.
    """
    total = args.seeds * len(LOSSES)
    records, best_models = [], {}
    for seed in range(args.seeds):
        train = long_tail_train_set(x_pool, y_pool, args.rho, seed)
        print(
            f"seed {seed}: train class sizes {train[2].tolist()} "
            f"(total {int(train[2].sum())})"
        )
        for name in LOSSES:
            model, record = train_and_score(
                name, args, seed, train, (x_test, y_test)
            )
            records.append(record)
            print(
                f"  [{len(records):2d}/{total}] seed {seed} "
                f"{LOSSES[name]:<24} "
                f"bal.acc {record['balanced_accuracy']:6.1%}  "
                f"tail {record['tail_recall']:6.1%}  "
                f"acc@train-freq {record['prior_accuracy']:6.1%}  "
                f"({record['train_seconds']:.1f} s)",
                flush=True,
            )
            # Keep each package loss's best run for the round trip.
            bal_acc = record["balanced_accuracy"]
            if (
                name in PACKAGE_LOSSES
                and bal_acc > best_models.get(name, (-1,))[0]
            ):
                best_models[name] = (bal_acc, seed, model)
    return records, best_models


def report(args, records):
    """Prints the tables and writes the results and plots (`_report.py`).

    Returns:
        `(summary, best)`: the per-loss summary and the best of the
        package's losses.
    """
    summary = _report.summarize(records, LOSSES, PACKAGE_LOSSES, DEFERRED)
    best = _report.best_loss(summary, PACKAGE_LOSSES)
    counts = records[0]["train_counts"]
    table = _report.results_table(
        summary, PACKAGE_LOSSES, args.seeds, TEST_PER_CLASS, TAIL_K, DEFERRED
    )
    table += "\n\n" + _report.shot_table(summary, counts)
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
            "test_per_class": TEST_PER_CLASS,
            "tail_classes": lt.tail_classes(counts, TAIL_K).tolist(),
            "best_package_loss": best,
            "drw_start_epoch": drw_start_epoch(args.epochs, args.drw_fraction),
            "summary": summary,
            "runs": records,
        },
        records,
    )
    _report.plot_per_class_recall(
        summary, counts, best, out / "per_class_recall.png"
    )
    _report.plot_class_weights(counts, args.beta, out / "class_weights.png")
    return summary, best


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    x_test, y_test, x_pool, y_pool = load_digits_split()
    print(
        f"digits-LT: rho={args.rho:g}, beta={args.beta}, "
        f"gamma={args.gamma}, tau={args.tau}, {args.epochs} epochs (DRW "
        f"from epoch {drw_start_epoch(args.epochs, args.drw_fraction)}), "
        f"{args.seeds} seed(s); test split {TEST_PER_CLASS} per class"
    )
    records, best_models = run_all(args, x_test, y_test, x_pool, y_pool)
    summary, best = report(args, records)

    bal_acc, seed, model = best_models[best]
    keras_path, export_dir = deployment_round_trip(
        model, x_test, args.output_dir
    )
    print(
        f"\nbest keras_cbloss loss: {LOSSES[best]} (seed {seed}, balanced "
        f"accuracy {bal_acc:.1%}); saved to {keras_path}, reloaded with "
        f"identical test predictions; SavedModel exported to {export_dir}"
    )
    print(
        f"outputs in {args.output_dir}/; "
        f"total time {time.perf_counter() - start:.0f} s"
    )
    return summary


if __name__ == "__main__":
    main()
