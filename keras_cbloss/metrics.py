"""Keras metrics for long-tailed evaluation.

Plain accuracy on a long-tailed test set is mostly head-class accuracy. The
metrics here average over classes instead: balanced accuracy (the mean
per-class recall), the recall of one class, and the many/medium/few-shot
accuracy of Liu et al. (CVPR 2019), which groups classes by how many
training examples they had.

All three keep the same state, accumulated over batches: per-class
true-positive and support counts (sample-weighted), as Keras metric variables
with `aggregation="sum"`, so that `tf.distribute` and JAX data parallelism sum
them across replicas. `result()` divides them once, at the end.
"""

import keras
import numpy as np
from keras import ops

from keras_cbloss._compat import executing_eagerly
from keras_cbloss._compat import in_symbolic_scope
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
    for name, value in (("many_threshold", many_threshold),
                        ("few_threshold", few_threshold)):
        if isinstance(value, bool) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ) or not np.isfinite(value) or value < 0:
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

    Example:

    >>> import numpy as np
    >>> from keras_cbloss import shot_groups
    >>> groups = shot_groups([500, 100, 20, 19])
    >>> {shot: np.flatnonzero(mask).tolist() for shot, mask in groups.items()}
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


# --------------------------------------------------------------------------
# Labels and predictions to flat class ids (traced code: keras.ops only).
# --------------------------------------------------------------------------


def _num_classes_of(y_pred_shape):
    """C from the last axis of `y_pred`; a one-unit head is two classes."""
    units = y_pred_shape[-1] if len(y_pred_shape) else None
    if units is None:
        raise ValueError(
            "Cannot infer `num_classes`: the last axis of `y_pred` has no "
            f"static size (shape {tuple(y_pred_shape)}). Pass `num_classes`."
        )
    return 2 if units == 1 else int(units)


def _predicted_ids(y_pred, threshold):
    """Argmax over the class axis; `y_pred > threshold` for one unit."""
    if y_pred.shape[-1] == 1:
        return ops.cast(ops.squeeze(y_pred > threshold, axis=-1), "int32")
    return ops.cast(ops.argmax(y_pred, axis=-1), "int32")


def _true_ids(y_true, y_pred):
    """Class ids of shape `y_pred.shape[:-1]` from sparse or one-hot labels.

    Same rank as `y_pred`: one-hot (argmax) when the last axis is C > 1,
    `[..., 1]` ids otherwise; one rank less: ids.
    """
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(y_pred.shape):
        if y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        else:
            return ops.cast(ops.argmax(y_true, axis=-1), "int32"), None
    if len(y_true.shape) != len(y_pred.shape) - 1:
        raise ValueError(
            "Invalid labels. Expected class ids of shape y_pred.shape[:-1] "
            "(or with a trailing 1), or one-hot labels of y_pred's shape. "
            f"Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    return ops.cast(y_true, "int32"), y_true


def _sample_weights(sample_weight, ids, dtype):
    """`sample_weight` broadcast to the shape of `ids` (trailing axes)."""
    ones = ops.ones_like(ids, dtype=dtype)
    if sample_weight is None:
        return ones
    weight = ops.cast(sample_weight, dtype)
    while len(weight.shape) > len(ids.shape) and weight.shape[-1] == 1:
        weight = ops.squeeze(weight, axis=-1)
    while len(weight.shape) < len(ids.shape):
        weight = ops.expand_dims(weight, -1)
    return ones * weight


def _check_ids(ids, raw, num_classes, keep):
    """Raises for ids outside [0, C) when values can be inspected.

    Returns a float mask that is NaN at invalid kept positions (compiled
    code cannot raise; the NaN makes the result visibly wrong instead of
    silently counting them as another class), 0 elsewhere.
    """
    valid = ops.logical_and(ids >= 0, ids < num_classes)
    if raw is not None and "float" in str(raw.dtype):
        valid = ops.logical_and(valid, ops.equal(raw, ops.floor(raw)))
    bad = ops.logical_and(keep, ops.logical_not(valid))
    if executing_eagerly(ids) and bool(ops.any(bad)):
        values = ops.convert_to_numpy(raw if raw is not None else ids)
        values = values[ops.convert_to_numpy(bad)]
        shown = [int(v) if float(v).is_integer() else float(v)
                 for v in values[:10]]
        raise ValueError(
            "Invalid labels. Expected integer class ids in "
            f"[0, {num_classes}) (or `ignore_class`). Received values "
            f"{shown}{' ...' if len(values) > 10 else ''}."
        )
    return valid, ops.where(bad, float("nan"), 0.0)


def _class_sums(y_true, y_pred, sample_weight, num_classes, threshold,
                ignore_class, dtype):
    """Per-class weighted true positives and support of one batch, `[C]`."""
    pred_ids = _predicted_ids(y_pred, threshold)
    true_ids, raw = _true_ids(y_true, y_pred)
    weight = _sample_weights(sample_weight, true_ids, dtype)
    keep = ops.ones_like(true_ids, dtype="bool")
    if ignore_class is not None:
        keep = ops.not_equal(true_ids, ignore_class)
    valid, poison = _check_ids(true_ids, raw, num_classes, keep)
    keep = ops.logical_and(keep, valid)
    weight = ops.where(keep, weight, ops.zeros_like(weight))
    # support_c = sum of the weights of class c's positions; a segment sum
    # over the ids needs no [N, C] one-hot (per-pixel maps stay cheap).
    ids = ops.reshape(ops.where(keep, true_ids, 0), [-1])
    weight = ops.reshape(weight, [-1])
    hit = ops.reshape(ops.cast(ops.equal(true_ids, pred_ids), dtype), [-1])
    poison = ops.sum(ops.cast(poison, dtype))
    support = ops.segment_sum(weight, ids, num_segments=num_classes)
    true_positives = ops.segment_sum(weight * hit, ids,
                                     num_segments=num_classes)
    return true_positives + poison, support + poison


# --------------------------------------------------------------------------
# The metrics.
# --------------------------------------------------------------------------


class _ClassCountsMetric(keras.metrics.Metric):
    """Base: per-class true-positive and support counts; subclasses reduce.

    With `num_classes=None` the two `[C]` variables are created on the
    first `update_state` (in `fit`/`evaluate`, when Keras builds the metrics
    on a symbolic batch), from the last axis of `y_pred`.
    """

    def __init__(self, num_classes=None, *, threshold=0.5,
                 ignore_class=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._threshold = _check_threshold(threshold)
        self._ignore_class = _check_class_id(ignore_class, "ignore_class")
        self._num_classes = None
        self.true_positives = None
        self.support = None
        num_classes = check_num_classes(num_classes)
        if num_classes is not None:
            self._build(num_classes)

    @property
    def num_classes(self):
        """Number of classes, or None until the first `update_state`."""
        return self._num_classes

    def _build(self, num_classes):
        if num_classes < 2:
            raise ValueError(
                "Invalid value for argument `num_classes`. Expected an "
                f"integer >= 2. Received: num_classes={num_classes}"
            )
        self._num_classes = int(num_classes)
        self.true_positives = self.add_variable(
            shape=(num_classes,), initializer="zeros", dtype=self.dtype,
            aggregation="sum", name="true_positives")
        self.support = self.add_variable(
            shape=(num_classes,), initializer="zeros", dtype=self.dtype,
            aggregation="sum", name="support")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch's per-class true positives and support."""
        y_pred = ops.convert_to_tensor(y_pred)
        inferred = _num_classes_of(y_pred.shape)
        if self._num_classes is None:
            self._build(inferred)
        elif inferred != self._num_classes:
            raise ValueError(
                f"`{self.name}` counts {self._num_classes} classes, but "
                f"y_pred of shape {tuple(y_pred.shape)} has {inferred}. A "
                "one-unit y_pred is a binary head (2 classes)."
            )
        true_positives, support = _class_sums(
            y_true, y_pred, sample_weight, self._num_classes,
            self._threshold, self._ignore_class, self.dtype)
        self.true_positives.assign_add(true_positives)
        self.support.assign_add(support)

    def reset_state(self):
        if self._num_classes is not None:
            super().reset_state()

    def per_class_recall(self):
        """Recall of every class, `[C]`; 0 for a class with no support."""
        self._require_state()
        support = ops.convert_to_tensor(self.support)
        # Not `support > 0`: a NaN support (invalid labels in compiled
        # code) must reach the result.
        present = ops.logical_not(support <= 0)
        safe = ops.where(present, support, ops.ones_like(support))
        return ops.where(present, self.true_positives / safe,
                         ops.zeros_like(safe))

    def _mean_recall(self, mask):
        """Mean recall over the classes in `mask` with support; 0 if none."""
        support = ops.convert_to_tensor(self.support)
        present = ops.logical_and(ops.logical_not(support <= 0), mask)
        present = ops.cast(present, self.dtype)
        total = ops.sum(present * self.per_class_recall())
        return total / ops.maximum(ops.sum(present), 1.0)

    def _require_state(self):
        if self._num_classes is None:
            raise ValueError(
                f"`{self.name}` has no state yet: call `update_state` first, "
                "or pass `num_classes` to the constructor."
            )

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self._num_classes,
                      threshold=self._threshold,
                      ignore_class=self._ignore_class)
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
    ```

    `y_true`: class ids `[...]` or `[..., 1]` (per-pixel maps too), or
    one-hot `[..., C]`. `y_pred`: probabilities or logits `[..., C]`; the
    predicted class is the argmax, which softmax does not change, so there
    is no `from_logits` argument. A one-unit `y_pred` `[..., 1]` is a binary
    head thresholded at `threshold`. Class ids outside `[0, C)` that are
    not `ignore_class` raise a `ValueError` when run eagerly; in compiled
    code they make the result NaN rather than count silently.

    Args:
        num_classes: Optional int >= 2, default None: inferred from the
            last axis of `y_pred` at the first `update_state` (2 for a
            one-unit head). Give it to use the metric in a hand-written
            JAX stateless loop before any update.
        threshold: Float, default 0.5. Used only when `y_pred` has one
            unit (a sigmoid head): the predicted class is
            `y_pred > threshold`, and the head counts as two classes. Use
            0.0 when that unit outputs logits.
        ignore_class: Optional int, default None. Positions whose true
            class id equals it are skipped (segmentation voids such as 255,
            padding such as -1).
        name: String, the name in Keras' logs, default `"balanced_accuracy"`.
        dtype: Dtype of the state, default `keras.backend.floatx()`.

    Returns:
        `result()`: a scalar tensor in [0, 1]. `per_class_recall()`: the
        `[C]` recall vector (0 for classes with no support).

    Raises:
        TypeError, ValueError: For bad arguments; ValueError for labels
            outside [0, C) (eagerly) and mismatched shapes.

    Example:

    >>> from keras_cbloss import BalancedAccuracy
    >>> m = BalancedAccuracy()
    >>> m.update_state([0, 0, 0, 1], [[0.9, 0.1], [0.8, 0.2],
    ...                               [0.3, 0.7], [0.2, 0.8]])
    >>> round(float(m.result()), 4)   # (2/3 + 1) / 2
    0.8333

    References:
        Brodersen et al., "The balanced accuracy and its posterior
        distribution", ICPR 2010. Cui et al., "Class-Balanced Loss Based on
        Effective Number of Samples", CVPR 2019, arXiv:1901.05555.
    """

    def __init__(self, num_classes=None, *, threshold=0.5, ignore_class=None,
                 name="balanced_accuracy", dtype=None):
        super().__init__(num_classes, threshold=threshold,
                         ignore_class=ignore_class, name=name, dtype=dtype)

    def result(self):
        if self._num_classes is None:
            return ops.convert_to_tensor(0.0, dtype=self.dtype)
        return self._mean_recall(
            ops.ones((self._num_classes,), dtype="bool"))


@keras.saving.register_keras_serializable(package="keras_cbloss")
class PerClassRecall(_ClassCountsMetric):
    """Recall of one class, accumulated over batches.

    Keras logs scalars, so per-class recall is one metric per class:
    `metrics=[PerClassRecall(c) for c in range(C)]` logs `recall_0`,
    `recall_1`, ... Unlike `keras.metrics.Recall(class_id=...)`, it takes
    sparse ids and argmax predictions (the multi-class rule), not
    per-class thresholds.

    Formula:

    ```
    recall_c = TP_c / S_c   (0 when S_c = 0)
    ```

    Args:
        class_id: Int >= 0, the class to report.
        num_classes: Optional int >= 2, default None (inferred from
            `y_pred`, see `BalancedAccuracy`).
        threshold: Float, default 0.5. Used only when `y_pred` has one
            unit (a sigmoid head): the predicted class is
            `y_pred > threshold`, and the head counts as two classes. Use
            0.0 when that unit outputs logits.
        ignore_class: Optional int, default None. Positions whose true
            class id equals it are skipped (segmentation voids such as 255,
            padding such as -1).
        name: String, the name in Keras' logs, default
            `f"recall_{class_id}"`.
        dtype: Dtype of the state, default `keras.backend.floatx()`.

    Returns:
        `result()`: a scalar tensor in [0, 1].

    Raises:
        TypeError, ValueError: For bad arguments, or a `class_id` >=
            `num_classes`.

    Example:

    >>> from keras_cbloss import PerClassRecall
    >>> m = PerClassRecall(0)
    >>> m.update_state([0, 0, 0, 1], [[0.9, 0.1], [0.8, 0.2],
    ...                               [0.3, 0.7], [0.2, 0.8]])
    >>> m.name, round(float(m.result()), 4)
    ('recall_0', 0.6667)

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555.
    """

    def __init__(self, class_id, num_classes=None, *, threshold=0.5,
                 ignore_class=None, name=None, dtype=None):
        self._class_id = _check_class_id(class_id, "class_id")
        super().__init__(num_classes, threshold=threshold,
                         ignore_class=ignore_class,
                         name=name or f"recall_{self._class_id}", dtype=dtype)

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

    Args:
        shot: `"many"`, `"medium"` or `"few"`.
        class_counts: Optional 1-D sequence of training counts, default
            None (set later). Its length is the number of classes.
        many_threshold: Float, default 100.
        few_threshold: Float, default 20. For OLTR's groups (>= 100,
            <= 20) see `shot_groups`.
        threshold: Float, default 0.5. Used only when `y_pred` has one
            unit (a sigmoid head): the predicted class is
            `y_pred > threshold`, and the head counts as two classes. Use
            0.0 when that unit outputs logits.
        ignore_class: Optional int, default None. Positions whose true
            class id equals it are skipped (segmentation voids such as 255,
            padding such as -1).
        name: String, the name in Keras' logs, default
            `f"{shot}_shot_accuracy"`.
        dtype: Dtype of the state, default `keras.backend.floatx()`.

    Returns:
        `result()`: a scalar tensor in [0, 1].

    Raises:
        TypeError, ValueError: For bad arguments; `result()` raises a
            ValueError while the counts are unset.

    Example:

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

    def __init__(self, shot, class_counts=None, *, many_threshold=100,
                 few_threshold=20, threshold=0.5, ignore_class=None,
                 name=None, dtype=None):
        self._shot = _check_shot(shot)
        self._many_threshold, self._few_threshold = _check_shot_thresholds(
            many_threshold, few_threshold)
        counts = None if class_counts is None else check_counts(class_counts)
        super().__init__(None if counts is None else len(counts),
                         threshold=threshold, ignore_class=ignore_class,
                         name=name or f"{shot}_shot_accuracy", dtype=dtype)
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
        groups = shot_groups(self._class_counts, self._many_threshold,
                             self._few_threshold)
        return self._mean_recall(ops.convert_to_tensor(groups[self._shot]))

    def get_config(self):
        config = super().get_config()
        config.pop("num_classes")  # implied by the counts
        counts = self._class_counts
        config.update(
            shot=self._shot,
            class_counts=None if counts is None else counts.tolist(),
            many_threshold=self._many_threshold,
            few_threshold=self._few_threshold)
        return config
