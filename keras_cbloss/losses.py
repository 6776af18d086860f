"""Class-balanced softmax, sigmoid and focal losses for Keras 3.

Each loss is a pair, as in Keras: a function that returns per-position
losses from `(y_true, y_pred, class_weights)`, and a `keras.losses.Loss`
subclass that validates and stores the hyperparameters, turns class counts
into weights once, and leaves reduction, masks and `sample_weight` to
`keras.losses.Loss.__call__`.

Labels may be sparse class ids (`[...]` or `[..., 1]`) or dense
(`[..., C]` in [0, 1]: one-hot or soft, and multi-hot for the sigmoid
and focal losses); predictions are
`[..., C]` (a batch of vectors, or per-pixel maps such as `[B, H, W, C]`).
`ignore_class` skips sparse positions, and unknown entries of dense rows
(the -1 of multi-label and multi-task data).
"""

import keras
from keras import ops

from keras_cbloss import _kernels
from keras_cbloss._base import ClassBalancedLoss
from keras_cbloss._labels import _check_prediction_rank
from keras_cbloss._labels import _finish
from keras_cbloss._labels import _prepare
from keras_cbloss._labels import _sample_weights
from keras_cbloss._validation import check_bool
from keras_cbloss._validation import check_gamma
from keras_cbloss._validation import check_ignore_class
from keras_cbloss._validation import check_weighting

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
            labels `[..., C]` in [0, 1], one class per row (one-hot, or
            soft rows summing to 1; multi-hot rows raise: use
            `cb_sigmoid_crossentropy` or `cb_focal_crossentropy` for
            multi-label targets).
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`
            with `C >= 2` (a softmax over one unit is constant: use
            `cb_sigmoid_crossentropy` for a one-unit head) and at least
            two dimensions.
        class_weights: 1-D array-like or tensor of `C` per-class weights,
            e.g. from `class_balanced_weights`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`
            (the model ends in a softmax), as in Keras.
        ignore_class: Optional int. Positions whose sparse label equals it
            get loss 0 and carry a Keras mask, so that a `keras.losses.Loss`
            averages over the other positions (as Keras'
            `sparse_categorical_crossentropy`). With dense labels, a row
            whose entries all equal it is skipped the same way; a row with
            only some such (unknown) entries is not a distribution, and is
            an error: use `cb_sigmoid_crossentropy` or
            `cb_focal_crossentropy` for targets with unknown entries.
            Defaults to `None`.

    Returns:
        Per-position losses of shape `y_pred.shape[:-1]`, in `y_pred`'s
        dtype (16-bit inputs are evaluated in float32).

    Raises:
        ValueError: If the shapes do not match, `y_pred` has one unit or
            no class axis (rank 1), the number of weights differs from
            `y_pred.shape[-1]`, `ignore_class` is 0 or 1 with dense labels,
            or (when values can be inspected) a sparse label is outside
            `[0, C)`, a dense label outside [0, 1] (other than
            `ignore_class`), a dense row only partly `ignore_class`, or a
            multi-hot row (summing to more than 1, with a tolerance of 0.01
            for rounding). In compiled code such a label gives a NaN loss
            instead.
        TypeError: For string labels, or a non-int `ignore_class`.

    Examples:
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
    _check_prediction_rank(y_pred)
    if ops.shape(y_pred)[-1] == 1:
        raise ValueError(
            "A softmax over one output unit is always 1, so the softmax loss "
            "would be constant. For a binary one-unit head use "
            "`CBSigmoidLoss` or `CBFocalLoss` (or `cb_sigmoid_crossentropy`) "
            "with `class_counts=[n_neg, n_pos]`, or give the model 2 output "
            f"units. Received: y_pred.shape={tuple(ops.shape(y_pred))}"
        )
    inputs = _prepare(
        y_true,
        y_pred,
        class_weights,
        ignore_class,
        softmax="`CBSoftmaxLoss` (`cb_softmax_crossentropy`)",
    )
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
    unknown entries (t_c == ignore_class): every sum runs over the known c
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

    Multi-label data often mark unknown entries (-1 in Tox21 or CheXpert):
    with `ignore_class=-1` such an entry leaves the loss (its gradient is
    exactly 0, whatever the prediction there), a `"sample"` row's weight
    sums `w_c` over its known positives, and a row with no known entry
    gets loss 0 and leaves the mean of a `keras.losses.Loss`.

    Args:
        y_true: Sparse class ids (`[...]` or `[..., 1]`) or dense targets
            `[..., C]` in [0, 1] (entries equal to `ignore_class` aside);
            0/1 or soft targets for a one-unit head.
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`
            (`[..., 1]` for a one-unit head: keep the unit axis).
        class_weights: 1-D array-like or tensor of `C` per-class weights
            (two, `[w_neg, w_pos]`, for a one-unit head).
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        weighting: `"sample"` (default) or `"class"`, see above.
        ignore_class: Optional int: positions whose sparse label (or
            one-unit target) equals it get loss 0 and a Keras mask, as in
            `cb_softmax_crossentropy`. Entries of dense targets equal to
            it are unknown and left out (see above); for dense targets it
            must lie outside [0, 1], e.g. -1. Defaults to `None`.

    Returns:
        Per-position losses of shape `y_pred.shape[:-1]`, in `y_pred`'s
        dtype.

    Raises:
        ValueError: For mismatched shapes, `y_pred` without a class axis
            (rank 1), a wrong number of weights, an unknown `weighting`,
            `ignore_class` 0 or 1 with dense targets, or (when values can
            be inspected) sparse labels outside `[0, C)`, or dense or
            one-unit targets outside [0, 1] that are not `ignore_class`.
            In compiled code such labels give a NaN loss instead.
        TypeError: For string labels, or a non-int `ignore_class`.

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import cb_sigmoid_crossentropy
        >>> logits = np.array([[2.0, 0.0, -1.0]], "float32")
        >>> loss = cb_sigmoid_crossentropy(
        ...     [0], logits, [0.5, 1.0, 1.5], from_logits=True)
        >>> np.round(np.asarray(loss), 4)
        array([0.5667], dtype=float32)
        >>> # Multi-label targets, -1 where a label is unknown.
        >>> targets = np.array([[1, 0, -1], [-1, -1, -1]], "float32")
        >>> loss = cb_sigmoid_crossentropy(
        ...     targets, np.ones((2, 3), "float32"), [0.5, 1.0, 1.5],
        ...     from_logits=True, weighting="class", ignore_class=-1)
        >>> np.round(np.asarray(loss), 4)
        array([1.4699, 0.    ], dtype=float32)

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
    unknown entries (t_c == ignore_class): every sum runs over the known c
    ```

    The modulator is never `pow(1 - p_t, gamma)`, whose gradient is NaN at
    p_t = 1 for gamma < 1, nor built on `log1p(exp(-z))`, which overflows
    for z below about -88 in float32: it is a product of `sigmoid(-u)`
    terms for gamma in {0, 1, 2, 3} (u = z where t = 1, -z where t = 0)
    and the exponential above otherwise, both from one `exp(-|z|)`.
    For soft targets the exponent interpolates linearly between the two
    binary cases, as in the official implementation. `gamma = 0` gives the
    CB sigmoid loss. A one-unit head is the two-class problem {0: negative,
    1: positive}, and unknown entries of dense targets (`ignore_class`)
    leave the loss, as in `cb_sigmoid_crossentropy`.

    Args:
        y_true: Sparse class ids (`[...]` or `[..., 1]`) or dense targets
            `[..., C]` in [0, 1] (entries equal to `ignore_class` aside);
            0/1 or soft targets for a one-unit head.
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`
            (`[..., 1]` for a one-unit head: keep the unit axis).
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
        ValueError: For a negative or non-finite gamma, mismatched shapes,
            `y_pred` without a class axis (rank 1), a wrong number of
            weights, an unknown `weighting`, `ignore_class` 0 or 1 with
            dense targets, or (when values can be inspected) sparse labels
            outside `[0, C)`, or dense or one-unit targets outside [0, 1]
            that are not `ignore_class`. In compiled code such labels give
            a NaN loss instead.
        TypeError: For string labels, or a non-int `ignore_class`.

    Examples:
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
    # Sparse ids reach the kernel as ids: it builds the class mask where it
    # computes (inside a compiled cluster, not as a [..., C] tensor).
    target = inputs.target if inputs.labels is None else inputs.labels
    per_class = weighting == "class" and not inputs.binary_head
    entry_weights = inputs.weights if per_class else None
    if inputs.known is not None:
        # Unknown entries of dense rows weigh 0: the sum runs over the
        # known entries only (their predictions are already a constant, so
        # their gradient is exactly 0).
        known = ops.cast(inputs.known, inputs.y_pred.dtype)
        entry_weights = (
            known if entry_weights is None else (known * entry_weights)
        )
    # The binary (focal) terms, their sum over classes and its gradient
    # live in one place, `_kernels.binary_focal_sum`.
    loss = _kernels.binary_focal_sum(
        inputs.y_pred,
        target,
        gamma=gamma,
        from_logits=from_logits,
        class_weights=entry_weights,
    )
    if not per_class:
        # `target` is 0 at unknown entries: a row's weight sums w_c over
        # its known positives.
        loss = loss * _sample_weights(
            target, inputs.labels, inputs.weights, inputs.binary_head
        )
    return _finish(loss, inputs)


@keras.saving.register_keras_serializable(package="keras_cbloss")
class CBSoftmaxLoss(ClassBalancedLoss):
    """Class-balanced softmax cross-entropy loss.

    Formula:

    ```
    w_c  = (1 - beta) / (1 - beta ** n_c), scaled to sum to C
    loss = mean over samples of (sum_c y_c * w_c) * CE(y, softmax(z))
    reduction="mean_with_sample_weight", f_i = (sum_c y_ic * w_c) * s_i:
    loss = sum_i f_i * CE_i / sum_i f_i
    ```

    Equals Keras' `SparseCategoricalCrossentropy` with
    `sample_weight = w[y]`, with the weights kept inside the loss (and so
    saved with the model, and usable for 3+-D targets and several outputs,
    where `fit(class_weight=...)` is not). `beta = 0` gives plain
    cross-entropy; `beta -> 1` inverse-frequency weighting. Needs at least
    two output units: for a one-unit binary head use `CBSigmoidLoss` or
    `CBFocalLoss`. Takes one class per row: dense labels are one-hot or
    soft rows summing to 1; multi-hot rows have no meaning in a softmax and
    raise, naming `CBSigmoidLoss` / `CBFocalLoss` for multi-label data.

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
            positions only. With dense labels, a row made only of this
            value is skipped; a row with some unknown entries raises (a
            softmax needs a full distribution: use `CBSigmoidLoss` or
            `CBFocalLoss` there). Defaults to `None`.
        reduction: As in Keras. Defaults to `"sum_over_batch_size"` (the
            mean over samples, as the paper). `"mean_with_sample_weight"`
            divides by the batch's sum of `w[y] * sample_weight` instead:
            the class weight is a sample weight, as in PyTorch's
            `cross_entropy(weight=w)` (LDAM-DRW) and Keras'
            `fit(class_weight=...)`.
        name: Defaults to `"cb_softmax_loss"`.
        dtype: Dtype of the loss computation, as in Keras. Defaults to
            `None` (`keras.config.floatx()`).

    Raises:
        ValueError, TypeError: For invalid counts (fewer than two classes
            included), beta, `from_logits` or `ignore_class`. When called:
            as `cb_softmax_crossentropy` (e.g. multi-hot rows).

    Examples:
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
        >>> # PyTorch's cross_entropy(weight=w): divide by the sum of w[y]
        >>> torch_mean = CBSoftmaxLoss([900, 90, 10], 0.99, from_logits=True,
        ...                            reduction="mean_with_sample_weight")
        >>> round(float(torch_mean([0, 2], logits)), 4)
        1.4309

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
    Keep the unit axis of its output (`[B, 1]`): a `[B]` prediction raises.

    Multi-label targets with unknown entries (-1, as in Tox21 or
    CheXpert): pass `ignore_class=-1`. Each unknown entry leaves the sums
    over classes (gradient exactly 0 there), and a row with no known entry
    leaves the mean, as an ignored sparse position does.

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
        ignore_class: Optional int label value to skip: sparse positions
            as in `CBSoftmaxLoss`, and each entry of dense targets equal to
            it (an unknown label; it must lie outside [0, 1], e.g. -1).
            Defaults to `None`.
        reduction: Defaults to `"sum_over_batch_size"`.
            `"mean_with_sample_weight"` divides by the batch's sum of
            `(sum_c y_c * w_c) * sample_weight` (`(1 - t) * w_0 + t * w_1`
            on a one-unit head); with `weighting="class"` on C units, by the
            sum of `sample_weight` alone (the weights scale the terms within
            a sample and average 1 over the classes).
        name: Defaults to `"cb_sigmoid_loss"`.
        dtype: Dtype of the loss computation. Defaults to `None`.

    Raises:
        ValueError, TypeError: For invalid counts, beta, `from_logits`,
            `weighting` or `ignore_class`. When called: as
            `cb_sigmoid_crossentropy` (e.g. dense targets outside [0, 1]
            that are not `ignore_class`).

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import CBSigmoidLoss
        >>> loss = CBSigmoidLoss([900, 90, 10], beta=0.99, from_logits=True)
        >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
        >>> round(float(loss([0, 2], logits)), 4)
        3.3527
        >>> # Multi-label rows, -1 where a label is unknown; the last row has
        >>> # no known entry and leaves the mean.
        >>> multi = CBSigmoidLoss([900, 90, 10], 0.99, from_logits=True,
        ...                       weighting="class", ignore_class=-1)
        >>> targets = np.array([[1, 0, -1], [-1, -1, -1]], "float32")
        >>> round(float(multi(targets, logits)), 4)
        0.2949

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
    n_pos))`. Unknown entries of multi-label targets: `ignore_class`, as in
    `CBSigmoidLoss`.

    Args:
        class_counts: 1-D array-like of training counts per class
            (`[n_neg, n_pos]` for a one-unit head), or `None` to set them
            later. Defaults to `None`.
        beta: Float in [0, 1). Defaults to `0.999`.
        gamma: Focusing parameter, float >= 0. Defaults to `1.0`. The paper
            used 0.5 to 2.0 (1.0 for CIFAR, 0.5 for ImageNet/iNaturalist).
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        weighting: `"sample"` (default) or `"class"`, as in `CBSigmoidLoss`.
        ignore_class: Optional int label value to skip: sparse positions
            and unknown entries of dense targets, as in `CBSigmoidLoss`.
            Defaults to `None`.
        reduction: Defaults to `"sum_over_batch_size"`.
            `"mean_with_sample_weight"` divides by the batch's sum of the
            class weights times `sample_weight`, as in `CBSigmoidLoss`.
        name: Defaults to `"cb_focal_loss"`.
        dtype: Dtype of the loss computation. Defaults to `None`.

    Raises:
        ValueError, TypeError: For invalid counts, beta, gamma,
            `from_logits`, `weighting` or `ignore_class`. When called: as
            `cb_focal_crossentropy`.

    Examples:
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
