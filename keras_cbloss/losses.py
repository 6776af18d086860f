"""Class-balanced softmax, sigmoid and focal losses for Keras 3.

Each loss is a pair, as in Keras: a function that returns per-position
losses from `(y_true, y_pred, class_weights)`, and a `keras.losses.Loss`
subclass that validates and stores the hyperparameters, turns class counts
into weights once, and leaves reduction, masks and `sample_weight` to
`keras.losses.Loss.__call__`.

Labels may be sparse class ids (`[...]` or `[..., 1]`) or dense
(`[..., C]`: one-hot, multi-hot or soft); predictions are `[..., C]`
(a batch of vectors, or per-pixel maps such as `[B, H, W, C]`).
"""

import warnings
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from keras_cbloss import _kernels
from keras_cbloss._compat import executing_eagerly
from keras_cbloss._compat import in_symbolic_scope
from keras_cbloss._compat import set_keras_mask
from keras_cbloss._validation import check_beta
from keras_cbloss._validation import check_bool
from keras_cbloss._validation import check_counts
from keras_cbloss._validation import check_gamma
from keras_cbloss._validation import check_ignore_class
from keras_cbloss._validation import check_tau
from keras_cbloss._validation import check_weighting
from keras_cbloss.weights import class_balanced_weights

_SIXTEEN_BIT = ("float16", "bfloat16")


# --------------------------------------------------------------------------
# Helpers shared by the loss functions.
# --------------------------------------------------------------------------


class _Inputs(NamedTuple):
    """The loss functions' inputs after `_prepare`.

    Exactly one of `labels` (int32 class ids `[...]`) and `target` (float
    targets: dense rows `[..., C]`, or `[..., 1]` for a one-unit head) is
    set. `valid` marks positions whose label can be used (`None` when every
    label can); `keep` marks positions whose label is not `ignore_class`
    (`None` without `ignore_class`).
    """

    labels: object
    target: object
    valid: object
    keep: object
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


def _raise_if_invalid(y_true, valid, expected, advice=None):
    """Raises for unusable labels when their values can be inspected.

    In compiled code such labels give a NaN loss instead (`_finish`), so
    that training fails visibly instead of silently using a wrong class.
    `advice` ends the message (default: check the encoding or pass dense
    labels).
    """
    if not executing_eagerly(valid) or bool(ops.all(valid)):
        return
    bad = ops.convert_to_numpy(y_true)[~ops.convert_to_numpy(valid)]
    # Keras hands labels over as floats; show integral ids as ints.
    bad = [int(v) if float(v).is_integer() else float(v) for v in bad]
    if advice is None:
        advice = "Check the label encoding, or pass dense (one-hot) labels."
    raise ValueError(
        f"Invalid sparse labels. Expected {expected}. Received values "
        f"{bad[:10]}{' ...' if len(bad) > 10 else ''}. {advice}"
    )


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
        y_true, valid, "0/1 or soft targets in [0, 1]",
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


def _prepare(y_true, y_pred, class_weights, ignore_class=None,
             what="class weights"):
    """Shared front end: casts, label form, class weights and checks.

    `class_weights` is the loss's per-class vector (`what` names it in
    errors): the class weights, or the log prior of the logit-adjusted loss.
    """
    _check_not_strings(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    out_dtype = keras.backend.standardize_dtype(y_pred.dtype)
    dtype = _compute_dtype(out_dtype)
    y_pred = ops.cast(y_pred, dtype)
    weights = _weights_tensor(class_weights, dtype)
    _check_num_classes(y_pred, weights, what)
    y_true = ops.convert_to_tensor(y_true)
    keep = _ignored(y_true, ignore_class)
    inputs = dict(labels=None, target=None, valid=None, keep=keep,
                  y_pred=y_pred, weights=weights, out_dtype=out_dtype,
                  binary_head=y_pred.shape[-1] == 1)
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
    elif ignore_class is not None:
        _raise_dense_ignore_class(y_true, y_pred)
    else:
        inputs.update(target=ops.cast(y_true, dtype))
    return _safe_predictions(_Inputs(**inputs))


def _raise_dense_ignore_class(y_true, y_pred):
    raise ValueError(
        "Invalid value for argument `ignore_class`. It applies to sparse "
        "class ids (y_true of shape y_pred.shape[:-1], or with a trailing "
        "1), as in Keras' `SparseCategoricalCrossentropy`. Received dense "
        f"labels: y_true.shape={tuple(y_true.shape)}, "
        f"y_pred.shape={tuple(y_pred.shape)}. Pass class ids instead, or "
        "keep `ignore_class=None`, give the positions to skip "
        "`sample_weight=0` and use `reduction='mean_with_sample_weight'`."
    )


def _safe_predictions(inputs):
    """Replaces predictions at ignored positions by a harmless constant.

    The loss there is dropped by `_finish`; replacing the inputs too (as
    Keras' `sparse_categorical_crossentropy` does) keeps a NaN or inf that a
    model may output at a padded position out of the gradient.
    """
    if inputs.keep is None:
        return inputs
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
# Per-sample loss functions.
# --------------------------------------------------------------------------


def cb_softmax_crossentropy(
    y_true, y_pred, class_weights, from_logits=False, ignore_class=None
):
    """Class-balanced softmax cross-entropy of each sample (or position).

    Formula:

    ```
    loss = (sum_c y_c * w_c) * CE(y, p),    p = softmax(z) or y_pred
    CE(y, p) = -sum_c y_c * log(p_c)
    ```

    For single-label data the factor is `w[y]`, the weight of the true class.
    The result equals Keras' `categorical_crossentropy` (or
    `sparse_categorical_crossentropy`) multiplied by that weight.

    Args:
        y_true: Sparse class ids of shape `[...]` or `[..., 1]`, or dense
            labels `[..., C]` (one-hot, multi-hot or soft).
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`
            with `C >= 2` (a softmax over one unit is constant: use
            `cb_sigmoid_crossentropy` for a one-unit head).
        class_weights: 1-D array-like or tensor of `C` per-class weights,
            e.g. from `class_balanced_weights`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`
            (the model ends in a softmax), as in Keras.
        ignore_class: Optional int. Positions whose sparse label equals it
            get loss 0 and carry a Keras mask, so that a `keras.losses.Loss`
            averages over the other positions (as Keras'
            `sparse_categorical_crossentropy`). Defaults to `None`.

    Returns:
        Per-position losses of shape `y_pred.shape[:-1]`, in `y_pred`'s
        dtype (16-bit inputs are evaluated in float32).

    Raises:
        ValueError: If the shapes do not match, `y_pred` has one unit, the
            number of weights differs from `y_pred.shape[-1]`,
            `ignore_class` is given with dense labels, or (when values can
            be inspected) a sparse label is outside `[0, C)`. In compiled
            code such a label gives a NaN loss instead.
        TypeError: For string labels, or a non-int `ignore_class`.

    Example:

    >>> import numpy as np
    >>> from keras_cbloss import cb_softmax_crossentropy
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    >>> loss = cb_softmax_crossentropy(
    ...     [0, 2], logits, [0.5, 1.0, 1.5], from_logits=True)
    >>> np.round(np.asarray(loss), 4)
    array([0.0849, 2.3272], dtype=float32)

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555, Eq. 5.
    """
    from_logits = check_bool(from_logits, "from_logits")
    ignore_class = check_ignore_class(ignore_class)
    if ops.shape(y_pred)[-1] == 1:
        raise ValueError(
            "A softmax over one output unit is always 1, so the softmax loss "
            "would be constant. For a binary one-unit head use "
            "`CBSigmoidLoss` or `CBFocalLoss` (or `cb_sigmoid_crossentropy`) "
            "with `class_counts=[n_neg, n_pos]`, or give the model 2 output "
            f"units. Received: y_pred.shape={tuple(ops.shape(y_pred))}"
        )
    inputs = _prepare(y_true, y_pred, class_weights, ignore_class)
    if inputs.labels is not None:
        ce = ops.sparse_categorical_crossentropy(
            inputs.labels, inputs.y_pred, from_logits=from_logits
        )
        loss = ops.take(inputs.weights, inputs.labels) * ce
    else:
        ce = ops.categorical_crossentropy(
            inputs.target, inputs.y_pred, from_logits=from_logits
        )
        loss = ops.matmul(inputs.target, inputs.weights) * ce
    return _finish(loss, inputs)


def cb_sigmoid_crossentropy(
    y_true,
    y_pred,
    class_weights,
    from_logits=False,
    weighting="sample",
    ignore_class=None,
):
    """Class-balanced sigmoid cross-entropy of each sample (or position).

    Formula:

    ```
    BCE_c = -(t_c * log(p_c) + (1 - t_c) * log(1 - p_c)),  p = sigmoid(z)
    weighting="sample": loss = (sum_c t_c * w_c) * sum_c BCE_c
    weighting="class":  loss = sum_c w_c * BCE_c
    one-unit head (C = 1, two weights): loss = ((1 - t) * w_0 + t * w_1) * BCE
    ```

    The binary terms are SUMMED over classes, as in the paper; Keras'
    `BinaryCrossentropy` averages them, a factor `C` smaller. With
    `weighting="sample"` every binary term of a sample gets its label's class
    weight (the paper); a multi-hot row sums the weights of its classes and a
    row with no positive class gets weight 0. `weighting="class"` balances
    each class's one-vs-all problem by that class's own count, which suits
    multi-label data.

    A one-unit head (`y_pred` of shape `[..., 1]`, targets t in [0, 1] of
    shape `[...]` or `[..., 1]`) is the two-class problem {0: negative,
    1: positive} and takes two weights `[w_neg, w_pos]`; both `weighting`
    modes give the formula above, since the two classes are the two sides
    of the one unit.

    Args:
        y_true: Sparse class ids (`[...]` or `[..., 1]`) or dense targets
            `[..., C]` in [0, 1]; 0/1 or soft targets for a one-unit head.
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`.
        class_weights: 1-D array-like or tensor of `C` per-class weights
            (two, `[w_neg, w_pos]`, for a one-unit head).
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        weighting: `"sample"` (default) or `"class"`, see above.
        ignore_class: Optional int: positions whose sparse label (or
            one-unit target) equals it get loss 0 and a Keras mask, as in
            `cb_softmax_crossentropy`. Defaults to `None`.

    Returns:
        Per-position losses of shape `y_pred.shape[:-1]`, in `y_pred`'s
        dtype.

    Raises:
        ValueError: For mismatched shapes, a wrong number of weights, an
            unknown `weighting`, `ignore_class` with dense labels, or (when
            values can be inspected) sparse labels outside `[0, C)` or
            one-unit targets outside [0, 1].
        TypeError: For string labels, or a non-int `ignore_class`.

    Example:

    >>> import numpy as np
    >>> from keras_cbloss import cb_sigmoid_crossentropy
    >>> logits = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> loss = cb_sigmoid_crossentropy(
    ...     [0], logits, [0.5, 1.0, 1.5], from_logits=True)
    >>> np.round(np.asarray(loss), 4)
    array([0.5667], dtype=float32)

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555, Eq. 6.
    """
    return cb_focal_crossentropy(
        y_true,
        y_pred,
        class_weights,
        gamma=0.0,
        from_logits=from_logits,
        weighting=weighting,
        ignore_class=ignore_class,
    )


def cb_focal_crossentropy(
    y_true,
    y_pred,
    class_weights,
    gamma=1.0,
    from_logits=False,
    weighting="sample",
    ignore_class=None,
):
    """Class-balanced sigmoid focal loss of each sample (or position).

    Formula:

    ```
    p_t  = p_c if t_c = 1 else 1 - p_c,                  p = sigmoid(z)
    FL_c = (1 - p_t) ** gamma * BCE_c
         = exp(-gamma * (t_c * z_c + softplus(-z_c))) * BCE_c
    weighting="sample": loss = (sum_c t_c * w_c) * sum_c FL_c
    weighting="class":  loss = sum_c w_c * FL_c
    one-unit head (C = 1, two weights): loss = ((1 - t) * w_0 + t * w_1) * FL
    ```

    The modulator is never `pow(1 - p_t, gamma)`, whose gradient is NaN at
    p_t = 1 for gamma < 1, nor built on `log1p(exp(-z))`, which overflows
    for z below about -88 in float32: it is a product of `sigmoid(-u)`
    terms for gamma in {0, 1, 2, 3} (u = z where t = 1, -z where t = 0)
    and the exponential above otherwise, both from one `exp(-|z|)`.
    For soft targets the exponent interpolates linearly between the two
    binary cases, as in the official implementation. `gamma = 0` gives the
    CB sigmoid loss. A one-unit head is the two-class problem {0: negative,
    1: positive}, as in `cb_sigmoid_crossentropy`.

    Args:
        y_true: Sparse class ids (`[...]` or `[..., 1]`) or dense targets
            `[..., C]` in [0, 1]; 0/1 or soft targets for a one-unit head.
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`.
        class_weights: 1-D array-like or tensor of `C` per-class weights
            (two, `[w_neg, w_pos]`, for a one-unit head).
        gamma: Focusing parameter, a float >= 0. Defaults to `1.0`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        weighting: `"sample"` (default) or `"class"`; see
            `cb_sigmoid_crossentropy`.
        ignore_class: Optional int, as in `cb_sigmoid_crossentropy`.
            Defaults to `None`.

    Returns:
        Per-position losses of shape `y_pred.shape[:-1]`, in `y_pred`'s
        dtype.

    Raises:
        ValueError: For a negative or non-finite gamma, mismatched shapes, a
            wrong number of weights, an unknown `weighting`, `ignore_class`
            with dense labels, or (when values can be inspected) sparse
            labels outside `[0, C)` or one-unit targets outside [0, 1].
        TypeError: For string labels, or a non-int `ignore_class`.

    Example:

    >>> import numpy as np
    >>> from keras_cbloss import cb_focal_crossentropy
    >>> logits = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> loss = cb_focal_crossentropy(
    ...     [0], logits, [0.5, 1.0, 1.5], gamma=2.0, from_logits=True)
    >>> np.round(np.asarray(loss), 4)
    array([0.0989], dtype=float32)
    >>> # A one-unit binary head: weights [w_neg, w_pos], 0/1 targets.
    >>> loss = cb_focal_crossentropy(
    ...     [0, 1], [[3.0], [-1.0]], [0.12831, 1.87169], gamma=2.0,
    ...     from_logits=True)
    >>> np.round(np.asarray(loss), 4)
    array([0.3549, 1.3137], dtype=float32)

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555, Eq. 7.
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    gamma = check_gamma(gamma)
    from_logits = check_bool(from_logits, "from_logits")
    weighting = check_weighting(weighting)
    ignore_class = check_ignore_class(ignore_class)
    inputs = _prepare(y_true, y_pred, class_weights, ignore_class)
    target = inputs.target
    if inputs.labels is not None:
        target = _class_mask(inputs.labels, inputs.weights.shape[0])
    per_class = weighting == "class" and not inputs.binary_head
    # The binary (focal) terms, their sum over classes and its gradient
    # live in one place, `_kernels.binary_focal_sum`.
    loss = _kernels.binary_focal_sum(
        inputs.y_pred,
        target,
        gamma=gamma,
        from_logits=from_logits,
        class_weights=inputs.weights if per_class else None,
    )
    if not per_class:
        loss = loss * _sample_weights(
            target, inputs.labels, inputs.weights, inputs.binary_head
        )
    return _finish(loss, inputs)


# --------------------------------------------------------------------------
# Loss classes.
# --------------------------------------------------------------------------

# The constructor checks of the per-sample functions' keyword arguments.
_ARGUMENT_CHECKS = {
    "gamma": check_gamma,
    "tau": check_tau,
    "from_logits": lambda value: check_bool(value, "from_logits"),
    "weighting": check_weighting,
    "ignore_class": check_ignore_class,
}


class _StaleTraceWarning(UserWarning):
    """New class weights on a loss that compiled step functions hold."""


_RETRACE_FIX = (
    "call `model.make_train_function(force=True)` and "
    "`model.make_test_function(force=True)` after the change (or use "
    "`keras_cbloss.ClassCounter` / `keras_cbloss.DeferredReweighting`, "
    "which do so)"
)


def _plain_counts(counts):
    """Counts as int64 when they are all whole numbers, else float64."""
    if np.all(counts == np.round(counts)) and counts.max() <= 2**53:
        return counts.astype(np.int64)
    return counts.copy()


class CountBasedLoss(keras.losses.Loss):
    """Base class of the losses built from class counts, after Keras' wrapper.

    Like Keras' `LossFunctionWrapper`, it holds a per-sample function `fn`
    and that function's keyword arguments, and implements `call()` and
    `get_config()` once; each subclass is a signature and a docstring. The
    keyword arguments are validated here and kept as public attributes
    (`loss.gamma`, `loss.tau`, `loss.from_logits`, `loss.weighting`,
    `loss.ignore_class`), which `call()` reads on every trace.

    From the counts, a subclass derives one per-class float64 vector in
    `_per_class_from_counts` (the class-balanced weights of
    `ClassBalancedLoss`, the log prior of `LogitAdjustedLoss`); it is
    computed on the host whenever the counts (or a hyperparameter it
    depends on) are set, and enters compiled code as a constant: after a
    change during training the train function must be retraced, which
    `ClassCounter` does.

    Args:
        fn: The per-sample function, called as
            `fn(y_true, y_pred, per_class, **fn_kwargs)`.
        class_counts: 1-D array-like of per-class sample counts from the
            whole training set, at least two, or `None` to set them later
            with `set_class_counts` (e.g. by `ClassCounter`).
        name, reduction, dtype: As for `keras.losses.Loss`.
        **fn_kwargs: Keyword arguments of `fn` (`gamma`, `tau`,
            `from_logits`, `weighting`, `ignore_class`), saved in the
            config.
    """

    def __init__(
        self,
        fn,
        class_counts=None,
        *,
        name=None,
        reduction="sum_over_batch_size",
        dtype=None,
        **fn_kwargs,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._dtype_arg = (
            None if dtype is None else keras.dtype_policies.get(dtype).name
        )
        self._fn_arg_names = tuple(fn_kwargs)
        for arg_name, value in fn_kwargs.items():
            setattr(self, arg_name, _ARGUMENT_CHECKS[arg_name](value))
        self._class_counts = None
        self._per_class = None
        self._weights_cache = {}
        self._uncast_labels = None
        # Set once `call()` runs in compiled code, which embeds the
        # per-class vector as a constant (see `_warn_if_traced`).
        self._traced = False
        if class_counts is not None:
            self.set_class_counts(class_counts)

    def _per_class_from_counts(self, counts):
        """The float64 per-class vector that `fn` takes, from the counts."""
        raise NotImplementedError

    def _hyperparameters(self):
        """The subclass's own config entries that `fn` does not take."""
        return {}

    @property
    def class_counts(self):
        """Per-class counts (NumPy copy), or `None` if not set.

        int64 when every count is a whole number, float64 otherwise
        (sample-weighted counts).
        """
        if self._class_counts is None:
            return None
        return _plain_counts(self._class_counts)

    def set_class_counts(self, class_counts):
        """Sets the per-class counts and recomputes what derives from them.

        Args:
            class_counts: 1-D array-like of non-negative, finite counts,
                one per class, at least two (`[n_neg, n_pos]` for a
                one-unit head).

        Raises:
            ValueError, TypeError: For invalid counts; the loss keeps its
                previous counts and the values derived from them.

        Functions already traced with the old values keep them (a loss
        already traced into a model's step functions warns): after a
        change, call `model.make_train_function(force=True)` and
        `model.make_test_function(force=True)` so that `fit()` and
        `evaluate()` use the new values. In mid-training, prefer
        `ClassCounter`, which retraces the model's train and test
        functions after a change (and, on JAX, also clears the jit cache
        that would otherwise keep the old trace alive).
        """
        counts = check_counts(class_counts)
        if counts.size == 1:
            raise ValueError(
                "Invalid value for argument `class_counts`. Expected at "
                "least 2 classes. A one-unit (binary) head has two classes, "
                "negative (0) and positive (1): pass `class_counts=[n_neg, "
                f"n_pos]`. Received: class_counts={counts.tolist()}"
            )
        per_class = self._per_class_from_counts(counts)
        self._warn_if_traced(per_class, "set_class_counts")
        self._per_class = per_class
        self._class_counts = counts
        self._weights_cache = {}

    def _warn_if_traced(self, per_class, method):
        """Warns when compiled step functions hold other per-class values."""
        if not self._traced or self._per_class is None:
            return
        if np.array_equal(self._per_class, per_class):
            return
        warnings.warn(
            f"`{type(self).__name__}.{method}()` changed the per-class "
            "weights of a loss already traced into compiled step functions "
            "(by `fit()`, `evaluate()` or `train_on_batch()`); those "
            "functions keep the old weights as constants, so `fit()` and "
            "`evaluate()` would still use them. To use the new weights, "
            f"{_RETRACE_FIX}.",
            _StaleTraceWarning,
            stacklevel=3,
        )

    def _per_class_or_raise(self, y_pred):
        if self._per_class is not None:
            return self._eager_weights(y_pred)
        if in_symbolic_scope():
            num_units = y_pred.shape[-1] or 1
            return np.ones(2 if num_units == 1 else num_units)
        raise ValueError(
            f"`{type(self).__name__}` has no class counts yet. Pass "
            "`class_counts=` (one training-set count per class) when "
            "creating the loss, call `loss.set_class_counts(counts)`, or "
            "add `keras_cbloss.ClassCounter(train_dataset)` to the callbacks "
            "of `fit()` so that it counts the labels at the start of "
            "training."
        )

    def _eager_weights(self, y_pred):
        # Traced code embeds the NumPy vector as a constant. Eager steps
        # (the PyTorch trainer, `run_eagerly=True`) reuse one tensor per
        # dtype and device instead of copying the vector every step.
        if not executing_eagerly(y_pred):
            return self._per_class
        dtype = _compute_dtype(keras.backend.standardize_dtype(y_pred.dtype))
        key = (dtype, str(getattr(y_pred, "device", "")))
        if key not in self._weights_cache:
            self._weights_cache[key] = ops.convert_to_tensor(
                self._per_class, dtype=dtype
            )
        return self._weights_cache[key]

    def __call__(self, y_true, y_pred, sample_weight=None):
        _check_not_strings(y_true)
        # `Loss.__call__` casts y_true to the loss dtype before `call()`; in
        # bfloat16, class ids above 256 would round to other classes (2048
        # in float16). So a 16-bit loss hands its sparse ids to `call()`
        # uncast, through `_uncast_labels`: set here for the duration of
        # this one call only, read by `call()`, cleared in `finally`.
        if self.dtype in _SIXTEEN_BIT:
            y_true = ops.convert_to_tensor(y_true)
            if _is_sparse(y_true.shape, ops.shape(y_pred)):
                self._uncast_labels = y_true
        try:
            return super().__call__(y_true, y_pred, sample_weight)
        finally:
            self._uncast_labels = None

    def call(self, y_true, y_pred):
        if self._uncast_labels is not None:
            y_true = self._uncast_labels
        if not executing_eagerly(y_pred) and not in_symbolic_scope():
            self._traced = True
        fn_kwargs = {name: getattr(self, name) for name in self._fn_arg_names}
        return self.fn(
            y_true, y_pred, self._per_class_or_raise(y_pred), **fn_kwargs
        )

    def get_config(self):
        config = super().get_config()
        counts = self.class_counts
        config["class_counts"] = None if counts is None else counts.tolist()
        config.update(self._hyperparameters())
        config["dtype"] = self._dtype_arg
        config.update(
            {name: getattr(self, name) for name in self._fn_arg_names}
        )
        return config


class ClassBalancedLoss(CountBasedLoss):
    """Base class of the class-balanced losses: weights from counts and beta.

    The per-class vector handed to `fn` is the class-balanced weights,
    `class_balanced_weights(counts, beta)`, recomputed in float64 whenever
    the counts or beta are set.

    Args:
        fn: The per-sample function, called as
            `fn(y_true, y_pred, class_weights, **fn_kwargs)`.
        class_counts: 1-D array-like of per-class sample counts from the
            whole training set (`[n_neg, n_pos]` for a one-unit head), or
            `None` to set them later with `set_class_counts` (e.g. by
            `ClassCounter`).
        beta: Float in [0, 1). Defaults to `0.999`.
        name, reduction, dtype: As for `keras.losses.Loss`.
        **fn_kwargs: Keyword arguments of `fn` (`gamma`, `from_logits`,
            `weighting`, `ignore_class`), saved in the config.
    """

    def __init__(self, fn, class_counts=None, beta=0.999, **kwargs):
        # Set before the base constructor, which derives the weights from
        # `class_counts` with it.
        self._beta = check_beta(beta)
        super().__init__(fn, class_counts, **kwargs)

    def _per_class_from_counts(self, counts):
        return class_balanced_weights(counts, self._beta)

    def _hyperparameters(self):
        return {"beta": self._beta}

    @property
    def beta(self):
        """The beta hyperparameter, a float in [0, 1)."""
        return self._beta

    @property
    def class_weights(self):
        """Per-class weights (float64 NumPy copy), or `None` if not set."""
        if self._per_class is None:
            return None
        return self._per_class.copy()

    def set_beta(self, beta):
        """Sets beta and recomputes the class weights from the counts.

        Validated like the constructor's `beta`; an invalid value raises
        and leaves the loss as it was. Saved in the config. As with
        `set_class_counts`, functions already traced keep the old weights
        (a loss already traced into a model's step functions warns): after
        a change, call `model.make_train_function(force=True)` and
        `model.make_test_function(force=True)`, or let
        `DeferredReweighting` change beta in mid-training (beta 0, then
        e.g. 0.9999), which does it.

        Args:
            beta: Float in [0, 1).

        Raises:
            ValueError, TypeError: For an invalid beta.
        """
        beta = check_beta(beta)
        if self._class_counts is not None:
            per_class = class_balanced_weights(self._class_counts, beta)
            self._warn_if_traced(per_class, "set_beta")
            self._per_class = per_class
        self._beta = beta
        self._weights_cache = {}


@keras.saving.register_keras_serializable(package="keras_cbloss")
class CBSoftmaxLoss(ClassBalancedLoss):
    """Class-balanced softmax cross-entropy loss.

    Formula:

    ```
    w_c  = (1 - beta) / (1 - beta ** n_c), scaled to sum to C
    loss = mean over samples of (sum_c y_c * w_c) * CE(y, softmax(z))
    ```

    Equals Keras' `SparseCategoricalCrossentropy` with
    `sample_weight = w[y]`, with the weights kept inside the loss (and so
    saved with the model, and usable for 3+-D targets and several outputs,
    where `fit(class_weight=...)` is not). `beta = 0` gives plain
    cross-entropy; `beta -> 1` inverse-frequency weighting. Needs at least
    two output units: for a one-unit binary head use `CBSigmoidLoss` or
    `CBFocalLoss`.

    Args:
        class_counts: 1-D array-like with the number of training samples of
            each class, or `None` to set them later (`set_class_counts`, or
            the `ClassCounter` callback). Defaults to `None`.
        beta: Float in [0, 1). Defaults to `0.999`. The paper's best values:
            0.9999 on CIFAR-10-LT, 0.99 to 0.999 with 100 classes. Change it
            later with `set_beta`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`
            (the model ends in a softmax).
        ignore_class: Optional int label value to skip (e.g. 255 for void
            pixels, -1 for padding), as in Keras'
            `SparseCategoricalCrossentropy`: those positions contribute
            nothing, and `"sum_over_batch_size"` averages over the labelled
            positions only. Sparse labels only. Defaults to `None`.
        reduction: As in Keras. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"cb_softmax_loss"`.
        dtype: Dtype of the loss computation, as in Keras. Defaults to
            `None` (`keras.config.floatx()`).

    Raises:
        ValueError, TypeError: For invalid counts (fewer than two classes
            included), beta, `from_logits` or `ignore_class`.

    Example:

    >>> import numpy as np
    >>> from keras_cbloss import CBSoftmaxLoss
    >>> loss = CBSoftmaxLoss([900, 90, 10], beta=0.99, from_logits=True)
    >>> np.round(loss.class_weights, 3)
    array([0.228, 0.384, 2.388])
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    >>> round(float(loss([0, 2], logits)), 4)
    1.8719
    >>> # 255 marks a void position: the mean runs over the other one
    >>> masked = CBSoftmaxLoss([900, 90, 10], 0.99, from_logits=True,
    ...                        ignore_class=255)
    >>> round(float(masked([0, 255], logits)), 4)
    0.0388

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555.
    """

    def __init__(
        self,
        class_counts=None,
        beta=0.999,
        *,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        name="cb_softmax_loss",
        dtype=None,
    ):
        super().__init__(
            cb_softmax_crossentropy,
            class_counts,
            beta,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            ignore_class=ignore_class,
        )


@keras.saving.register_keras_serializable(package="keras_cbloss")
class CBSigmoidLoss(ClassBalancedLoss):
    """Class-balanced sigmoid cross-entropy loss.

    Formula:

    ```
    w_c  = (1 - beta) / (1 - beta ** n_c), scaled to sum to C
    weighting="sample": loss_i = (sum_c y_ic * w_c) * sum_c BCE(y_ic, p_ic)
    weighting="class":  loss_i = sum_c w_c * BCE(y_ic, p_ic)
    one-unit head:      loss_i = ((1 - t_i) * w_0 + t_i * w_1) * BCE(t_i, p_i)
    loss = mean over samples of loss_i
    ```

    The binary cross-entropies are summed over the C classes (the paper);
    Keras' `BinaryCrossentropy` averages them, so with `beta = 0` this loss
    is `C` times Keras'. Initialise the output bias with
    `prior_bias_initializer(C)` so that training starts at p = 1/C.

    A one-unit head (`Dense(1)`, 0/1 or soft targets t of shape `[B]` or
    `[B, 1]`) is the two-class problem {0: negative, 1: positive}: pass
    `class_counts=[n_neg, n_pos]`. Both `weighting` modes then give the
    formula above (the two classes are the two sides of the one unit).

    Args:
        class_counts: 1-D array-like of training counts per class
            (`[n_neg, n_pos]` for a one-unit head), or `None` to set them
            later. Defaults to `None`.
        beta: Float in [0, 1). Defaults to `0.999`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`
            (the model ends in a sigmoid).
        weighting: `"sample"` (default, the paper: every binary term of a
            sample gets its label's weight) or `"class"` (the term of class c
            gets w_c; use it for multi-label data, where rows may have
            several or no positives).
        ignore_class: Optional int label value to skip, as in
            `CBSoftmaxLoss`. Defaults to `None`.
        reduction: Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"cb_sigmoid_loss"`.
        dtype: Dtype of the loss computation. Defaults to `None`.

    Raises:
        ValueError, TypeError: For invalid counts, beta, `from_logits`,
            `weighting` or `ignore_class`.

    Example:

    >>> import numpy as np
    >>> from keras_cbloss import CBSigmoidLoss
    >>> loss = CBSigmoidLoss([900, 90, 10], beta=0.99, from_logits=True)
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    >>> round(float(loss([0, 2], logits)), 4)
    3.3527

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555.
    """

    def __init__(
        self,
        class_counts=None,
        beta=0.999,
        *,
        from_logits=False,
        weighting="sample",
        ignore_class=None,
        reduction="sum_over_batch_size",
        name="cb_sigmoid_loss",
        dtype=None,
    ):
        super().__init__(
            cb_sigmoid_crossentropy,
            class_counts,
            beta,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            weighting=weighting,
            ignore_class=ignore_class,
        )


@keras.saving.register_keras_serializable(package="keras_cbloss")
class CBFocalLoss(ClassBalancedLoss):
    """Class-balanced sigmoid focal loss.

    Formula:

    ```
    w_c  = (1 - beta) / (1 - beta ** n_c), scaled to sum to C
    FL   = (1 - p_t) ** gamma * BCE,  in log space:
           exp(-gamma * (t * z + softplus(-z))) * BCE
    weighting="sample": loss_i = (sum_c y_ic * w_c) * sum_c FL_ic
    weighting="class":  loss_i = sum_c w_c * FL_ic
    one-unit head:      loss_i = ((1 - t_i) * w_0 + t_i * w_1) * FL_i
    loss = mean over samples of loss_i
    ```

    `gamma = 0` gives the CB sigmoid loss. Unlike Keras'
    `BinaryFocalCrossentropy` (which averages over classes and uses a
    single `alpha`), the focal terms are summed over classes and weighted
    per class, as in the paper. Initialise the output bias with
    `prior_bias_initializer(C)`.

    A one-unit head (`Dense(1)`) with 0/1 or soft targets is the two-class
    problem {0: negative, 1: positive}: pass `class_counts=[n_neg, n_pos]`
    (see `CBSigmoidLoss`). This equals `w_0 + w_1` times Keras'
    `BinaryFocalCrossentropy(apply_class_balancing=True,
    alpha=w_1 / (w_0 + w_1))`, with alpha taken from the counts; start the
    bias at the positive prior, `prior_bias_initializer(n_pos / (n_neg +
    n_pos))`.

    Args:
        class_counts: 1-D array-like of training counts per class
            (`[n_neg, n_pos]` for a one-unit head), or `None` to set them
            later. Defaults to `None`.
        beta: Float in [0, 1). Defaults to `0.999`.
        gamma: Focusing parameter, float >= 0. Defaults to `1.0`. The paper
            used 0.5 to 2.0 (1.0 for CIFAR, 0.5 for ImageNet/iNaturalist).
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        weighting: `"sample"` (default) or `"class"`, as in `CBSigmoidLoss`.
        ignore_class: Optional int label value to skip, as in
            `CBSoftmaxLoss`. Defaults to `None`.
        reduction: Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"cb_focal_loss"`.
        dtype: Dtype of the loss computation. Defaults to `None`.

    Raises:
        ValueError, TypeError: For invalid counts, beta, gamma,
            `from_logits`, `weighting` or `ignore_class`.

    Example:

    >>> import numpy as np
    >>> from keras_cbloss import CBFocalLoss
    >>> loss = CBFocalLoss([900, 90, 10], 0.99, 2.0, from_logits=True)
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    >>> round(float(loss([0, 2], logits)), 4)
    1.2744
    >>> # A one-unit binary head: [n_neg, n_pos], 0/1 labels [B] or [B, 1]
    >>> binary = CBFocalLoss([60, 4], 0.999, 2.0, from_logits=True)
    >>> np.round(binary.class_weights, 5)
    array([0.12831, 1.87169])
    >>> z = np.array([[3.0], [-1.0]], "float32")
    >>> round(float(binary(np.array([[0], [1]]), z)), 4)
    0.8343

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555.
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """

    def __init__(
        self,
        class_counts=None,
        beta=0.999,
        gamma=1.0,
        *,
        from_logits=False,
        weighting="sample",
        ignore_class=None,
        reduction="sum_over_batch_size",
        name="cb_focal_loss",
        dtype=None,
    ):
        super().__init__(
            cb_focal_crossentropy,
            class_counts,
            beta,
            name=name,
            reduction=reduction,
            dtype=dtype,
            gamma=gamma,
            from_logits=from_logits,
            weighting=weighting,
            ignore_class=ignore_class,
        )


def custom_objects():
    """The package's serializable classes, for `custom_objects=` in loading.

    Importing `keras_cbloss` registers them, so `keras.saving.load_model`
    needs no argument. Where registration is not in effect, pass this dict:
    it holds every class under both its plain name (`"CBFocalLoss"`) and its
    registered name (`"keras_cbloss>CBFocalLoss"`), which is the key Keras
    3 looks up.

    Returns:
        A dict from names to classes.

    Example:

    >>> import keras_cbloss
    >>> sorted(keras_cbloss.custom_objects())[:2]
    ['CBFocalLoss', 'CBSigmoidLoss']
    """
    from keras_cbloss.initializers import PriorBiasInitializer
    from keras_cbloss.logit_adjustment import LogitAdjustedLoss

    classes = (
        CBSoftmaxLoss,
        CBSigmoidLoss,
        CBFocalLoss,
        LogitAdjustedLoss,
        PriorBiasInitializer,
    )
    objects = {}
    for cls in classes:
        objects[cls.__name__] = cls
        objects[f"keras_cbloss>{cls.__name__}"] = cls
    return objects
