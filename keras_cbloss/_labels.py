"""The label front end shared by every loss (and the metrics' label checks).

It owns what happens to `(y_true, y_pred)` before a per-sample formula runs:
the label form (sparse ids, dense `[..., C]` rows, a one-unit binary head),
string-label and shape checks, the compute dtype of 16-bit inputs, the
ignore masks of `ignore_class`, the validation of label values (an error
when values can be seen, NaN in compiled code) and, after the formula,
`_finish`, which drops ignored positions and sets the Keras mask that
`keras.losses.Loss.__call__` reads.
"""

from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from keras_cbloss._compat import executing_eagerly
from keras_cbloss._compat import set_keras_mask

_SIXTEEN_BIT = ("float16", "bfloat16")
# A soft row (label smoothing, mixup) sums to 1 up to the rounding of its
# dtype: float16 entries carry about 5e-4 relative error each (bfloat16 4e-3
# relative). A multi-hot row sums to 2 or more, a row with one positive to 1.
_ROW_SUM_TOLERANCE = 1e-2


# --------------------------------------------------------------------------
# Helpers shared by the loss functions.
# --------------------------------------------------------------------------


class _Inputs(NamedTuple):
    """The loss functions' inputs after `_prepare`.

    Exactly one of `labels` (int32 class ids `[...]`) and `target` (float
    targets: dense rows `[..., C]`, or `[..., 1]` for a one-unit head) is
    set. `valid` marks positions whose label can be used (`None` when every
    label can); `keep` marks positions whose label is not `ignore_class`
    (`None` without `ignore_class`): for dense rows, the positions with at
    least one known entry. `known` marks the entries `[..., C]` of dense
    rows that are not `ignore_class` (`None` otherwise); `target` is 0 at
    the others.
    """

    labels: object
    target: object
    valid: object
    keep: object
    known: object
    y_pred: object
    weights: object
    out_dtype: str
    binary_head: bool


def _compute_dtype(dtype):
    # exp/log in bfloat16 keep about 3 significant digits, and float16
    # overflows at 65504, so 16-bit inputs are evaluated in float32 and the
    # result is cast back.
    return "float32" if dtype in _SIXTEEN_BIT else dtype


def _check_not_strings(y_true):
    """Raises a TypeError for string labels (known before any tracing)."""
    dtype = getattr(y_true, "dtype", None)
    if dtype is None:
        if not isinstance(y_true, (list, tuple, str, bytes)):
            return
        dtype = np.asarray(y_true).dtype
    name = getattr(dtype, "name", str(dtype))
    kind = getattr(dtype, "kind", "")
    if kind in ("U", "S", "O") or name == "string":
        raise TypeError(
            "Invalid type for argument `y_true`. Expected numeric labels "
            "(class ids, or one-hot / 0-1 targets). Received labels of dtype "
            f"{name}. Map string labels to class ids first, e.g. with "
            "`keras.layers.StringLookup(vocabulary=class_names, "
            "num_oov_indices=0)` in the input pipeline."
        )


def _is_sparse(y_true_shape, y_pred_shape):
    """True for class-id labels, False for dense `[..., C]` labels."""
    true_rank, pred_rank = len(y_true_shape), len(y_pred_shape)
    if true_rank == pred_rank - 1:
        return True
    if true_rank == pred_rank:
        last, num_classes = y_true_shape[-1], y_pred_shape[-1]
        if last == 1 and num_classes != 1:
            return True
        if last is None or num_classes is None or last == num_classes:
            return False
    raise ValueError(
        "Labels and predictions do not match. Expected sparse class ids of "
        "shape y_pred.shape[:-1] (or with a trailing 1), or dense labels of "
        f"shape y_pred.shape. Received: y_true.shape={tuple(y_true_shape)}, "
        f"y_pred.shape={tuple(y_pred_shape)}"
    )


def _check_num_classes(y_pred, class_weights, what="class weights"):
    num_classes = y_pred.shape[-1]
    num_weights = class_weights.shape[0]
    if num_classes == 1 and num_weights != 2:
        raise ValueError(
            "A one-unit head (y_pred.shape[-1] == 1) is a binary problem "
            "with two classes, negative (0) and positive (1). Pass two "
            "counts, `class_counts=[n_neg, n_pos]` (or two weights, "
            "`class_weights=[w_neg, w_pos]`). Received "
            f"{num_weights} class weight(s) for y_pred.shape="
            f"{tuple(y_pred.shape)}"
        )
    if num_classes not in (None, 1) and num_classes != num_weights:
        raise ValueError(
            f"The predictions have {num_classes} classes (y_pred.shape="
            f"{tuple(y_pred.shape)}) but there are {num_weights} "
            f"{what} (one per class count). Pass one count per output "
            "unit of the model."
        )


def _weights_tensor(class_weights, dtype):
    if isinstance(class_weights, (list, tuple, np.ndarray)):
        # Keras would keep a float64 NumPy array as float64 on TF and torch;
        # convert explicitly so the loss stays in the prediction dtype.
        class_weights = np.asarray(class_weights, dtype=np.float64)
        if class_weights.ndim != 1:
            raise ValueError(
                "Invalid value for argument `class_weights`. Expected a 1-D "
                f"array of per-class weights. Received shape "
                f"{class_weights.shape}"
            )
    return ops.convert_to_tensor(class_weights, dtype=dtype)


def _ignored(y_true, ignore_class):
    """Boolean mask of the positions to keep, or `None`."""
    if ignore_class is None:
        return None
    if "int" in str(y_true.dtype):
        # uint8 masks would turn ignore_class=-1 into 255.
        y_true = ops.cast(y_true, "int32")
    return ops.not_equal(y_true, ops.cast(ignore_class, y_true.dtype))


def _raise_if_invalid(
    y_true, valid, expected, advice=None, kind="sparse labels"
):
    """Raises for unusable labels when their values can be inspected.

    In compiled code such labels give a NaN loss instead (`_finish`), so
    that training fails visibly instead of silently using a wrong class.
    `valid` has `y_true`'s shape; `advice` ends the message (default: check
    the encoding or pass dense labels).
    """
    if not executing_eagerly(valid) or bool(ops.all(valid)):
        return
    bad = _bad_values(y_true, valid)
    if advice is None:
        advice = "Check the label encoding, or pass dense (one-hot) labels."
    raise ValueError(
        f"Invalid {kind}. Expected {expected}. Received values "
        f"{bad[:10]}{' ...' if len(bad) > 10 else ''}. {advice}"
    )


def _bad_values(y_true, valid):
    """The values of `y_true` where `valid` is False, as Python numbers."""
    bad = ops.convert_to_numpy(y_true)[~ops.convert_to_numpy(valid)]
    # Keras hands labels over as floats; show integral ids as ints.
    return [int(v) if float(v).is_integer() else float(v) for v in bad]


def _sparse_labels(y_true, num_classes, keep):
    """Class ids as int32 plus a mask of the ids that are usable.

    Ids outside [0, C) and non-integral floats are unusable, unless the
    position is ignored (`keep` is False there).
    """
    floating = "float" in str(y_true.dtype)
    labels = ops.cast(y_true, "int32")
    valid = ops.logical_and(labels >= 0, labels < num_classes)
    if floating:
        valid = ops.logical_and(valid, ops.equal(y_true, ops.floor(y_true)))
    if keep is not None:
        valid = ops.logical_or(valid, ops.logical_not(keep))
    _raise_if_invalid(y_true, valid, f"integer class ids in [0, {num_classes})")
    usable = valid if keep is None else ops.logical_and(valid, keep)
    safe_labels = ops.where(usable, labels, ops.zeros_like(labels))
    return safe_labels, valid


def _binary_targets(y_true, y_pred, keep):
    """Targets `[..., 1]` in [0, 1] of a one-unit head, and their mask."""
    if len(y_true.shape) == len(y_pred.shape) - 1:
        y_true = ops.expand_dims(y_true, -1)
        keep = None if keep is None else ops.expand_dims(keep, -1)
    elif len(y_true.shape) != len(y_pred.shape) or y_true.shape[-1] != 1:
        raise ValueError(
            "Labels and predictions do not match. A one-unit head takes one "
            "0/1 (or soft) target per position: y_true of shape "
            "y_pred.shape[:-1] or y_pred.shape. Received: "
            f"y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    target = ops.cast(y_true, y_pred.dtype)
    valid = ops.logical_and(target >= 0, target <= 1)
    if keep is not None:
        valid = ops.logical_or(valid, ops.logical_not(keep))
    _raise_if_invalid(
        y_true,
        valid,
        "0/1 or soft targets in [0, 1]",
        kind="targets of a one-unit head",
        advice="A one-unit output takes 0/1 (or soft in [0, 1]) targets; "
        "for C > 2 classes, give the model C output units (one per class) "
        "and pass class ids in [0, C).",
    )
    usable = valid if keep is None else ops.logical_and(valid, keep)
    safe_target = ops.where(usable, target, ops.zeros_like(target))
    # The losses are per position, `[...]`: drop the unit axis of the masks.
    valid = ops.squeeze(valid, axis=-1)
    keep = None if keep is None else ops.squeeze(keep, axis=-1)
    return safe_target, valid, keep


def _check_prediction_rank(y_pred):
    """Raises for predictions without a class axis (`[B]`, or a scalar).

    A rank-1 `y_pred` is most often a squeezed one-unit head; read as
    `[..., C]` it would be one sample of B classes (for B = 2 a plausible,
    wrong value), so it is refused rather than guessed.
    """
    shape = tuple(ops.shape(y_pred))
    if len(shape) >= 2:
        return
    raise ValueError(
        "Invalid shape for argument `y_pred`. Expected predictions of shape "
        "[..., C], with a batch axis and the class axis last. Received: "
        f"y_pred.shape={shape}. A one-unit binary head outputs [B, 1]: keep "
        "the unit axis (do not squeeze the `Dense(1)` output, or pass "
        "`keras.ops.expand_dims(y_pred, -1)`); its targets may stay [B]. "
        "For a single sample of C classes, add the batch axis: [1, C]."
    )


def _check_sample_weight_shape(sample_weight, y_pred):
    """Raises for a per-entry `sample_weight` `[..., C]` (C > 1).

    The losses give one value per position, summed over the classes, so a
    sample weight weighs positions; Keras would fail on `[B, C]` with
    "Incompatible shapes". Unknown entries go through `ignore_class`.
    """
    weight_shape = getattr(sample_weight, "shape", None)
    weight_shape = tuple(
        np.shape(sample_weight) if weight_shape is None else weight_shape
    )
    pred_shape = tuple(ops.shape(y_pred))
    if (
        len(weight_shape) != len(pred_shape)
        or not pred_shape
        or pred_shape[-1] in (None, 1)
        or weight_shape[-1] != pred_shape[-1]
    ):
        return
    raise ValueError(
        "Invalid shape for argument `sample_weight`. The loss gives one "
        "value per sample (or position), summed over the classes, so "
        "`sample_weight` weighs samples: expected the shape "
        f"y_pred.shape[:-1] = {pred_shape[:-1]}. Received: "
        f"sample_weight.shape={weight_shape}. To leave unknown entries of "
        "multi-label targets out of the loss, mark them with a value "
        "outside [0, 1] (e.g. -1) and pass `ignore_class=-1`."
    )


def _align_sample_weight(sample_weight, y_pred):
    """`sample_weight` aligned with the positions `y_pred.shape[:-1]` from
    the leading axes.

    Keras aligns a sample weight with the per-position losses from the last
    axis (NumPy broadcasting) and adds at most one axis, so a per-sample
    weight `[B]` of per-pixel losses `[B, H, W]` would meet the W axis:
    an error, or, when B == W, silently the wrong weights. A weight of
    lower rank (a scalar too) is broadcast here to the positions, as the
    metrics align it; on PyTorch this also keeps Keras' in-place multiply
    by the mask (`apply_mask`) from failing on a weight smaller than the
    mask. Other weights are returned as they are.
    """
    shape = getattr(sample_weight, "shape", None)
    if shape is None:
        shape = np.shape(sample_weight)
    missing = len(ops.shape(y_pred)) - 1 - len(shape)
    if missing <= 0:
        return sample_weight
    weight = ops.convert_to_tensor(sample_weight)
    for _ in range(missing):
        weight = ops.expand_dims(weight, -1)
    positions = ops.convert_to_tensor(y_pred)[..., 0]
    return weight * ops.ones_like(positions, dtype=weight.dtype)


def _prepare(
    y_true,
    y_pred,
    class_weights,
    ignore_class=None,
    what="class weights",
    softmax=None,
):
    """Shared front end: casts, label form, class weights and checks.

    `class_weights` is the loss's per-class vector (`what` names it in
    errors): the class weights, or the log prior of the logit-adjusted loss.
    `softmax`, the name of a softmax loss for its messages (None for the
    sigmoid losses), makes dense rows one class each: rows of which only
    some entries are `ignore_class`, and multi-hot rows, are unusable.
    """
    _check_not_strings(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    _check_prediction_rank(y_pred)
    out_dtype = keras.backend.standardize_dtype(y_pred.dtype)
    dtype = _compute_dtype(out_dtype)
    y_pred = ops.cast(y_pred, dtype)
    weights = _weights_tensor(class_weights, dtype)
    _check_num_classes(y_pred, weights, what)
    y_true = ops.convert_to_tensor(y_true)
    keep = _ignored(y_true, ignore_class)
    inputs = dict(
        labels=None,
        target=None,
        valid=None,
        keep=keep,
        known=None,
        y_pred=y_pred,
        weights=weights,
        out_dtype=out_dtype,
        binary_head=y_pred.shape[-1] == 1,
    )
    if inputs["binary_head"]:
        target, valid, keep = _binary_targets(y_true, y_pred, keep)
        inputs.update(target=target, valid=valid, keep=keep)
    elif _is_sparse(y_true.shape, y_pred.shape):
        # Only the `[..., 1]` form has a trailing 1 to drop: ids of shape
        # y_pred.shape[:-1] may end in 1 themselves (a batch of one sample,
        # a sequence of length 1).
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
            keep = None if keep is None else ops.squeeze(keep, axis=-1)
        labels, valid = _sparse_labels(y_true, weights.shape[0], keep)
        inputs.update(labels=labels, valid=valid, keep=keep)
    else:
        inputs.update(
            _dense_targets(y_true, dtype, keep, ignore_class, softmax)
        )
    return _safe_predictions(_Inputs(**inputs))


def _dense_targets(y_true, dtype, known, ignore_class, softmax):
    """Dense rows `[..., C]`: targets in [0, 1] and their masks.

    An entry equal to `ignore_class` (`known` is False there) is unknown:
    its target becomes 0 and the loss functions leave it out. A position
    whose entries are all unknown is left out as a whole (`keep`). Targets
    outside [0, 1] are unusable (`valid`), as are (with `softmax`, the
    loss's name) rows of which only some entries are unknown and multi-hot
    rows. Returns the `_Inputs` fields.
    """
    if ignore_class is not None and 0 <= ignore_class <= 1:
        raise ValueError(
            "Invalid value for argument `ignore_class`. With dense targets "
            "[..., C] it marks unknown entries, so it must lie outside the "
            "target range [0, 1] (otherwise every entry equal to "
            f"{ignore_class} would be unknown). Received: "
            f"ignore_class={ignore_class}. Mark unknown entries with a "
            "value such as -1 and pass `ignore_class=-1`, or pass sparse "
            "class ids to skip a class id."
        )
    target = ops.cast(y_true, dtype)
    keep = None
    if known is not None:
        target = ops.where(known, target, ops.zeros_like(target))
        keep = ops.any(known, axis=-1)
    valid = _in_unit_range(y_true, target, ignore_class)
    if softmax and known is not None:
        complete = ops.logical_or(
            ops.all(known, axis=-1), ops.logical_not(keep)
        )
        _raise_if_incomplete(y_true, complete, ignore_class)
        valid = ops.logical_and(valid, complete)
    if softmax:
        valid = ops.logical_and(valid, _single_label_rows(target, softmax))
    return dict(target=target, valid=valid, keep=keep, known=known)


def _single_label_rows(target, loss_name):
    """Marks dense rows that sum to at most 1: not multi-hot.

    A softmax takes one class per row: a one-hot row, or a soft row (label
    smoothing, mixup) that sums to 1; an all-zero row carries no loss.
    Raises for rows with several positives when values can be seen; in
    compiled code they give a NaN loss (`_finish`).
    """
    row_sums = ops.sum(target, axis=-1)
    single = row_sums <= 1.0 + _ROW_SUM_TOLERANCE
    if executing_eagerly(single) and not bool(ops.all(single)):
        sums = ops.convert_to_numpy(row_sums)[~ops.convert_to_numpy(single)]
        raise ValueError(
            f"Invalid dense targets for {loss_name}. A softmax over the "
            "classes takes one class per row (one-hot, or soft targets "
            "summing to 1); multi-hot rows (several positive classes) have "
            f"no meaning there. Received {len(sums)} row(s) summing to "
            f"{[round(float(v), 4) for v in sums[:10]]}. For multi-label "
            "targets use `CBSigmoidLoss` or `CBFocalLoss` (e.g. with "
            '`weighting="class"`), one binary problem per class; to share '
            "one softmax target among a row's classes, divide each row by "
            "its sum (soft targets)."
        )
    return single


def _in_unit_range(y_true, target, ignore_class):
    """Marks rows `[...]` whose targets all lie in [0, 1]; raises eagerly.

    Compiled code (every training step) compares the row minimum and
    maximum: measured cheaper than reducing an elementwise mask, under XLA
    and `tf.function` alike. A NaN may escape the two reductions, but a NaN
    target makes the loss NaN by itself. Eager calls build the mask, to
    name the bad values.
    """
    if not executing_eagerly(target) and 0 not in target.shape:
        return ops.logical_and(
            ops.min(target, axis=-1) >= 0, ops.max(target, axis=-1) <= 1
        )
    in_range = ops.logical_and(target >= 0, target <= 1)
    if executing_eagerly(in_range) and not bool(ops.all(in_range)):
        _raise_if_invalid(
            y_true,
            in_range,
            "one-hot, multi-hot or soft targets in [0, 1]",
            kind="dense targets",
            advice=_dense_advice(_bad_values(y_true, in_range), ignore_class),
        )
    return ops.all(in_range, axis=-1)


def _dense_advice(bad, ignore_class):
    """The end of the message for dense targets outside [0, 1]."""
    marker = "that value"
    if len(set(bad)) == 1 and isinstance(bad[0], int):
        marker = str(bad[0])
    if ignore_class is not None:
        return (
            f"Only entries equal to `ignore_class={ignore_class}` may "
            "lie outside [0, 1]; check the label encoding."
        )
    return (
        "If a value marks unknown entries (e.g. -1 for a missing label), "
        f"pass `ignore_class={marker}`: `CBSigmoidLoss` and `CBFocalLoss` "
        "leave each such entry out of the loss, and the softmax losses "
        "leave out rows made only of it."
    )


def _raise_if_incomplete(y_true, complete, ignore_class):
    """Raises (when values can be seen) for partly unknown softmax rows."""
    if not executing_eagerly(complete) or bool(ops.all(complete)):
        return
    rows = ops.convert_to_numpy(y_true)[~ops.convert_to_numpy(complete)]
    raise ValueError(
        "Invalid dense targets for a softmax loss. A row with some entries "
        f"equal to `ignore_class={ignore_class}` is not a distribution over "
        "the classes, so its softmax cross-entropy is undefined. Received "
        f"{len(rows)} such row(s), e.g. {rows[0].tolist()}. For targets "
        "with unknown entries use `CBSigmoidLoss` or `CBFocalLoss` (one "
        "binary problem per class), which leave each unknown entry out; a "
        "softmax loss leaves out only rows made entirely of `ignore_class`."
    )


def _safe_predictions(inputs):
    """Replaces predictions at ignored positions (or entries) by a constant.

    The loss there is dropped by `_finish`; replacing the inputs too (as
    Keras' `sparse_categorical_crossentropy` does) keeps a NaN or inf that a
    model may output at a padded position out of the gradient.
    """
    if inputs.keep is None:
        return inputs
    # Dense rows mask each unknown entry; other forms a whole position.
    keep = inputs.known
    if keep is None:
        keep = ops.expand_dims(inputs.keep, -1)
    safe = ops.where(keep, inputs.y_pred, ops.full_like(inputs.y_pred, 0.5))
    return inputs._replace(y_pred=safe)


def _finish(loss, inputs):
    """Drops ignored positions, marks unusable labels with NaN, casts back.

    Ignored positions get loss 0 and are left out of the mask that Keras'
    `Loss.__call__` reads, so that `sum_over_batch_size` averages over the
    labelled positions only (as with Keras' `ignore_class`).
    """
    if inputs.valid is not None:
        loss = ops.where(inputs.valid, loss, ops.full_like(loss, np.nan))
    if inputs.keep is not None:
        loss = ops.where(inputs.keep, loss, ops.zeros_like(loss))
    loss = ops.cast(loss, inputs.out_dtype)
    if inputs.keep is not None:
        set_keras_mask(loss, inputs.keep)
    return loss


def _class_mask(labels, num_classes):
    """Boolean one-hot rows `[..., C]` for valid int32 class ids."""
    # Compared as float32 where that is exact: XLA on CPU vectorises a float
    # comparison with the class index much better than an int32 one (the
    # fused sparse sigmoid loss runs about 1.3x faster on JAX).
    compare = "float32" if num_classes <= 2**24 else "int32"
    ids = ops.expand_dims(ops.cast(labels, compare), -1)
    return ops.equal(ids, ops.arange(num_classes, dtype=compare))


def _sample_weights(target, labels, weights, binary_head):
    """Each position's weight under `weighting="sample"`, `[...]`.

    `w[y]` for sparse ids, `t @ w` for dense rows (a multi-hot row sums
    the weights of its classes). A one-unit head weights its single term
    by (1 - t) * w_0 + t * w_1: its two classes are the two sides of the
    one unit, so both `weighting` modes give this.
    """
    if binary_head:
        target = ops.squeeze(target, axis=-1)
        return (1.0 - target) * weights[0] + target * weights[1]
    if labels is not None:
        return ops.take(weights, labels)
    return ops.matmul(target, weights)


# --------------------------------------------------------------------------
# Dense labels as the metrics read them (additive: the losses do not use
# these). Dense rows `[..., C]` are either one class per position (one-hot
# or soft rows, for the single-label metrics) or C binary entries (0/1 with
# unknown entries, for `multi_label=True` and average precision).
# --------------------------------------------------------------------------


def _raise_if_invalid_rows(y_true, valid, expected, advice):
    """Raises for unusable dense rows when values can be inspected."""
    if not executing_eagerly(valid) or bool(ops.all(valid)):
        return
    rows = ops.convert_to_numpy(y_true)[~ops.convert_to_numpy(valid)]
    shown = [
        [
            int(v) if float(v).is_integer() else round(float(v), 4)
            for v in row[:8]
        ]
        + (["..."] if len(row) > 8 else [])
        for row in rows[:3]
    ]
    raise ValueError(
        f"Invalid labels. Expected {expected}. Received {len(rows)} "
        f"row(s) that are not, e.g. {shown}. {advice}"
    )


def _dense_row_ids(y_true, keep):
    """Class ids of dense single-label rows `[..., C]` (one-hot or soft).

    A row is one position's class distribution: entries in [0, 1] summing
    to 1, and its class is the argmax. An all-zero row is an unlabelled
    position (a void pixel of a one-hot map) and is not kept, never class
    0. A row with more than one positive (multi-hot) or a sum other than 1
    is invalid: a ValueError when values can be seen. `keep` marks known
    entries (`_ignored`); a row with an unknown entry is not kept.

    Returns `(ids, kept, valid)`: int32 ids `[...]` (0 where not usable),
    the rows to count, and the rows whose values are usable (True where not
    kept, so that `~valid` marks exactly the invalid kept rows).
    """
    rows = ops.cast(y_true, "float32")
    row_kept = None if keep is None else ops.all(keep, axis=-1)
    row_sum = ops.sum(rows, axis=-1)
    in_range = ops.all(ops.logical_and(rows >= 0, rows <= 1), axis=-1)
    labelled = ops.logical_not(ops.equal(row_sum, 0.0))
    sums_to_one = ops.abs(row_sum - 1.0) <= _ROW_SUM_TOLERANCE
    valid = ops.logical_and(
        in_range, ops.logical_or(sums_to_one, ops.logical_not(labelled))
    )
    kept = labelled if row_kept is None else ops.logical_and(labelled, row_kept)
    if row_kept is not None:
        valid = ops.logical_or(valid, ops.logical_not(row_kept))
    _raise_if_invalid_rows(
        y_true,
        valid,
        "one class per position: one-hot or soft rows of y_true that sum to "
        "1 (or all-zero rows for unlabelled positions)",
        "A row with several positives is multi-label: pass "
        "`multi_label=True` to score each label as its own binary problem.",
    )
    usable = ops.logical_and(kept, valid)
    ids = ops.cast(ops.argmax(rows, axis=-1), "int32")
    return ops.where(usable, ids, ops.zeros_like(ids)), kept, valid


def _binary_entries(y_true, keep):
    """0/1 targets of dense multi-label entries `[..., C]`.

    Each entry is its own binary label: 0 or 1, or unknown where `keep`
    (`_ignored`) is False. Any other value (a soft target, a -1 without
    `ignore_class=-1`) is invalid: a ValueError when values can be seen.

    Returns `(target, valid)`: float32 targets (0 where not usable) and the
    entries whose values are usable (True at unknown entries).
    """
    target = ops.cast(y_true, "float32")
    valid = ops.logical_or(ops.equal(target, 0.0), ops.equal(target, 1.0))
    if keep is not None:
        valid = ops.logical_or(valid, ops.logical_not(keep))
    if executing_eagerly(valid) and not bool(ops.all(valid)):
        bad = ops.convert_to_numpy(target)[~ops.convert_to_numpy(valid)]
        shown = sorted(
            {int(v) if float(v).is_integer() else float(v) for v in bad}
        )
        raise ValueError(
            "Invalid multi-label targets. Expected 0/1 entries (or the "
            "`ignore_class` value for unknown entries). Received values "
            f"{shown[:10]}{' ...' if len(shown) > 10 else ''}. Mark unknown "
            "entries with one value and pass it as `ignore_class` (e.g. "
            "`ignore_class=-1`); threshold soft targets first."
        )
    usable = valid if keep is None else ops.logical_and(valid, keep)
    return ops.where(usable, target, ops.zeros_like(target)), valid
