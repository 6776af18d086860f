"""How the metrics read a batch: labels, predictions, weights, Keras mask.

Built on the label front end of `_labels.py` (label form, string check,
ignore masks, value checks); this module adds what only the metrics need:
the Keras mask of `y_pred` (as `keras.metrics.MeanMetricWrapper` reads it),
`sample_weight` broadcast to positions or entries, and the flattening of any
layout (per-pixel maps, per-token sequences) into rows.

Two readings:

- `read_classes` (single-label metrics): one class per position. Rows
  `[N]` of true ids, predicted ids and weights.
- `read_entries` (`multi_label=True` and average precision): C binary
  labels per position. Rows `[N, C]` of 0/1 targets, scores and weights.

Skipped positions or entries (the Keras mask, `ignore_class`, unlabelled
all-zero rows, zero `sample_weight`) get weight 0. Labels with unusable
values raise a ValueError when values can be seen; in compiled code the
returned `invalid` count is positive and the metrics turn it into NaN.
"""

from typing import NamedTuple

from keras import ops

from keras_cbloss._labels import _binary_entries
from keras_cbloss._labels import _check_not_strings
from keras_cbloss._labels import _dense_row_ids
from keras_cbloss._labels import _ignored
from keras_cbloss._labels import _is_sparse
from keras_cbloss._labels import _sparse_labels


class Rows(NamedTuple):
    """A batch as flat rows; `weight` is 0 at skipped positions/entries.

    `read_classes`: `true` and `pred` are int32 class ids `[N]`, `weight`
    is `[N]`. `read_entries`: `true` is float 0/1 `[N, C]`, `pred` the
    scores `[N, C]` (0 where the weight is 0), `weight` is `[N, C]`.
    `invalid` is the number of kept labels with unusable values (a float
    scalar; always 0 when values could be seen, since those raise).
    """

    true: object
    pred: object
    weight: object
    invalid: object


def check_predictions(y_pred):
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) < 2:
        raise ValueError(
            "Invalid predictions. Expected y_pred with a class axis last, "
            "[batch, ..., C]; a one-unit sigmoid head keeps its unit axis, "
            f"[batch, 1]. Received: y_pred.shape={tuple(y_pred.shape)}. "
            "Expand the last axis (e.g. `y_pred[:, None]`)."
        )
    return y_pred


def _broadcast_weight(value, name, shape_of, rank, dtype):
    """`value` (sample_weight or mask) as a weight broadcast to `shape_of`.

    Aligned on the leading axes, as in Keras: trailing axes of size 1
    beyond `rank` are dropped, missing trailing axes are added.
    """
    weight = ops.cast(value, dtype)
    while len(weight.shape) > rank and weight.shape[-1] == 1:
        weight = ops.squeeze(weight, axis=-1)
    if len(weight.shape) > rank:
        raise ValueError(
            f"Invalid `{name}`. Expected a shape that broadcasts to the "
            f"positions (y_pred.shape[:-1]) from the leading axes. Received: "
            f"{name}.shape={tuple(weight.shape)}, "
            f"positions of shape {tuple(shape_of.shape[:rank])}"
        )
    while len(weight.shape) < len(shape_of.shape):
        weight = ops.expand_dims(weight, -1)
    return ops.ones_like(shape_of, dtype=dtype) * weight


def _weights(sample_weight, mask, like, rank, dtype):
    """Product of `sample_weight` and the Keras mask, of `like`'s shape."""
    weight = ops.ones_like(like, dtype=dtype)
    if sample_weight is not None:
        weight = weight * _broadcast_weight(
            sample_weight, "sample_weight", like, rank, dtype
        )
    if mask is not None:
        weight = weight * _broadcast_weight(mask, "mask", like, rank, dtype)
    return weight


def _one_unit_targets(y_true, y_pred):
    """The targets of a one-unit head `[..., 1]`, as `[...]`."""
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
        return ops.squeeze(y_true, axis=-1)
    if len(y_true.shape) == len(y_pred.shape) - 1:
        return y_true
    raise ValueError(
        "Labels and predictions do not match. A one-unit head takes one "
        "0/1 label per position: y_true of shape y_pred.shape[:-1] or "
        f"y_pred.shape. Received: y_true.shape={tuple(y_true.shape)}, "
        f"y_pred.shape={tuple(y_pred.shape)}"
    )


def _sparse_ids(y_true, y_pred, keep, num_classes):
    """Ids (and their masks) of sparse labels `[...]` or `[..., 1]`."""
    if len(y_true.shape) == len(y_pred.shape):
        y_true = ops.squeeze(y_true, axis=-1)
        keep = None if keep is None else ops.squeeze(keep, axis=-1)
    ids, valid = _sparse_labels(y_true, num_classes, keep)
    return ids, keep, valid


def _invalid_count(valid, dtype):
    return ops.sum(ops.cast(ops.logical_not(valid), dtype))


def _usable(keep, valid):
    return valid if keep is None else ops.logical_and(keep, valid)


def read_classes(
    y_true,
    y_pred,
    sample_weight,
    mask,
    threshold,
    ignore_class,
    num_classes,
    dtype,
):
    """One class per position: true and predicted ids, weights `[N]`.

    `mask` is the Keras mask of `y_pred` (read by the caller before any
    conversion drops it), or None.

    Sparse ids `[...]`/`[..., 1]`, one-hot or soft rows `[..., C]` (an
    all-zero row is unlabelled and skipped; a multi-hot row is invalid), or
    0/1 labels of a one-unit head `[..., 1]` (classes 0 and 1, predicted as
    `y_pred > threshold`). Other heads predict the argmax.
    """
    _check_not_strings(y_true)
    y_pred = check_predictions(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    if y_pred.shape[-1] == 1:
        y_true = _one_unit_targets(y_true, y_pred)
        keep = _ignored(y_true, ignore_class)
        ids, valid = _sparse_labels(y_true, 2, keep)
        pred = ops.cast(ops.squeeze(y_pred > threshold, axis=-1), "int32")
    else:
        keep = _ignored(y_true, ignore_class)
        if _is_sparse(y_true.shape, y_pred.shape):
            ids, keep, valid = _sparse_ids(y_true, y_pred, keep, num_classes)
        else:
            ids, keep, valid = _dense_row_ids(y_true, keep)
        pred = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
    rank = len(y_pred.shape) - 1
    weight = _weights(sample_weight, mask, ids, rank, dtype)
    weight = ops.where(_usable(keep, valid), weight, ops.zeros_like(weight))
    return Rows(
        true=ops.reshape(ids, [-1]),
        pred=ops.reshape(pred, [-1]),
        weight=ops.reshape(weight, [-1]),
        invalid=_invalid_count(valid, dtype),
    )


def read_entries(y_true, y_pred, sample_weight, mask, ignore_class, dtype):
    """C binary labels per position: targets, scores, weights `[N, C]`.

    Dense 0/1 entries `[..., C]` (an entry equal to `ignore_class` is
    unknown and skipped on its own), sparse ids `[...]`/`[..., 1]` (one-hot
    rows; `ignore_class` skips the position), or the 0/1 labels of a
    one-unit head (one label). `sample_weight` and the Keras mask weight
    positions, or entries when they have y_pred's full shape.
    """
    _check_not_strings(y_true)
    y_pred = check_predictions(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    num_labels = y_pred.shape[-1]
    keep = _ignored(y_true, ignore_class)
    if num_labels == 1:
        if len(y_true.shape) == len(y_pred.shape) - 1:
            y_true = ops.expand_dims(y_true, -1)
            keep = None if keep is None else ops.expand_dims(keep, -1)
        elif len(y_true.shape) != len(y_pred.shape) or y_true.shape[-1] != 1:
            _one_unit_targets(y_true, y_pred)  # raises the shape error
        target, valid = _binary_entries(y_true, keep)
    elif _is_sparse(y_true.shape, y_pred.shape):
        ids, keep, valid = _sparse_ids(y_true, y_pred, keep, num_labels)
        target = ops.one_hot(ids, num_labels, dtype="float32")
        # The position's label decides all C entries at once.
        keep = None if keep is None else ops.expand_dims(keep, -1)
        valid = ops.expand_dims(valid, -1)
    else:
        target, valid = _binary_entries(y_true, keep)
    scores = ops.cast(y_pred, dtype)
    weight = _weights(sample_weight, mask, scores, len(y_pred.shape), dtype)
    usable = _usable(keep, valid)
    weight = ops.where(usable, weight, ops.zeros_like(weight))
    # A padded position may hold any score, NaN included: it must not reach
    # the sort of the average precision.
    scores = ops.where(weight > 0, scores, ops.zeros_like(scores))
    rows = [-1, num_labels]
    return Rows(
        true=ops.reshape(ops.cast(target, dtype), rows),
        pred=ops.reshape(scores, rows),
        weight=ops.reshape(weight, rows),
        invalid=_invalid_count(valid, dtype),
    )
