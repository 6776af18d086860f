"""Keras metrics for long-tailed evaluation.

Plain accuracy on a long-tailed test set is mostly head-class accuracy. The
metrics here average over classes instead: balanced accuracy (the mean
per-class recall), the recall of one class, the many/medium/few-shot
accuracy of Liu et al. (CVPR 2019), which groups classes by how many
training examples they had, and the mean average precision (mAP) that
multi-label long-tail benchmarks (COCO-MLT, VOC-MLT) report.

The three recall-based metrics keep the same state, accumulated over
batches: per-class true-positive and support counts (sample-weighted), as
Keras metric variables with `aggregation="sum"`, so that `tf.distribute` and
JAX data parallelism sum them across replicas. `result()` divides them once,
at the end. With `multi_label=True` every class is its own binary problem
and the state holds each label's true positives/negatives and supports.

Average precision needs every score: `MeanAveragePrecision` keeps the rows
it was given in a fixed-capacity buffer (`max_samples`) and ranks them in
`result()`, with ties grouped as scikit-learn groups them.

Every metric reads its batch through `keras_cbloss._metric_inputs`: the
label forms of the losses (sparse ids, one-hot, multi-hot with unknown
entries, one-unit heads, per-pixel and per-token maps), `ignore_class`,
`sample_weight` and the Keras mask of `y_pred`, as
`keras.metrics.MeanMetricWrapper` honours it.
"""

import keras
import numpy as np
from keras import ops

from keras_cbloss._compat import executing_eagerly
from keras_cbloss._compat import get_keras_mask
from keras_cbloss._compat import in_symbolic_scope
from keras_cbloss._compat import num_replicas_in_sync
from keras_cbloss._compat import replica_id_in_sync_group
from keras_cbloss._metric_inputs import check_predictions
from keras_cbloss._metric_inputs import read_classes
from keras_cbloss._metric_inputs import read_entries
from keras_cbloss._validation import check_counts
from keras_cbloss._validation import check_num_classes

SHOTS = ("many", "medium", "few")


# --------------------------------------------------------------------------
# Argument checks (eager, in the constructors).
# --------------------------------------------------------------------------


def _check_threshold(threshold):
    if isinstance(threshold, bool) or not isinstance(
        threshold, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            "Invalid type for argument `threshold`. Expected a float. "
            f"Received: threshold={threshold!r} of type "
            f"{type(threshold).__name__}"
        )
    if not np.isfinite(threshold):
        raise ValueError(
            "Invalid value for argument `threshold`. Expected a finite float "
            "(0.5 for probabilities, 0.0 for logits). Received: "
            f"threshold={threshold}"
        )
    return float(threshold)


def _check_class_id(value, name):
    if value is None and name == "ignore_class":
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, np.integer)
    ):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected an integer class "
            f"id. Received: {name}={value!r} of type {type(value).__name__}"
        )
    if name == "class_id" and value < 0:
        raise ValueError(
            "Invalid value for argument `class_id`. Expected an integer >= 0. "
            f"Received: class_id={value}"
        )
    return int(value)


def _check_shot_thresholds(many_threshold, few_threshold):
    for name, value in (
        ("many_threshold", many_threshold),
        ("few_threshold", few_threshold),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.integer, np.floating))
            or not np.isfinite(value)
            or value < 0
        ):
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected a finite "
                f"number >= 0. Received: {name}={value!r}"
            )
    if few_threshold > many_threshold:
        raise ValueError(
            "Invalid value for argument `few_threshold`. Expected "
            "few_threshold <= many_threshold. Received: "
            f"few_threshold={few_threshold}, many_threshold={many_threshold}"
        )
    return float(many_threshold), float(few_threshold)


def _check_shot(shot):
    if shot not in SHOTS:
        raise ValueError(
            f"Invalid value for argument `shot`. Expected one of {SHOTS}. "
            f"Received: shot={shot!r}"
        )
    return shot


def shot_groups(class_counts, many_threshold=100, few_threshold=20):
    """Boolean masks of the many-, medium- and few-shot classes.

    Formula (Liu et al., 2019, with `n_c` the training count of class c):

    ```
    many:   n_c > many_threshold
    medium: few_threshold <= n_c <= many_threshold
    few:    n_c < few_threshold
    ```

    Args:
        class_counts: 1-D sequence of training counts, one per class.
        many_threshold: Float, default 100.
        few_threshold: Float, default 20. The defaults are the
            classifier-balancing / BALMS split (many > 100, few < 20);
            OLTR's code uses >= 100 and <= 20, which
            `many_threshold=np.nextafter(100, 0)` and
            `few_threshold=np.nextafter(20, 21)` reproduce (99 and 21 for
            integer counts).

    Returns:
        Dict from `"many"`, `"medium"`, `"few"` to NumPy bool arrays `[C]`;
        every class is in exactly one group.

    Raises:
        ValueError, TypeError: For bad counts or thresholds.

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import shot_groups
        >>> groups = shot_groups([500, 100, 20, 19])
        >>> {shot: np.flatnonzero(m).tolist() for shot, m in groups.items()}
        {'many': [0], 'medium': [1, 2], 'few': [3]}

    References:
        Liu et al., "Large-Scale Long-Tailed Recognition in an Open World",
        CVPR 2019, arXiv:1904.05160, Section 5.
    """
    counts = check_counts(class_counts)
    many_threshold, few_threshold = _check_shot_thresholds(
        many_threshold, few_threshold
    )
    many = counts > many_threshold
    few = counts < few_threshold
    return {"many": many, "medium": ~many & ~few, "few": few}


def _check_multi_label(multi_label):
    if not isinstance(multi_label, (bool, np.bool_)):
        raise TypeError(
            "Invalid type for argument `multi_label`. Expected a bool. "
            f"Received: multi_label={multi_label!r} of type "
            f"{type(multi_label).__name__}"
        )
    return bool(multi_label)


def _check_max_samples(max_samples):
    if isinstance(max_samples, (bool, np.bool_)) or not isinstance(
        max_samples, (int, np.integer)
    ):
        raise TypeError(
            "Invalid type for argument `max_samples`. Expected an integer. "
            f"Received: max_samples={max_samples!r} of type "
            f"{type(max_samples).__name__}"
        )
    if max_samples < 1:
        raise ValueError(
            "Invalid value for argument `max_samples`. Expected an integer "
            f">= 1. Received: max_samples={max_samples}"
        )
    return int(max_samples)


# --------------------------------------------------------------------------
# Per-class sums of one batch (traced code: keras.ops only).
# --------------------------------------------------------------------------


def _poison(invalid, dtype):
    """NaN where a kept label was invalid (compiled code), else 0.

    Compiled code cannot raise; the NaN makes the result visibly wrong
    instead of silently counting such labels as some class.
    """
    nan = ops.full((), float("nan"), dtype=dtype)
    return ops.where(invalid > 0, nan, ops.zeros((), dtype=dtype))


def _class_sums(rows, num_classes):
    """Per-class weighted true positives and support, `[C]` each."""
    # support_c = sum of the weights of class c's positions; a segment sum
    # over the ids needs no [N, C] one-hot (per-pixel maps stay cheap).
    hit = ops.cast(ops.equal(rows.true, rows.pred), rows.weight.dtype)
    return {
        "true_positives": ops.segment_sum(
            rows.weight * hit, rows.true, num_segments=num_classes
        ),
        "support": ops.segment_sum(
            rows.weight, rows.true, num_segments=num_classes
        ),
    }


def _label_sums(rows, threshold):
    """Per-label weighted TP, positives, TN and negatives, `[C]` each."""
    predicted = ops.cast(rows.pred > threshold, rows.weight.dtype)
    positive = rows.weight * rows.true  # w * t
    negative = rows.weight - positive  # w * (1 - t)
    return {
        "true_positives": ops.sum(positive * predicted, axis=0),
        "support": ops.sum(positive, axis=0),
        "true_negatives": ops.sum(negative * (1.0 - predicted), axis=0),
        "negatives": ops.sum(negative, axis=0),
    }


def _safe_ratio(numerator, denominator):
    """`numerator / denominator` where the denominator is not <= 0, else 0.

    Not `denominator > 0`: a NaN denominator (invalid labels in compiled
    code) must reach the result.
    """
    present = ops.logical_not(denominator <= 0)
    safe = ops.where(present, denominator, ops.ones_like(denominator))
    return ops.where(present, numerator / safe, ops.zeros_like(safe)), present


def _masked_mean(values, mask, dtype):
    """Mean of `values` where `mask`, 0 when `mask` is empty."""
    mask = ops.cast(mask, dtype)
    return ops.sum(mask * values) / ops.maximum(ops.sum(mask), 1.0)


# --------------------------------------------------------------------------
# The recall-based metrics.
# --------------------------------------------------------------------------


class _ClassCountsMetric(keras.metrics.Metric):
    """Base: per-class true-positive and support counts; subclasses reduce.

    With `num_classes=None` the `[C]` variables are created on the first
    `update_state` (in `fit`/`evaluate`, when Keras builds the metrics on a
    symbolic batch), from the last axis of `y_pred`. With
    `multi_label=True` there are four: each label's true positives,
    positives (`support`), true negatives and negatives.
    """

    def __init__(
        self,
        num_classes=None,
        *,
        threshold=0.5,
        ignore_class=None,
        multi_label=False,
        name=None,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self._threshold = _check_threshold(threshold)
        self._ignore_class = _check_class_id(ignore_class, "ignore_class")
        self._multi_label = _check_multi_label(multi_label)
        self._num_classes = None
        self.true_positives = None
        self.support = None
        self.true_negatives = None
        self.negatives = None
        num_classes = check_num_classes(num_classes)
        if num_classes is not None:
            self._build(num_classes)

    @property
    def num_classes(self):
        """Number of classes (labels), or None until the first update."""
        return self._num_classes

    @property
    def multi_label(self):
        """Whether each class is scored as its own binary problem."""
        return self._multi_label

    def _state_names(self):
        names = ["true_positives", "support"]
        if self._multi_label:
            names += ["true_negatives", "negatives"]
        return names

    def _build(self, num_classes):
        minimum = 1 if self._multi_label else 2
        if num_classes < minimum:
            raise ValueError(
                "Invalid value for argument `num_classes`. Expected an "
                f"integer >= {minimum}. Received: num_classes={num_classes}"
            )
        self._num_classes = int(num_classes)
        for name in self._state_names():
            setattr(
                self,
                name,
                self.add_variable(
                    shape=(num_classes,),
                    initializer="zeros",
                    dtype=self.dtype,
                    aggregation="sum",
                    name=name,
                ),
            )

    def _classes_in(self, y_pred):
        """C from the last axis of `y_pred`; a one-unit head is two
        classes, or one label with `multi_label=True`."""
        units = y_pred.shape[-1]
        if units is None:
            raise ValueError(
                "Cannot infer `num_classes`: the last axis of `y_pred` has "
                f"no static size (shape {tuple(y_pred.shape)}). Pass "
                "`num_classes`."
            )
        if self._multi_label:
            return int(units)
        return 2 if units == 1 else int(units)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch's per-class true positives and support."""
        mask = get_keras_mask(y_pred)  # before any op drops it
        y_pred = check_predictions(y_pred)
        inferred = self._classes_in(y_pred)
        if self._num_classes is None:
            self._build(inferred)
        elif inferred != self._num_classes:
            unit = (
                "one label"
                if self._multi_label
                else "a binary head (2 classes)"
            )
            raise ValueError(
                f"`{self.name}` counts {self._num_classes} classes, but "
                f"y_pred of shape {tuple(y_pred.shape)} has {inferred}. A "
                f"one-unit y_pred is {unit} here."
            )
        if self._multi_label:
            rows = read_entries(
                y_true,
                y_pred,
                sample_weight,
                mask,
                self._ignore_class,
                self.dtype,
            )
            sums = _label_sums(rows, self._threshold)
        else:
            rows = read_classes(
                y_true,
                y_pred,
                sample_weight,
                mask,
                self._threshold,
                self._ignore_class,
                self._num_classes,
                self.dtype,
            )
            sums = _class_sums(rows, self._num_classes)
        poison = _poison(rows.invalid, self.dtype)
        for name in self._state_names():
            getattr(self, name).assign_add(sums[name] + poison)

    def reset_state(self):
        if self._num_classes is not None:
            super().reset_state()

    def per_class_recall(self):
        """Recall of every class (label), `[C]`; 0 where no support.

        With `multi_label=True` it is each label's recall (true-positive
        rate) at `threshold`.
        """
        self._require_state()
        recall, _ = _safe_ratio(
            ops.convert_to_tensor(self.true_positives),
            ops.convert_to_tensor(self.support),
        )
        return recall

    def _mean_recall(self, mask):
        """Mean recall over the classes in `mask` with support; 0 if none."""
        recall, present = _safe_ratio(
            ops.convert_to_tensor(self.true_positives),
            ops.convert_to_tensor(self.support),
        )
        return _masked_mean(recall, ops.logical_and(present, mask), self.dtype)

    def _label_balanced_accuracy(self):
        """Each label's binary balanced accuracy `[C]`, and which count.

        The mean of its true-positive and true-negative rates over the
        sides it has in `y_true` (one side when the label is always
        positive or always negative, as scikit-learn drops a class absent
        from `y_true`); a label with no known entry does not count.
        """
        tpr, has_pos = _safe_ratio(
            ops.convert_to_tensor(self.true_positives),
            ops.convert_to_tensor(self.support),
        )
        tnr, has_neg = _safe_ratio(
            ops.convert_to_tensor(self.true_negatives),
            ops.convert_to_tensor(self.negatives),
        )
        has_pos = ops.cast(has_pos, self.dtype)
        has_neg = ops.cast(has_neg, self.dtype)
        sides = has_pos + has_neg
        value = (has_pos * tpr + has_neg * tnr) / ops.maximum(sides, 1.0)
        return value, sides > 0

    def _require_state(self):
        if self._num_classes is None:
            raise ValueError(
                f"`{self.name}` has no state yet: call `update_state` first, "
                "or pass `num_classes` to the constructor."
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self._num_classes,
            threshold=self._threshold,
            ignore_class=self._ignore_class,
            multi_label=self._multi_label,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_cbloss")
class BalancedAccuracy(_ClassCountsMetric):
    """Balanced accuracy: the mean per-class recall.

    Accumulates per-class (sample-weighted) true positives `TP_c` and
    support `S_c` over batches and averages recall over the classes seen
    in `y_true`, as scikit-learn's `balanced_accuracy_score` does on the
    concatenated data (it drops classes absent from `y_true`).

    Formula:

    ```
    recall_c = TP_c / S_c,   P = {c : S_c > 0}
    balanced_accuracy = (1 / |P|) * sum_{c in P} recall_c   (0 if P empty)

    multi_label=True, per label c (TN_c, N_c: true negatives, negatives):
    ba_c = mean of TP_c / S_c and TN_c / N_c over the sides with S_c > 0,
           N_c > 0
    balanced_accuracy = mean of ba_c over labels with S_c + N_c > 0
    ```

    The multi-label value is the mean over columns of scikit-learn's
    `balanced_accuracy_score(y_true[:, c], y_pred[:, c] > threshold)`,
    which is also what a one-unit binary head gives.

    `y_true`: class ids `[...]` or `[..., 1]` (per-pixel maps too), or
    one-hot / soft rows `[..., C]`. `y_pred`: probabilities or logits
    `[..., C]`; the predicted class is the argmax, which softmax does not
    change, so there is no `from_logits` argument. A one-unit `y_pred`
    `[..., 1]` is a binary head thresholded at `threshold`. Class ids
    outside `[0, C)` that are not `ignore_class` raise a `ValueError` when
    values can be seen; in compiled code they make the result NaN rather
    than count silently.

    Skipped, besides `ignore_class`: positions that the Keras mask of
    `y_pred` marks as padding (`Embedding(mask_zero=True)`, as Keras'
    `MeanMetricWrapper` does), and zero `sample_weight`s; the mask and
    `sample_weight` multiply.

    Args:
        num_classes: Optional int, default None: inferred from the last
            axis of `y_pred` at the first `update_state` (2 for a one-unit
            head, 1 with `multi_label=True`). Give it to use the metric in
            a hand-written JAX stateless loop before any update.
        threshold: Float, default 0.5. With `multi_label=True`, the
            threshold of every label. Otherwise used only when `y_pred` has
            one unit (a sigmoid head): the predicted class is
            `y_pred > threshold`, and the head counts as two classes. Use
            0.0 for logits.
        ignore_class: Optional int, default None. A label equal to it is
            unknown and skipped: a position's class id (segmentation voids
            such as 255, padding such as -1), or with `multi_label=True`
            one entry of a multi-hot row (unknown labels, e.g. -1).
        multi_label: Bool, default False. False: one class per position
            (sparse ids, one-hot or soft rows; an all-zero row is an
            unlabelled position and is skipped; a multi-hot row raises a
            ValueError, or makes the result NaN in compiled code). True:
            each of the C labels is its own binary problem, predicted
            positive where `y_pred > threshold` (as Keras'
            `Recall(class_id=c, thresholds=threshold)`); `y_true` holds
            0/1 entries `[..., C]` (or sparse ids, read as one-hot rows).
        name: String, the name in Keras' logs, default `"balanced_accuracy"`.
        dtype: Dtype of the state, default `keras.backend.floatx()`.

    Returns:
        `result()`: a scalar tensor in [0, 1]. `per_class_recall()`: the
        `[C]` recall vector (0 for classes with no support).

    Raises:
        TypeError, ValueError: For bad arguments; ValueError for labels
            outside [0, C), multi-hot rows with `multi_label=False`,
            non-0/1 entries with `multi_label=True` (when values can be
            seen) and mismatched shapes.

    Examples:
        >>> from keras_cbloss import BalancedAccuracy
        >>> m = BalancedAccuracy()
        >>> m.update_state([0, 0, 0, 1], [[0.9, 0.1], [0.8, 0.2],
        ...                               [0.3, 0.7], [0.2, 0.8]])
        >>> round(float(m.result()), 4)   # (2/3 + 1) / 2
        0.8333
        >>> m = BalancedAccuracy(multi_label=True, ignore_class=-1)
        >>> m.update_state([[1, 0], [0, -1], [1, 1]],
        ...                [[0.9, 0.6], [0.7, 0.2], [0.2, 0.8]])
        >>> round(float(m.result()), 4)   # ((1/2 + 0) / 2 + (1 + 0) / 2) / 2
        0.375

    References:
        Brodersen et al., "The balanced accuracy and its posterior
        distribution", ICPR 2010. Cui et al., "Class-Balanced Loss Based on
        Effective Number of Samples", CVPR 2019, arXiv:1901.05555.
    """

    def __init__(
        self,
        num_classes=None,
        *,
        threshold=0.5,
        ignore_class=None,
        multi_label=False,
        name="balanced_accuracy",
        dtype=None,
    ):
        super().__init__(
            num_classes,
            threshold=threshold,
            ignore_class=ignore_class,
            multi_label=multi_label,
            name=name,
            dtype=dtype,
        )

    def result(self):
        if self._num_classes is None:
            return ops.convert_to_tensor(0.0, dtype=self.dtype)
        if self._multi_label:
            value, counted = self._label_balanced_accuracy()
            return _masked_mean(value, counted, self.dtype)
        return self._mean_recall(ops.ones((self._num_classes,), dtype="bool"))


@keras.saving.register_keras_serializable(package="keras_cbloss")
class PerClassRecall(_ClassCountsMetric):
    """Recall of one class, accumulated over batches.

    Keras logs scalars, so per-class recall is one metric per class:
    `metrics=[PerClassRecall(c) for c in range(C)]` logs `recall_0`,
    `recall_1`, ... With `multi_label=False` it takes sparse ids and
    argmax predictions (the multi-class rule); with `multi_label=True` it
    is label c's recall at `threshold`, equal to Keras'
    `Recall(class_id=c, thresholds=threshold)` and to scikit-learn's
    `recall_score(y_true[:, c], y_pred[:, c] > threshold)`.

    Formula:

    ```
    recall_c = TP_c / S_c   (0 when S_c = 0)
    ```

    Skipped, besides `ignore_class`: positions that the Keras mask of
    `y_pred` marks as padding (`Embedding(mask_zero=True)`, as Keras'
    `MeanMetricWrapper` does), and zero `sample_weight`s; the mask and
    `sample_weight` multiply.

    Args:
        class_id: Int >= 0, the class to report.
        num_classes: Optional int, default None (inferred from `y_pred`,
            see `BalancedAccuracy`).
        threshold: Float, default 0.5. With `multi_label=True`, the
            threshold of every label. Otherwise used only when `y_pred` has
            one unit (a sigmoid head): the predicted class is
            `y_pred > threshold`, and the head counts as two classes. Use
            0.0 for logits.
        ignore_class: Optional int, default None. A label equal to it is
            unknown and skipped: a position's class id (segmentation voids
            such as 255, padding such as -1), or with `multi_label=True`
            one entry of a multi-hot row (unknown labels, e.g. -1).
        multi_label: Bool, default False. False: one class per position
            (sparse ids, one-hot or soft rows; an all-zero row is an
            unlabelled position and is skipped; a multi-hot row raises a
            ValueError, or makes the result NaN in compiled code). True:
            each of the C labels is its own binary problem, predicted
            positive where `y_pred > threshold` (as Keras'
            `Recall(class_id=c, thresholds=threshold)`); `y_true` holds
            0/1 entries `[..., C]` (or sparse ids, read as one-hot rows).
        name: String, the name in Keras' logs, default
            `f"recall_{class_id}"`.
        dtype: Dtype of the state, default `keras.backend.floatx()`.

    Returns:
        `result()`: a scalar tensor in [0, 1].

    Raises:
        TypeError, ValueError: For bad arguments, a `class_id` >=
            `num_classes`, and the label errors of `BalancedAccuracy`.

    Examples:
        >>> from keras_cbloss import PerClassRecall
        >>> m = PerClassRecall(0)
        >>> m.update_state([0, 0, 0, 1], [[0.9, 0.1], [0.8, 0.2],
        ...                               [0.3, 0.7], [0.2, 0.8]])
        >>> m.name, round(float(m.result()), 4)
        ('recall_0', 0.6667)
        >>> m = PerClassRecall(1, multi_label=True)
        >>> m.update_state([[1, 1], [0, 1], [1, 0]],
        ...                [[0.9, 0.6], [0.7, 0.2], [0.2, 0.8]])
        >>> round(float(m.result()), 4)   # label 1: 1 of its 2 positives
        0.5

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555.
    """

    def __init__(
        self,
        class_id,
        num_classes=None,
        *,
        threshold=0.5,
        ignore_class=None,
        multi_label=False,
        name=None,
        dtype=None,
    ):
        self._class_id = _check_class_id(class_id, "class_id")
        super().__init__(
            num_classes,
            threshold=threshold,
            ignore_class=ignore_class,
            multi_label=multi_label,
            name=name or f"recall_{self._class_id}",
            dtype=dtype,
        )

    @property
    def class_id(self):
        return self._class_id

    def _build(self, num_classes):
        if self._class_id >= num_classes:
            raise ValueError(
                "Invalid value for argument `class_id`. Expected an integer "
                f"in [0, {num_classes}) (num_classes={num_classes}). "
                f"Received: class_id={self._class_id}"
            )
        super()._build(num_classes)

    def result(self):
        if self._num_classes is None:
            return ops.convert_to_tensor(0.0, dtype=self.dtype)
        return self.per_class_recall()[self._class_id]

    def get_config(self):
        return {**super().get_config(), "class_id": self._class_id}


@keras.saving.register_keras_serializable(package="keras_cbloss")
class ShotAccuracy(_ClassCountsMetric):
    """Many-, medium- or few-shot accuracy (Liu et al., 2019).

    Classes are grouped by their training counts `n_c` (see `shot_groups`):
    many-shot `n_c > many_threshold`, medium-shot `few_threshold <= n_c <=
    many_threshold`, few-shot `n_c < few_threshold`. The result is the mean
    test recall over the group's classes that occur in `y_true`, as in the
    authors' evaluation code. Keras logs scalars, so each group is one
    metric: `[ShotAccuracy(s) for s in ("many", "medium", "few")]` logs
    `many_shot_accuracy`, `medium_shot_accuracy` and `few_shot_accuracy`.

    With `multi_label=True` the counts are each label's positive training
    examples (what `count_classes` gives for multi-hot targets), and a
    label's accuracy is its recall at `threshold` (the fraction of its test
    positives found, as a class's accuracy is its recall in the
    single-label case): the result is the mean recall over the group's
    labels that have a test positive. For the head/medium/tail mAP that
    multi-label long-tail papers report, see
    `MeanAveragePrecision.shot_average_precision`.

    The counts come from the constructor, from `set_class_counts`, or from
    `keras_cbloss.ClassCounter`, which hands its counts to every compiled
    metric that has `set_class_counts` when `fit` starts. The groups are
    computed on the host in float64 and are constants of the compiled step
    (`ClassCounter` rebuilds the step; after calling `set_class_counts`
    yourself during training, call `model.make_train_function(force=True)`).

    Formula:

    ```
    acc_group = (1 / |P_g|) * sum_{c in P_g} TP_c / S_c,
    P_g = {c in group : S_c > 0}                   (0 if P_g is empty)
    ```

    A group with no class, or none in the evaluation data, reports 0 (like
    Keras' metrics with nothing to average), not NaN: check
    `shot_groups(counts)` to tell an empty group from a failing one.

    Skipped, besides `ignore_class`: positions that the Keras mask of
    `y_pred` marks as padding (`Embedding(mask_zero=True)`, as Keras'
    `MeanMetricWrapper` does), and zero `sample_weight`s; the mask and
    `sample_weight` multiply.

    Args:
        shot: `"many"`, `"medium"` or `"few"`.
        class_counts: Optional 1-D sequence of training counts, default
            None (set later). Its length is the number of classes (two
            for a one-unit head, one with `multi_label=True`).
        many_threshold: Float, default 100.
        few_threshold: Float, default 20. For OLTR's groups (>= 100,
            <= 20) see `shot_groups`.
        threshold: Float, default 0.5. With `multi_label=True`, the
            threshold of every label. Otherwise used only when `y_pred` has
            one unit (a sigmoid head): the predicted class is
            `y_pred > threshold`, and the head counts as two classes. Use
            0.0 for logits.
        ignore_class: Optional int, default None. A label equal to it is
            unknown and skipped: a position's class id (segmentation voids
            such as 255, padding such as -1), or with `multi_label=True`
            one entry of a multi-hot row (unknown labels, e.g. -1).
        multi_label: Bool, default False. False: one class per position
            (sparse ids, one-hot or soft rows; an all-zero row is an
            unlabelled position and is skipped; a multi-hot row raises a
            ValueError, or makes the result NaN in compiled code). True:
            each of the C labels is its own binary problem, predicted
            positive where `y_pred > threshold` (as Keras'
            `Recall(class_id=c, thresholds=threshold)`); `y_true` holds
            0/1 entries `[..., C]` (or sparse ids, read as one-hot rows).
        name: String, the name in Keras' logs, default
            `f"{shot}_shot_accuracy"`.
        dtype: Dtype of the state, default `keras.backend.floatx()`.

    Returns:
        `result()`: a scalar tensor in [0, 1].

    Raises:
        TypeError, ValueError: For bad arguments and the label errors of
            `BalancedAccuracy`; `result()` raises a ValueError while the
            counts are unset.

    Examples:
        >>> from keras_cbloss import ShotAccuracy
        >>> m = ShotAccuracy("few", class_counts=[500, 50, 5])
        >>> m.update_state([0, 1, 2, 2], [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1],
        ...                               [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]])
        >>> m.name, round(float(m.result()), 4)
        ('few_shot_accuracy', 0.5)

    References:
        Liu et al., "Large-Scale Long-Tailed Recognition in an Open World",
        CVPR 2019, arXiv:1904.05160.
    """

    def __init__(
        self,
        shot,
        class_counts=None,
        *,
        many_threshold=100,
        few_threshold=20,
        threshold=0.5,
        ignore_class=None,
        multi_label=False,
        name=None,
        dtype=None,
    ):
        self._shot = _check_shot(shot)
        self._many_threshold, self._few_threshold = _check_shot_thresholds(
            many_threshold, few_threshold
        )
        counts = None if class_counts is None else check_counts(class_counts)
        super().__init__(
            None if counts is None else len(counts),
            threshold=threshold,
            ignore_class=ignore_class,
            multi_label=multi_label,
            name=name or f"{shot}_shot_accuracy",
            dtype=dtype,
        )
        self._class_counts = None
        if counts is not None:
            self.set_class_counts(counts)

    @property
    def shot(self):
        return self._shot

    @property
    def class_counts(self):
        """The training counts (float64 NumPy `[C]`), or None."""
        return None if self._class_counts is None else self._class_counts.copy()

    def set_class_counts(self, class_counts):
        """Sets the training counts that define the shot groups."""
        counts = check_counts(class_counts)
        if self._num_classes is not None and len(counts) != self._num_classes:
            raise ValueError(
                "Invalid value for argument `class_counts`. Expected "
                f"{self._num_classes} counts (the metric's classes). "
                f"Received {len(counts)} counts."
            )
        if self._num_classes is None:
            self._build(len(counts))
        self._class_counts = counts

    def _build(self, num_classes):
        counts = getattr(self, "_class_counts", None)
        if counts is not None and len(counts) != num_classes:
            raise ValueError(
                f"`{self.name}` has {len(counts)} class counts, but y_pred "
                f"has {num_classes} classes."
            )
        super()._build(num_classes)

    def result(self):
        if self._class_counts is None:
            if in_symbolic_scope():  # Keras builds metrics before callbacks
                return ops.convert_to_tensor(0.0, dtype=self.dtype)
            raise ValueError(
                f"`{self.name}` has no training class counts. Pass "
                "`class_counts=` to the constructor, call "
                "`set_class_counts(counts)`, or add "
                "`keras_cbloss.ClassCounter` to `fit`'s callbacks."
            )
        groups = shot_groups(
            self._class_counts, self._many_threshold, self._few_threshold
        )
        return self._mean_recall(ops.convert_to_tensor(groups[self._shot]))

    def get_config(self):
        config = super().get_config()
        config.pop("num_classes")  # implied by the counts
        counts = self._class_counts
        config.update(
            shot=self._shot,
            class_counts=None if counts is None else counts.tolist(),
            many_threshold=self._many_threshold,
            few_threshold=self._few_threshold,
        )
        return config


# --------------------------------------------------------------------------
# Average precision.
# --------------------------------------------------------------------------


def average_precision(scores, positive, negative):
    """Per-label average precision `[C]` of weighted rows `[N, C]`.

    `positive`/`negative` hold each row's weight as a positive/negative of
    each label (0 for rows that do not count). Rows are ranked by score,
    descending; tied scores form one threshold, as in scikit-learn's
    `precision_recall_curve`, so that

    ```
    AP_c = sum_k (R_k - R_{k-1}) * P_k   over the distinct scores s_k
    P_k = TP(>= s_k) / (TP(>= s_k) + FP(>= s_k)),  R_k = TP(>= s_k) / TP_c
    ```

    which is scikit-learn's `average_precision_score` (0 for a label
    without positive weight). Rows of weight 0 change no sum: they leave
    the result as if they were absent.
    """
    num_rows, num_labels = scores.shape
    order = ops.argsort(-scores, axis=0)
    scores = ops.take_along_axis(scores, order, axis=0)
    positive = ops.take_along_axis(positive, order, axis=0)
    negative = ops.take_along_axis(negative, order, axis=0)
    # Group k of a column holds its k-th distinct score (a tie is one
    # point of the curve); segment ids number the groups column by column.
    first = ops.ones((1, num_labels), dtype="int32")
    changes = ops.cast(ops.not_equal(scores[1:], scores[:-1]), "int32")
    group = ops.cumsum(ops.concatenate([first, changes], axis=0), axis=0) - 1
    segment = ops.reshape(group * num_labels + ops.arange(num_labels), [-1])

    def per_group(values):  # [N, C] sums by group (zeros after the last)
        sums = ops.segment_sum(
            ops.reshape(values, [-1]),
            segment,
            num_segments=num_rows * num_labels,
        )
        return ops.reshape(sums, [num_rows, num_labels])

    gained = per_group(positive)  # TP_k - TP_{k-1}
    true_positives = ops.cumsum(gained, axis=0)  # TP(>= s_k)
    predicted = true_positives + ops.cumsum(per_group(negative), axis=0)
    precision, _ = _safe_ratio(true_positives, predicted)
    total = ops.sum(positive, axis=0)  # TP_c
    average, _ = _safe_ratio(ops.sum(gained * precision, axis=0), total)
    return average


@keras.saving.register_keras_serializable(package="keras_cbloss")
class MeanAveragePrecision(keras.metrics.Metric):
    """Mean average precision (mAP): the macro average of per-label AP.

    Exactly scikit-learn's `average_precision_score(y_true, y_score,
    average="macro", sample_weight=...)` on the data of every batch since
    the last reset: the step-wise area under each label's precision-recall
    curve, not the interpolated PR-AUC of `keras.metrics.AUC(curve="PR")`.
    This is the mAP that multi-label long-tail benchmarks (COCO-MLT,
    VOC-MLT) report.

    Formula (label c, its rows ranked by score; `s_k` its distinct scores,
    ties forming one threshold as in scikit-learn; weights `w`):

    ```
    TP_k = sum of w over positives with score >= s_k   (FP_k: negatives)
    P_k = TP_k / (TP_k + FP_k),   R_k = TP_k / TP_c,   R_0 = 0
    AP_c = sum_k (R_k - R_{k-1}) * P_k
    mAP = (1 / C) * sum_c AP_c
    ```

    Labels: dense 0/1 entries `[..., C]` (multi-hot; an entry equal to
    `ignore_class` is unknown and left out of that label only), sparse ids
    `[...]`/`[..., 1]` (one-vs-rest: each class is a label of its one-hot
    row; `ignore_class` skips the position), or the 0/1 labels of a
    one-unit head `[..., 1]` (one label: the AP of the positive class). Per
    pixel and per token maps are flattened. `y_pred`: scores of any
    monotone scale (probabilities or logits give the same ranking, so there
    is no `from_logits`). Skipped as well: positions that the Keras mask of
    `y_pred` marks as padding (`Embedding(mask_zero=True)`), and zero
    `sample_weight`s; the mask and `sample_weight` multiply, and a
    `sample_weight` of y_pred's full shape weights single entries.

    A label without a positive (weight) in the data has AP 0 and counts as
    0 in the mean, as in scikit-learn (which also warns there);
    `label_support()` tells such labels apart.

    Memory: AP needs every score, so the metric keeps the rows (positions)
    it was given in three float32 buffers of `max_samples x C`: 12 bytes
    per entry, 9.6 MB for 10,000 rows of 80 labels, and `result()` sorts
    them (in `fit`, Keras calls `result()` after every step). When the
    metric is compiled into `fit`, the training batches of an epoch count
    too: size `max_samples` for the larger of the training and the
    evaluation set, or use the metric on its own after training
    (`update_state(y, model.predict(x))`). More rows than `max_samples`
    raise a ValueError where values can be seen (at the update, or at
    `result()` after a compiled epoch) and make the result NaN inside
    compiled steps; nothing is dropped silently. Under a `tf.distribute`
    strategy of R replicas each replica holds its own copy of the buffers
    and fills its share, `max_samples // R` rows.

    Args:
        num_classes: Optional int >= 1, default None: inferred from the last
            axis of `y_pred` at the first `update_state` (1 for a one-unit
            head). The number of labels C.
        max_samples: Int >= 1, default 10000. The rows the buffers hold
            (a row is one sample, pixel or token: one position of
            `y_pred.shape[:-1]`).
        ignore_class: Optional int, default None. A label entry (dense
            targets) or a position's class id (sparse ids) equal to it is
            unknown and skipped, e.g. -1 for unknown labels.
        name: String, the name in Keras' logs, default
            `"mean_average_precision"`.
        dtype: Dtype of the state, default `keras.backend.floatx()`.

    Returns:
        `result()`: a scalar tensor in [0, 1] (NaN after invalid labels or
        an overflow in compiled code). `per_label_average_precision()`: AP
        per label, `[C]`. `shot_average_precision(class_counts)`: the mAP
        of the many-, medium- and few-shot labels, a dict of scalars.
        `label_support()`: each label's positive weight, `[C]`.

    Raises:
        TypeError, ValueError: For bad arguments; ValueError (when values
            can be seen) for targets other than 0/1 or `ignore_class`,
            class ids outside [0, C), non-finite scores at counted entries,
            and more rows than `max_samples`.

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import MeanAveragePrecision
        >>> y_true = [[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0]]
        >>> y_pred = [[.9, .4, .1], [.55, .8, .3], [.1, .2, .7],
        ...           [.3, .1, .9], [.6, .45, .2]]
        >>> m = MeanAveragePrecision()
        >>> m.update_state(y_true[:2], y_pred[:2])
        >>> m.update_state(y_true[2:], y_pred[2:])
        >>> np.round(m.per_label_average_precision(), 4)
        array([0.9167, 0.8333, 1.    ], dtype=float32)
        >>> round(float(m.result()), 4)
        0.9167

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555. Wu et al., "Distribution-
        Balanced Loss for Multi-Label Classification in Long-Tailed
        Datasets", ECCV 2020, arXiv:2007.09654 (COCO-MLT, VOC-MLT and their
        many/medium/few-shot mAP).
    """

    _BUFFERS = ("scores", "positive_weight", "negative_weight")

    def __init__(
        self,
        num_classes=None,
        *,
        max_samples=10000,
        ignore_class=None,
        name="mean_average_precision",
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self._max_samples = _check_max_samples(max_samples)
        self._ignore_class = _check_class_id(ignore_class, "ignore_class")
        self._num_classes = None
        self._rows_per_replica = None
        num_classes = check_num_classes(num_classes)
        if num_classes is not None:
            self._build(num_classes)

    @property
    def num_classes(self):
        """Number of labels, or None until the first `update_state`."""
        return self._num_classes

    @property
    def max_samples(self):
        return self._max_samples

    def _build(self, num_classes):
        if num_classes < 1:
            raise ValueError(
                "Invalid value for argument `num_classes`. Expected an "
                f"integer >= 1. Received: num_classes={num_classes}"
            )
        replicas = num_replicas_in_sync()
        if self._max_samples < replicas:
            raise ValueError(
                "Invalid value for argument `max_samples`. Expected at least "
                f"one row per replica ({replicas} replicas). Received: "
                f"max_samples={self._max_samples}"
            )
        self._num_classes = int(num_classes)
        self._rows_per_replica = self._max_samples // replicas
        for name in self._BUFFERS:
            setattr(
                self,
                name,
                self.add_variable(
                    shape=(self._max_samples, num_classes),
                    initializer="zeros",
                    dtype=self.dtype,
                    aggregation="sum",
                    name=name,
                ),
            )
        # Rows written (each replica counts its own; reads sum them), rows
        # that did not fit, and labels or scores that were invalid.
        self.rows_written = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="int32",
            aggregation="sum",
            name="rows_written",
        )
        self.rows_dropped = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="int32",
            aggregation="sum",
            name="rows_dropped",
        )
        self.invalid = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype=self.dtype,
            aggregation="sum",
            name="invalid",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Appends a batch's rows (scores and weighted 0/1 targets)."""
        mask = get_keras_mask(y_pred)  # before any op drops it
        y_pred = check_predictions(y_pred)
        labels = y_pred.shape[-1]
        if labels is None:
            raise ValueError(
                "Cannot infer `num_classes`: the last axis of `y_pred` has "
                f"no static size (shape {tuple(y_pred.shape)}). Pass "
                "`num_classes`."
            )
        if self._num_classes is None:
            self._build(labels)
        elif labels != self._num_classes:
            raise ValueError(
                f"`{self.name}` ranks {self._num_classes} labels, but y_pred "
                f"of shape {tuple(y_pred.shape)} has {labels}."
            )
        rows = read_entries(
            y_true, y_pred, sample_weight, mask, self._ignore_class, self.dtype
        )
        invalid = rows.invalid + self._non_finite(rows)
        positive = rows.weight * rows.true
        self._append([rows.pred, positive, rows.weight - positive])
        self.invalid.assign_add(invalid)

    def _non_finite(self, rows):
        """Counted entries with a NaN or inf score (raises when eager)."""
        bad = ops.logical_and(
            rows.weight > 0, ops.logical_not(ops.isfinite(rows.pred))
        )
        if executing_eagerly(bad) and bool(ops.any(bad)):
            raise ValueError(
                "Invalid predictions. Expected finite scores in y_pred. "
                f"Received {int(ops.sum(ops.cast(bad, 'int32')))} NaN or "
                "inf score(s) at labelled entries."
            )
        return ops.sum(ops.cast(bad, self.dtype))

    def _append(self, values):
        """Writes `[n, C]` rows at this replica's next free rows."""
        if in_symbolic_scope():
            # Keras builds the metrics on a symbolic batch, whose unknown
            # sizes it may fill with stand-ins: nothing to write there.
            return
        room = self._rows_per_replica
        count = values[0].shape[0]
        if count is not None and count > room:
            raise ValueError(self._overflow_message(count))
        count = ops.shape(values[0])[0]
        written = ops.convert_to_tensor(self.rows_written)
        fits = written + count <= room
        if executing_eagerly(fits) and not bool(fits):
            raise ValueError(self._overflow_message(int(written + count)))
        start = replica_id_in_sync_group() * room + written
        buffers = [
            ops.convert_to_tensor(getattr(self, name)) for name in self._BUFFERS
        ]

        def write():
            return [
                ops.slice_update(buffer, [start, 0], value)
                for buffer, value in zip(buffers, values)
            ]

        # A batch that does not fit is not written (a clamped write would
        # overwrite earlier rows); it is counted, and the result is NaN.
        updated = ops.cond(fits, write, lambda: buffers)
        for name, value in zip(self._BUFFERS, updated):
            getattr(self, name).assign(value)
        zero = ops.zeros_like(written)
        self.rows_written.assign_add(ops.where(fits, count, zero))
        self.rows_dropped.assign_add(ops.where(fits, zero, count))

    def _overflow_message(self, rows):
        per_replica = self._rows_per_replica != self._max_samples
        room = (
            f"{self._rows_per_replica} rows per replica"
            if per_replica
            else f"{self._max_samples} rows"
        )
        return (
            f"`{self.name}` holds every row it ranks and has room for "
            f"{room} (max_samples={self._max_samples}); it received "
            f"{rows} rows since its last reset. Pass a larger "
            "`max_samples` (a row is one sample, pixel or token; in `fit` "
            "an epoch's training rows count too), or call `reset_state()` "
            "more often."
        )

    def reset_state(self):
        if self._num_classes is not None:
            super().reset_state()

    def _check_state(self):
        """Raises for rows that did not fit, when values can be seen."""
        # A cast reads the value (a sum over replicas under tf.distribute).
        dropped = ops.cast(self.rows_dropped, "int32")
        if executing_eagerly(dropped) and int(dropped) > 0:
            total = int(dropped) + int(ops.cast(self.rows_written, "int32"))
            raise ValueError(self._overflow_message(total))
        return ops.logical_or(dropped > 0, self.invalid > 0)

    def _require_state(self):
        if self._num_classes is None:
            raise ValueError(
                f"`{self.name}` has no state yet: call `update_state` first, "
                "or pass `num_classes` to the constructor."
            )

    def per_label_average_precision(self):
        """Average precision of every label, `[C]` (0 without positives).

        NaN for every label after invalid labels or scores, or rows beyond
        `max_samples`, in compiled code; a ValueError for the latter where
        values can be seen.
        """
        self._require_state()
        broken = self._check_state()
        average = average_precision(
            *(
                ops.convert_to_tensor(getattr(self, name))
                for name in self._BUFFERS
            )
        )
        return ops.where(broken, ops.full_like(average, float("nan")), average)

    def label_support(self):
        """Each label's total positive weight, `[C]` (0: AP is 0 there)."""
        self._require_state()
        return ops.sum(ops.convert_to_tensor(self.positive_weight), axis=0)

    def shot_average_precision(
        self, class_counts, many_threshold=100, few_threshold=20
    ):
        """mAP of the many-, medium- and few-shot labels.

        The labels are grouped by `class_counts`, their training positive
        counts (see `shot_groups`; the COCO-MLT/VOC-MLT split is many > 100,
        few < 20). Each group's value is the mean AP over its labels, which
        is scikit-learn's `average_precision_score(average="macro")` on
        those columns; 0 for a group without labels.

        Args:
            class_counts: 1-D sequence of C training counts.
            many_threshold: Float, default 100.
            few_threshold: Float, default 20.

        Returns:
            Dict from `"many"`, `"medium"`, `"few"` to scalar tensors.

        Raises:
            ValueError: For counts that are not one per label, and the
                errors of `shot_groups` and `per_label_average_precision`.
        """
        groups = shot_groups(class_counts, many_threshold, few_threshold)
        average = self.per_label_average_precision()
        if len(groups["many"]) != self._num_classes:
            raise ValueError(
                "Invalid value for argument `class_counts`. Expected "
                f"{self._num_classes} counts (the metric's labels). "
                f"Received {len(groups['many'])} counts."
            )
        return {
            shot: _masked_mean(average, ops.convert_to_tensor(mask), self.dtype)
            for shot, mask in groups.items()
        }

    def result(self):
        if self._num_classes is None:
            return ops.convert_to_tensor(0.0, dtype=self.dtype)
        return ops.mean(self.per_label_average_precision())

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self._num_classes,
            max_samples=self._max_samples,
            ignore_class=self._ignore_class,
        )
        return config
