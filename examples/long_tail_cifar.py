"""The paper's CIFAR-LT benchmark: a ResNet-32 trained with a CB loss.

Builds CIFAR-10-LT or CIFAR-100-LT from `tensorflow-datasets` as Cui et
al. (2019) do: class i keeps `int(n_max * (1 / imbalance) ** (i / (C - 1)))`
random training images (n_max = 5000 or 500; imbalance 10, 50 or 100) and
the full, balanced test set is used. It trains the paper's network and
schedule: ResNet-32 (v1, option-A shortcuts), SGD with momentum 0.9, batch
128, weight decay 2e-4, learning rate 0.1 with a linear warm-up over the
first 5 epochs, multiplied by 0.01 at epoch 160 and again at epoch 180, 200
epochs, pad-4 random crops and horizontal flips. `--loss` picks the softmax
cross-entropy baseline or a class-balanced loss; the CB losses are built
without counts and `ClassCounter` counts a labels-only view of the training
set when `fit` starts (no image is decoded for counting).

Usage (tensorflow-datasets downloads CIFAR on first use; 200 epochs of a
ResNet-32 want a GPU):

    python examples/long_tail_cifar.py --dataset cifar10 --imbalance 100 \\
        --loss cb_focal --beta 0.9999 --gamma 1.0
    python examples/long_tail_cifar.py --dataset cifar10 --imbalance 100 \\
        --loss softmax

`--run-eagerly` runs the steps eagerly instead of compiling them: for a
smoke run of a few steps (e.g. `--epochs 1 --depth 8`), where tracing the
network is most of the time.

Expected top-1 test error (%), the paper's Table 2 (softmax -> best CB):

    CIFAR-10-LT,  imbalance 100: 29.64 -> 25.43 (cb_focal, 0.9999, gamma 1)
                  imbalance  50: 25.19 -> 20.73 (cb_focal, 0.9999, gamma 2)
                  imbalance  10: 13.61 -> 12.51 (cb_sigmoid, 0.9999)
    CIFAR-100-LT, imbalance 100: 61.68 -> 60.40 (cb_focal, 0.9, gamma 1)
                  imbalance  50: 56.15 -> 54.68 (cb_sigmoid, 0.99)
                  imbalance  10: 44.29 -> 42.01 (cb_focal, 0.999, gamma 0.5)

(loss, beta, gamma of the best CB variant). The paper reports one run per
setting. Writes `results.json` (error, balanced accuracy, per-class recall,
class sizes, settings), `history.csv` and `model.keras` to `--output-dir`.

References:
    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples",
    CVPR 2019, arXiv:1901.05555.
    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
    arXiv:1512.03385 (ResNet-32 for CIFAR, Section 4.2).
"""

import argparse
import dataclasses
import os
import time
from pathlib import Path

# Silences TensorFlow's C++ start-up logging; must precede its import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _long_tail as lt  # noqa: E402  (next to this file)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cbloss import CBFocalLoss  # noqa: E402
from keras_cbloss import CBSigmoidLoss  # noqa: E402
from keras_cbloss import CBSoftmaxLoss  # noqa: E402
from keras_cbloss import ClassCounter  # noqa: E402
from keras_cbloss import prior_bias_initializer  # noqa: E402

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
LOSSES = ("softmax", "cb_softmax", "cb_sigmoid", "cb_focal")
EVAL_BATCH_SIZE = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--dataset", choices=sorted(NUM_CLASSES), default="cifar10"
    )
    parser.add_argument(
        "--imbalance",
        type=float,
        default=100.0,
        help="n_max / n_min; the paper uses 10, 50, 100 (and 20, 200)",
    )
    parser.add_argument(
        "--loss",
        choices=LOSSES,
        default="cb_focal",
        help="softmax is the plain cross-entropy baseline",
    )
    parser.add_argument(
        "--beta",
        type=float,
        default=0.9999,
        help="beta of the CB losses (CIFAR-100: try 0.9 to 0.999)",
    )
    parser.add_argument(
        "--gamma", type=float, default=1.0, help="gamma of the focal loss"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=200,
        help="the schedule scales with it: warm-up "
        "min(5, epochs), decays at 80%% and 90%%",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.1,
        help="peak learning rate, for batch 128",
    )
    parser.add_argument("--weight-decay", type=float, default=2e-4)
    parser.add_argument(
        "--depth",
        type=int,
        default=32,
        help="ResNet depth 6n+2 (20, 32, 44, 56, 110)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the subsample, initial weights and batch order",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=10,
        help="evaluate on the test set every N epochs",
    )
    parser.add_argument(
        "--data-dir", default=None, help="tensorflow-datasets data directory"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="default: outputs/long_tail_cifar/<run name>",
    )
    lt.add_run_eagerly_argument(parser)
    args = parser.parse_args(argv)
    if args.imbalance < 1:
        parser.error("--imbalance must be >= 1")
    if (args.depth - 2) % 6 or args.depth < 8:
        parser.error("--depth must be 6n + 2 with n >= 1 (e.g. 32)")
    if args.epochs < 1 or args.batch_size < 1 or args.eval_every < 1:
        parser.error("--epochs, --batch-size and --eval-every must be >= 1")
    try:  # the losses' own checks, before any training starts
        CBFocalLoss(None, args.beta, args.gamma)
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    if args.output_dir is None:
        name = f"{args.dataset}_lt{args.imbalance:g}_{args.loss}"
        if args.loss != "softmax":
            name += f"_beta{args.beta:g}"
        if args.loss == "cb_focal":
            name += f"_gamma{args.gamma:g}"
        args.output_dir = Path("outputs/long_tail_cifar") / name
    return args


# --------------------------------------------------------------------------
# Data.
# --------------------------------------------------------------------------


@dataclasses.dataclass
class LongTailData:
    """The pipelines of one CIFAR-LT run.

    Attributes:
        train: Shuffled, augmented, batched `(image, label)` pipeline.
        train_labels: Labels-only pipeline of the same subsample, for
            counting without decoding images.
        test: Batched `(image, label)` pipeline of the full test set.
        counts: NumPy int64 `[C]`, the class sizes of the subsample.
        num_classes: Int `C`.
    """

    train: tf.data.Dataset
    train_labels: tf.data.Dataset
    test: tf.data.Dataset
    counts: np.ndarray
    num_classes: int


def _load(dataset, split, data_dir, **kwargs):
    import tensorflow_datasets as tfds

    # shuffle_files=False: a fixed record order, so that indices chosen on
    # the labels-only pass pick the same images on the decoding pass.
    return tfds.load(
        dataset,
        split=split,
        as_supervised=True,
        data_dir=data_dir,
        shuffle_files=False,
        **kwargs,
    )


def _train_labels(dataset, data_dir):
    """All training labels, read without decoding a single image."""
    import tensorflow_datasets as tfds

    ds = _load(
        dataset,
        "train",
        data_dir,
        decoders={"image": tfds.decode.SkipDecoding()},
    )
    ds = ds.map(lambda image, label: label).batch(8192)
    return np.concatenate(list(ds.as_numpy_iterator())).astype(np.int64)


def _augment(image, label):
    # The paper's augmentation: pad 4 pixels, random 32x32 crop, flip.
    image = tf.image.resize_with_crop_or_pad(image, 40, 40)
    image = tf.image.random_crop(image, [32, 32, 3])
    image = tf.image.random_flip_left_right(image)
    return tf.cast(image, tf.float32), label


def _to_float(image, label):
    return tf.cast(image, tf.float32), label


def build_datasets(
    dataset, imbalance, *, batch_size=128, seed=0, data_dir=None
):
    """CIFAR-LT training pipeline and the full CIFAR test pipeline.

    Class c keeps `long_tail_counts(n_max, C, imbalance)[c]` images drawn
    at random (seeded) from its training images; `n_max` is the smallest
    class's size in the full training split (5000 for CIFAR-10, 500 for
    CIFAR-100, where every class has that many).

    Args:
        dataset: `"cifar10"` or `"cifar100"`.
        imbalance: Float >= 1, `n_max / n_min`.
        batch_size: Int, training batch size. Defaults to 128.
        seed: Int, seed of the subsample and of the shuffling. Defaults
            to 0.
        data_dir: tensorflow-datasets data directory, or `None` for its
            default.

    Returns:
        A `LongTailData`.

    Raises:
        RuntimeError: If the decoding pass does not yield exactly the
            chosen images' labels (the record order changed between
            passes).
    """
    num_classes = NUM_CLASSES[dataset]
    labels = _train_labels(dataset, data_dir)
    n_max = int(np.bincount(labels, minlength=num_classes).min())
    counts = lt.long_tail_counts(n_max, num_classes, imbalance)
    keep_idx = lt.long_tail_indices(labels, counts, np.random.default_rng(seed))
    keep = np.zeros(len(labels), bool)
    keep[keep_idx] = True
    keep = tf.constant(keep)

    train = _load(dataset, "train", data_dir).enumerate()
    train = train.filter(lambda i, example: tf.gather(keep, i))
    # The subsample is small (12,406 images for CIFAR-10-LT at 100, 37 MB):
    # decode once, then serve from memory.
    train = train.map(lambda i, example: example).cache()
    # A known length lets fit() end epochs (and the per-step schedule) on
    # time; filter() alone leaves it unknown.
    train = train.apply(tf.data.experimental.assert_cardinality(len(keep_idx)))
    seen = np.concatenate(
        list(
            train.map(lambda image, label: label)
            .batch(8192)
            .as_numpy_iterator()
        )
    )
    if not np.array_equal(seen, labels[keep_idx]):
        raise RuntimeError(
            "The decoded training records do not match the labels-only "
            "pass; tensorflow-datasets returned them in a different order."
        )
    train = (
        train.shuffle(len(keep_idx), seed=seed, reshuffle_each_iteration=True)
        .map(_augment, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    train_labels = tf.data.Dataset.from_tensor_slices(labels[keep_idx])
    test = (
        _load(dataset, "test", data_dir)
        .map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(EVAL_BATCH_SIZE)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    return LongTailData(
        train, train_labels.batch(8192), test, counts, num_classes
    )


# --------------------------------------------------------------------------
# Model.
# --------------------------------------------------------------------------


def _conv(x, filters, strides, regularizer):
    if strides > 1:
        # Explicit symmetric padding, as the official code does (Keras'
        # "same" pads a stride-2 convolution on one side only).
        x = keras.layers.ZeroPadding2D(1)(x)
    return keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="valid" if strides > 1 else "same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
    )(x)


def _batch_norm(x, regularizer):
    return keras.layers.BatchNormalization(
        momentum=0.9,
        epsilon=1e-5,
        beta_regularizer=regularizer,
        gamma_regularizer=regularizer,
    )(x)


def _residual_block(x, filters, strides, regularizer):
    """ResNet v1 basic block with the parameter-free (option A) shortcut."""
    in_filters = x.shape[-1]
    shortcut = x
    x = _conv(x, filters, strides, regularizer)
    x = keras.layers.ReLU()(_batch_norm(x, regularizer))
    x = _batch_norm(_conv(x, filters, 1, regularizer), regularizer)
    if in_filters != filters:
        shortcut = keras.layers.AveragePooling2D(
            strides, strides, padding="same"
        )(shortcut)
        # Zero channels on both sides. Built-in layers only (no Lambda), so
        # that the saved model loads anywhere: view [H, W, C] as a volume
        # [H, W, C, 1] and pad its third axis.
        pad = (filters - in_filters) // 2
        h, w = shortcut.shape[1:3]
        shortcut = keras.layers.Reshape((h, w, in_filters, 1))(shortcut)
        shortcut = keras.layers.ZeroPadding3D(((0, 0), (0, 0), (pad, pad)))(
            shortcut
        )
        shortcut = keras.layers.Reshape((h, w, filters))(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([x, shortcut]))


def resnet_cifar(num_classes, depth=32, weight_decay=2e-4, loss="softmax"):
    """ResNet-`depth` for 32x32 images (He et al., 2016), v1, logits out.

    Weight decay follows the official code: `weight_decay * sum(v**2) / 2`
    over every trainable variable (kernels and batch-norm parameters),
    except the output bias of sigmoid and focal heads, which starts at the
    prior `-log(C - 1)` and is left free.

    Args:
        num_classes: Int, the number of outputs.
        depth: Int `6n + 2`. Defaults to 32.
        weight_decay: Float. Defaults to `2e-4`.
        loss: One of `LOSSES`; sigmoid and focal heads get the prior bias.

    Returns:
        A functional `keras.Model` from uint8-range images `[B, 32, 32, 3]`
        to logits `[B, num_classes]`.
    """
    # Keras' L2(l) adds l * sum(v**2); the paper's decay is wd * sum(v**2)/2.
    regularizer = keras.regularizers.L2(weight_decay / 2)
    sigmoid_head = loss in ("cb_sigmoid", "cb_focal")
    blocks = (depth - 2) // 6
    inputs = keras.Input((32, 32, 3), name="image")
    # The official input scaling, x / 128 - 1, kept inside the model so
    # that the saved and exported models take raw pixel values.
    x = keras.layers.Rescaling(1 / 128, offset=-1)(inputs)
    x = _conv(x, 16, 1, regularizer)
    x = keras.layers.ReLU()(_batch_norm(x, regularizer))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _residual_block(x, filters, strides, regularizer)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(
        num_classes,
        kernel_regularizer=regularizer,
        bias_regularizer=None if sigmoid_head else regularizer,
        bias_initializer=(
            prior_bias_initializer(num_classes) if sigmoid_head else "zeros"
        ),
        name="logits",
    )(x)
    return keras.Model(inputs, logits, name=f"resnet{depth}")


def make_loss(name, beta, gamma):
    """The training loss; CB losses wait for `ClassCounter`'s counts."""
    if name == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if name == "cb_softmax":
        return CBSoftmaxLoss(None, beta, from_logits=True)
    if name == "cb_sigmoid":
        return CBSigmoidLoss(None, beta, from_logits=True)
    if name == "cb_focal":
        return CBFocalLoss(None, beta, gamma, from_logits=True)
    raise ValueError(f"Unknown loss {name!r}; expected one of {LOSSES}")


class PaperSchedule(keras.callbacks.Callback):
    """The paper's learning rate, set before every training step.

    Formula:

    ```
    lr(t) = base * t / warmup                    for t < warmup
    lr(t) = base * multipliers[k]                after boundaries[k]
    ```

    with `t` the fractional epoch (the official code warms up per step).
    A callback rather than a `LearningRateSchedule`, so that the saved
    model holds a plain float learning rate and loads without this file.

    Args:
        base_lr: Float, the peak learning rate.
        steps_per_epoch: Int, training steps per epoch.
        warmup_epochs: Float, length of the linear warm-up.
        boundaries: Epochs at which the multipliers start.
        multipliers: Factors of `base_lr` from each boundary on.
    """

    def __init__(
        self, base_lr, steps_per_epoch, warmup_epochs, boundaries, multipliers
    ):
        super().__init__()
        self.base_lr = base_lr
        self.steps_per_epoch = steps_per_epoch
        self.warmup_epochs = warmup_epochs
        self.boundaries = list(boundaries)
        self.multipliers = list(multipliers)
        self._epoch = 0

    def learning_rate(self, epoch):
        """Learning rate at fractional epoch `epoch`."""
        if epoch < self.warmup_epochs:
            return self.base_lr * epoch / self.warmup_epochs
        lr = self.base_lr
        for boundary, multiplier in zip(self.boundaries, self.multipliers):
            if epoch >= boundary:
                lr = self.base_lr * multiplier
        return lr

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        t = self._epoch + batch / self.steps_per_epoch
        self.model.optimizer.learning_rate = self.learning_rate(t)

    def on_epoch_end(self, epoch, logs=None):
        # For the history and CSVLogger (which runs after this callback).
        if logs is not None:
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )


def paper_schedule(epochs, base_lr, steps_per_epoch):
    """The official schedule (warm-up 5, x0.01 at 160 and 180 of 200),
    scaled to `epochs`."""
    return PaperSchedule(
        base_lr,
        steps_per_epoch,
        warmup_epochs=min(5, epochs),
        boundaries=[round(0.8 * epochs), round(0.9 * epochs)],
        multipliers=[0.01, 0.0001],
    )


# --------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    data = build_datasets(
        args.dataset,
        args.imbalance,
        batch_size=args.batch_size,
        seed=args.seed,
        data_dir=args.data_dir,
    )
    counts = data.counts
    steps_per_epoch = int(np.ceil(counts.sum() / args.batch_size))
    print(
        f"{args.dataset}-LT, imbalance {args.imbalance:g}: "
        f"{int(counts.sum())} training images, class sizes "
        f"{counts[0]} ... {counts[-1]}; loss {args.loss}"
        + ("" if args.loss == "softmax" else f", beta {args.beta}")
        + (f", gamma {args.gamma}" if args.loss == "cb_focal" else "")
    )

    model = resnet_cifar(
        data.num_classes, args.depth, args.weight_decay, args.loss
    )
    model.compile(
        optimizer=keras.optimizers.SGD(args.learning_rate, momentum=0.9),
        loss=make_loss(args.loss, args.beta, args.gamma),
        metrics=["accuracy"],
        run_eagerly=args.run_eagerly,
    )
    callbacks = [
        paper_schedule(
            args.epochs,
            args.learning_rate * args.batch_size / 128,
            steps_per_epoch,
        ),
        keras.callbacks.CSVLogger(str(out / "history.csv")),
    ]
    if args.loss != "softmax":
        # Counts the labels-only view: no image is decoded for counting.
        callbacks.insert(0, ClassCounter(data.train_labels, data.num_classes))
    # shuffle=False: the pipeline shuffles (fit cannot shuffle a Dataset).
    model.fit(
        data.train,
        epochs=args.epochs,
        callbacks=callbacks,
        validation_data=data.test,
        validation_freq=args.eval_every,
        shuffle=False,
        verbose=2,
    )

    y_true = np.concatenate([y for _, y in data.test.as_numpy_iterator()])
    y_pred = np.argmax(model.predict(data.test, verbose=0), axis=-1)
    recall = lt.per_class_recall(y_true, y_pred, data.num_classes)
    error = 1.0 - float(np.mean(y_pred == y_true))
    model.save(out / "model.keras")
    results = {
        "settings": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
        },
        "train_counts": counts,
        "test_size": len(y_true),
        "top1_error": error,
        "balanced_accuracy": float(np.nanmean(recall)),
        "per_class_recall": recall,
        "seconds": time.perf_counter() - start,
    }
    lt.write_json(out / "results.json", results)
    print(
        f"top-1 test error {error:.2%} (balanced accuracy "
        f"{results['balanced_accuracy']:.2%}); outputs in {out}/"
    )
    return results


if __name__ == "__main__":
    main()
