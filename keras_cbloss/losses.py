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

import keras
import numpy as np
from keras import ops

from keras_cbloss._compat import executing_eagerly
from keras_cbloss._compat import in_symbolic_scope
from keras_cbloss._validation import check_beta
from keras_cbloss._validation import check_bool
from keras_cbloss._validation import check_counts
from keras_cbloss._validation import check_gamma
from keras_cbloss._validation import check_weighting
from keras_cbloss.weights import class_balanced_weights

_SIXTEEN_BIT = ("float16", "bfloat16")


# --------------------------------------------------------------------------
# Helpers shared by the loss functions.
# --------------------------------------------------------------------------


def _compute_dtype(dtype):
    # exp/log in bfloat16 keep about 3 significant digits, and float16
    # overflows at 65504, so 16-bit inputs are evaluated in float32 and the
    # result is cast back.
    return "float32" if dtype in _SIXTEEN_BIT else dtype


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


def _check_num_classes(y_pred, class_weights):
    num_classes = y_pred.shape[-1]
    if num_classes is not None and num_classes != class_weights.shape[0]:
        raise ValueError(
            f"The predictions have {num_classes} classes (y_pred.shape="
            f"{tuple(y_pred.shape)}) but there are {class_weights.shape[0]} "
            "class weights (one per class count). Pass one count per output "
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


def _sparse_labels(y_true, num_classes):
    """Class ids as int32 plus a mask of the ids that are valid.

    Invalid ids (outside [0, C), or non-integral floats) raise when the
    values can be inspected; in compiled code they give a NaN loss, so that
    training fails visibly instead of silently counting them as class 0.
    """
    y_true = ops.convert_to_tensor(y_true)
    floating = "float" in str(y_true.dtype)
    labels = ops.cast(y_true, "int32")
    valid = ops.logical_and(labels >= 0, labels < num_classes)
    if floating:
        valid = ops.logical_and(valid, ops.equal(y_true, ops.floor(y_true)))
    if executing_eagerly(labels) and not bool(ops.all(valid)):
        bad = ops.convert_to_numpy(y_true)[~ops.convert_to_numpy(valid)]
        # Keras hands labels over as floats; show integral ids as ints.
        bad = [int(v) if float(v).is_integer() else float(v) for v in bad]
        raise ValueError(
            "Invalid sparse labels. Expected integer class ids in "
            f"[0, {num_classes}). Received values {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}. Check the label encoding, "
            "or pass dense (one-hot) labels."
        )
    safe_labels = ops.where(valid, labels, ops.zeros_like(labels))
    return safe_labels, valid


def _mask_invalid(loss, valid):
    if valid is None:
        return loss
    return ops.where(valid, loss, ops.full_like(loss, np.nan))


def _prepare(y_true, y_pred, class_weights):
    """Shared front end: casts, label form, class weights and checks."""
    y_pred = ops.convert_to_tensor(y_pred)
    out_dtype = keras.backend.standardize_dtype(y_pred.dtype)
    dtype = _compute_dtype(out_dtype)
    y_pred = ops.cast(y_pred, dtype)
    weights = _weights_tensor(class_weights, dtype)
    _check_num_classes(y_pred, weights)
    num_classes = weights.shape[0]
    y_true = ops.convert_to_tensor(y_true)
    if _is_sparse(y_true.shape, y_pred.shape):
        # Only the `[..., 1]` form has a trailing 1 to drop: ids of shape
        # y_pred.shape[:-1] may end in 1 themselves (a batch of one sample,
        # a sequence of length 1).
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        labels, valid = _sparse_labels(y_true, num_classes)
        return labels, None, valid, y_pred, weights, out_dtype
    return None, ops.cast(y_true, dtype), None, y_pred, weights, out_dtype


def _class_mask(labels, num_classes):
    """Boolean one-hot rows `[..., C]` for valid int32 class ids."""
    # Compared as float32 where that is exact: XLA on CPU vectorises a float
    # comparison with the class index much better than an int32 one (the
    # fused sparse sigmoid loss runs about 1.3x faster on JAX).
    compare = "float32" if num_classes <= 2**24 else "int32"
    ids = ops.expand_dims(ops.cast(labels, compare), -1)
    return ops.equal(ids, ops.arange(num_classes, dtype=compare))


def _binary_terms(y_pred, target, from_logits, focal):
    """-log(p_t) and, if `focal`, -log(1 - p_t) of each sigmoid output.

    p_t is p where the target is 1 and 1 - p where it is 0: the first term
    is the binary cross-entropy, the second the exponent of the focal
    modulator (1 - p_t) ** gamma. `target` is a boolean class mask (sparse
    labels) or float targets in [0, 1], which interpolate linearly.
    """
    # -log(p) = part_p + shared and -log(1 - p) = part_1mp + shared.
    if from_logits:
        # softplus(-z) = relu(-z) + log1p(exp(-|z|)) and softplus(z) =
        # relu(z) + log1p(exp(-|z|)): one exp and one log1p per element,
        # shared, and no overflow. z = 0 takes the z < 0 side in every
        # branch (relu's gradient is 0 there, relu(-z)'s is -1 here), so
        # the gradient at 0 is exactly sigmoid(0) - t. Each element reaches
        # z through one of the two branches only: no terms of size 1 cancel
        # where the true gradient is tiny, as they would in relu(z) - z.
        # (A product rather than `where`, whose gradient costs TensorFlow
        # three full-size kernels.)
        z = y_pred
        part_1mp = ops.relu(z)
        part_p = -z * ops.cast(z <= 0, z.dtype)
        shared = ops.log1p(ops.exp(-(part_1mp + part_p)))
    else:
        epsilon = keras.config.epsilon()
        p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        part_p, part_1mp, shared = -ops.log(p), -ops.log(1.0 - p), None
    if keras.backend.standardize_dtype(target.dtype) == "bool":
        # Selecting keeps XLA from materialising the one-hot rows (half the
        # temporary memory of the products below, on JAX).
        bce = ops.where(target, part_p, part_1mp)
        exponent = ops.where(target, part_1mp, part_p) if focal else None
    else:
        # Two products rather than part_1mp + t * (part_p - part_1mp): that
        # form cancels to 0 where the true value is tiny but not 0.
        not_target = 1.0 - target
        bce = target * part_p + not_target * part_1mp
        exponent = None
        if focal:
            exponent = target * part_1mp + not_target * part_p
    if shared is not None:
        bce = bce + shared
        exponent = None if exponent is None else exponent + shared
    return bce, exponent


def _per_class_weighted_sum(elementwise, target, labels, weights, weighting):
    """Sums binary terms over classes and applies the class weights."""
    if weighting == "class":
        return ops.matmul(elementwise, weights)
    if labels is not None:
        sample_weight = ops.take(weights, labels)
    else:
        sample_weight = ops.matmul(target, weights)
    return sample_weight * ops.sum(elementwise, axis=-1)


# --------------------------------------------------------------------------
# Per-sample loss functions.
# --------------------------------------------------------------------------


def cb_softmax_crossentropy(y_true, y_pred, class_weights, from_logits=False):
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
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`.
        class_weights: 1-D array-like or tensor of `C` per-class weights,
            e.g. from `class_balanced_weights`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`
            (the model ends in a softmax), as in Keras.

    Returns:
        Per-position losses of shape `y_pred.shape[:-1]`, in `y_pred`'s
        dtype (16-bit inputs are evaluated in float32).

    Raises:
        ValueError: If the shapes do not match, the number of weights
            differs from `y_pred.shape[-1]`, or (when values can be
            inspected) a sparse label is outside `[0, C)`. In compiled code
            such a label gives a NaN loss instead.

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
    labels, target, valid, y_pred, weights, out_dtype = _prepare(
        y_true, y_pred, class_weights
    )
    if labels is not None:
        ce = ops.sparse_categorical_crossentropy(
            labels, y_pred, from_logits=from_logits
        )
        loss = _mask_invalid(ops.take(weights, labels) * ce, valid)
    else:
        ce = ops.categorical_crossentropy(
            target, y_pred, from_logits=from_logits
        )
        loss = ops.matmul(target, weights) * ce
    return ops.cast(loss, out_dtype)


def cb_sigmoid_crossentropy(
    y_true, y_pred, class_weights, from_logits=False, weighting="sample"
):
    """Class-balanced sigmoid cross-entropy of each sample (or position).

    Formula:

    ```
    BCE_c = -(t_c * log(p_c) + (1 - t_c) * log(1 - p_c)),  p = sigmoid(z)
    weighting="sample": loss = (sum_c t_c * w_c) * sum_c BCE_c
    weighting="class":  loss = sum_c w_c * BCE_c
    ```

    The binary terms are SUMMED over classes, as in the paper; Keras'
    `BinaryCrossentropy` averages them, a factor `C` smaller. With
    `weighting="sample"` every binary term of a sample gets its label's class
    weight (the paper); a multi-hot row sums the weights of its classes and a
    row with no positive class gets weight 0. `weighting="class"` balances
    each class's one-vs-all problem by that class's own count, which suits
    multi-label data.

    Args:
        y_true: Sparse class ids (`[...]` or `[..., 1]`) or dense targets
            `[..., C]` in [0, 1].
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`.
        class_weights: 1-D array-like or tensor of `C` per-class weights.
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        weighting: `"sample"` (default) or `"class"`, see above.

    Returns:
        Per-position losses of shape `y_pred.shape[:-1]`, in `y_pred`'s
        dtype.

    Raises:
        ValueError: For mismatched shapes, a wrong number of weights, an
            unknown `weighting`, or (when values can be inspected) sparse
            labels outside `[0, C)`.

    Example:

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
    )


def cb_focal_crossentropy(
    y_true,
    y_pred,
    class_weights,
    gamma=1.0,
    from_logits=False,
    weighting="sample",
):
    """Class-balanced sigmoid focal loss of each sample (or position).

    Formula:

    ```
    p_t  = p_c if t_c = 1 else 1 - p_c,                  p = sigmoid(z)
    FL_c = (1 - p_t) ** gamma * BCE_c
         = exp(-gamma * (t_c * z_c + softplus(-z_c))) * BCE_c
    weighting="sample": loss = (sum_c t_c * w_c) * sum_c FL_c
    weighting="class":  loss = sum_c w_c * FL_c
    ```

    The modulator is evaluated in log space (never `pow(1 - p_t, gamma)`,
    whose gradient is NaN at p_t = 1 for gamma < 1, nor
    `log1p(exp(-z))`, which overflows for z below about -88 in float32).
    For soft targets the exponent interpolates linearly between the two
    binary cases, as in the official implementation. `gamma = 0` gives
    exactly `cb_sigmoid_crossentropy`.

    Args:
        y_true: Sparse class ids (`[...]` or `[..., 1]`) or dense targets
            `[..., C]` in [0, 1].
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`.
        class_weights: 1-D array-like or tensor of `C` per-class weights.
        gamma: Focusing parameter, a float >= 0. Defaults to `1.0`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        weighting: `"sample"` (default) or `"class"`; see
            `cb_sigmoid_crossentropy`.

    Returns:
        Per-position losses of shape `y_pred.shape[:-1]`, in `y_pred`'s
        dtype.

    Raises:
        ValueError: For a negative or non-finite gamma, mismatched shapes, a
            wrong number of weights, an unknown `weighting`, or (when values
            can be inspected) sparse labels outside `[0, C)`.

    Example:

    >>> from keras_cbloss import cb_focal_crossentropy
    >>> logits = np.array([[2.0, 0.0, -1.0]], "float32")
    >>> loss = cb_focal_crossentropy(
    ...     [0], logits, [0.5, 1.0, 1.5], gamma=2.0, from_logits=True)
    >>> np.round(np.asarray(loss), 4)
    array([0.0989], dtype=float32)

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555, Eq. 7.
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    gamma = check_gamma(gamma)
    from_logits = check_bool(from_logits, "from_logits")
    weighting = check_weighting(weighting)
    labels, target, valid, y_pred, weights, out_dtype = _prepare(
        y_true, y_pred, class_weights
    )
    if labels is not None:
        target = _class_mask(labels, weights.shape[0])
    focal = gamma > 0.0
    elementwise, neg_log_one_minus_pt = _binary_terms(
        y_pred, target, from_logits, focal
    )
    if focal:
        elementwise = ops.exp(-gamma * neg_log_one_minus_pt) * elementwise
    loss = _per_class_weighted_sum(
        elementwise, target, labels, weights, weighting
    )
    return ops.cast(_mask_invalid(loss, valid), out_dtype)


# --------------------------------------------------------------------------
# Loss classes.
# --------------------------------------------------------------------------


class ClassBalancedLoss(keras.losses.Loss):
    """Base class of the class-balanced losses: counts, weights and config.

    Subclasses implement `call()` with one of the per-sample functions. The
    class weights are computed in float64 on the host whenever the counts
    are set, and enter compiled code as constants; after changing counts
    during training the train function must be retraced, which
    `ClassCounter` does.

    Args:
        class_counts: 1-D array-like of per-class sample counts from the
            whole training set, or `None` to set them later with
            `set_class_counts` (e.g. by `ClassCounter`).
        beta: Float in [0, 1). Defaults to `0.999`.
        name, reduction, dtype: As for `keras.losses.Loss`.
    """

    def __init__(
        self,
        class_counts=None,
        beta=0.999,
        *,
        name=None,
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._beta = check_beta(beta)
        self._dtype_arg = None if dtype is None else self._dtype_policy.name
        self._class_counts = None
        self._class_weights = None
        self._weights_cache = {}
        self._exact_labels = None
        if class_counts is not None:
            self.set_class_counts(class_counts)

    @property
    def beta(self):
        """The beta hyperparameter, a float in [0, 1)."""
        return self._beta

    @property
    def class_counts(self):
        """Per-class counts (float64 NumPy copy), or `None` if not set."""
        if self._class_counts is None:
            return None
        return self._class_counts.copy()

    @property
    def class_weights(self):
        """Per-class weights (float64 NumPy copy), or `None` if not set."""
        if self._class_weights is None:
            return None
        return self._class_weights.copy()

    def set_class_counts(self, class_counts):
        """Sets the per-class counts and recomputes the class weights.

        Args:
            class_counts: 1-D array-like of non-negative, finite counts,
                one per class.

        Functions already traced with the old weights keep them. In
        mid-training, prefer `ClassCounter`, which retraces the model's
        train and test functions after a change (and, on JAX, also clears
        the jit cache that would otherwise keep the old trace alive).
        """
        counts = check_counts(class_counts)
        self._class_weights = class_balanced_weights(counts, self._beta)
        self._class_counts = counts
        self._weights_cache = {}

    def _weights_or_raise(self, y_pred):
        if self._class_weights is not None:
            return self._eager_weights(y_pred)
        if in_symbolic_scope():
            return np.ones(y_pred.shape[-1] or 1)
        raise ValueError(
            f"`{type(self).__name__}` has no class counts yet. Pass "
            "`class_counts=` (one training-set count per class) when "
            "creating the loss, call `loss.set_class_counts(counts)`, or "
            "add `keras_cbloss.ClassCounter(train_dataset)` to the callbacks "
            "of `fit()` so that it counts the labels at the start of "
            "training."
        )

    def _eager_weights(self, y_pred):
        # Traced code embeds the NumPy weights as a constant. Eager steps
        # (the PyTorch trainer, `run_eagerly=True`) reuse one tensor per
        # dtype and device instead of copying the weights every step.
        if not executing_eagerly(y_pred):
            return self._class_weights
        dtype = _compute_dtype(keras.backend.standardize_dtype(y_pred.dtype))
        key = (dtype, str(getattr(y_pred, "device", "")))
        if key not in self._weights_cache:
            self._weights_cache[key] = ops.convert_to_tensor(
                self._class_weights, dtype=dtype
            )
        return self._weights_cache[key]

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras casts y_true to the loss dtype before `call()`; in bfloat16,
        # class ids above 256 would round to other classes (2048 in
        # float16), so 16-bit losses receive sparse ids uncast.
        if self.dtype in _SIXTEEN_BIT:
            y_true = ops.convert_to_tensor(y_true)
            if _is_sparse(y_true.shape, ops.shape(y_pred)):
                self._exact_labels = y_true
        try:
            return super().__call__(y_true, y_pred, sample_weight)
        finally:
            self._exact_labels = None

    def _labels(self, y_true):
        if self._exact_labels is not None:
            return self._exact_labels
        return y_true

    def get_config(self):
        config = super().get_config()
        counts = self._class_counts
        if counts is not None:
            integral = np.all(counts == np.round(counts))
            counts = [int(c) if integral else float(c) for c in counts]
        config.update(
            {
                "class_counts": counts,
                "beta": self._beta,
                "dtype": self._dtype_arg,
            }
        )
        return config


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
    cross-entropy; `beta -> 1` inverse-frequency weighting.

    Args:
        class_counts: 1-D array-like with the number of training samples of
            each class, or `None` to set them later (`set_class_counts`, or
            the `ClassCounter` callback). Defaults to `None`.
        beta: Float in [0, 1). Defaults to `0.999`. The paper's best values:
            0.9999 on CIFAR-10-LT, 0.99 to 0.999 with 100 classes.
        from_logits: Whether `y_pred` are logits. Defaults to `False`
            (the model ends in a softmax).
        reduction: As in Keras. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"cb_softmax_loss"`.
        dtype: Dtype of the loss computation, as in Keras. Defaults to
            `None` (`keras.config.floatx()`).

    Example:

    >>> import numpy as np
    >>> from keras_cbloss import CBSoftmaxLoss
    >>> loss = CBSoftmaxLoss([900, 90, 10], beta=0.99, from_logits=True)
    >>> np.round(loss.class_weights, 3)
    array([0.228, 0.384, 2.388])
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    >>> round(float(loss([0, 2], logits)), 4)
    1.8719

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
        reduction="sum_over_batch_size",
        name="cb_softmax_loss",
        dtype=None,
    ):
        super().__init__(
            class_counts,
            beta,
            name=name,
            reduction=reduction,
            dtype=dtype,
        )
        self.from_logits = check_bool(from_logits, "from_logits")

    def call(self, y_true, y_pred):
        return cb_softmax_crossentropy(
            self._labels(y_true),
            y_pred,
            self._weights_or_raise(y_pred),
            from_logits=self.from_logits,
        )

    def get_config(self):
        config = super().get_config()
        config["from_logits"] = self.from_logits
        return config


@keras.saving.register_keras_serializable(package="keras_cbloss")
class CBSigmoidLoss(ClassBalancedLoss):
    """Class-balanced sigmoid cross-entropy loss.

    Formula:

    ```
    w_c  = (1 - beta) / (1 - beta ** n_c), scaled to sum to C
    weighting="sample": loss_i = (sum_c y_ic * w_c) * sum_c BCE(y_ic, p_ic)
    weighting="class":  loss_i = sum_c w_c * BCE(y_ic, p_ic)
    loss = mean over samples of loss_i
    ```

    The binary cross-entropies are summed over the C classes (the paper);
    Keras' `BinaryCrossentropy` averages them, so with `beta = 0` this loss
    is `C` times Keras'. Initialise the output bias with
    `prior_bias_initializer(C)` so that training starts at p = 1/C.

    Args:
        class_counts: 1-D array-like of training counts per class, or
            `None` to set them later. Defaults to `None`.
        beta: Float in [0, 1). Defaults to `0.999`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`
            (the model ends in a sigmoid).
        weighting: `"sample"` (default, the paper: every binary term of a
            sample gets its label's weight) or `"class"` (the term of class c
            gets w_c; use it for multi-label data, where rows may have
            several or no positives).
        reduction: Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"cb_sigmoid_loss"`.
        dtype: Dtype of the loss computation. Defaults to `None`.

    Example:

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
        reduction="sum_over_batch_size",
        name="cb_sigmoid_loss",
        dtype=None,
    ):
        super().__init__(
            class_counts,
            beta,
            name=name,
            reduction=reduction,
            dtype=dtype,
        )
        self.from_logits = check_bool(from_logits, "from_logits")
        self.weighting = check_weighting(weighting)

    def call(self, y_true, y_pred):
        return cb_sigmoid_crossentropy(
            self._labels(y_true),
            y_pred,
            self._weights_or_raise(y_pred),
            from_logits=self.from_logits,
            weighting=self.weighting,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"from_logits": self.from_logits, "weighting": self.weighting}
        )
        return config


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
    loss = mean over samples of loss_i
    ```

    `gamma = 0` is exactly `CBSigmoidLoss`. Unlike Keras'
    `BinaryFocalCrossentropy` (which averages over classes and uses a
    single `alpha`), the focal terms are summed over classes and weighted
    per class, as in the paper. Initialise the output bias with
    `prior_bias_initializer(C)`.

    Args:
        class_counts: 1-D array-like of training counts per class, or
            `None` to set them later. Defaults to `None`.
        beta: Float in [0, 1). Defaults to `0.999`.
        gamma: Focusing parameter, float >= 0. Defaults to `1.0`. The paper
            used 0.5 to 2.0 (1.0 for CIFAR, 0.5 for ImageNet/iNaturalist).
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        weighting: `"sample"` (default) or `"class"`, as in `CBSigmoidLoss`.
        reduction: Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"cb_focal_loss"`.
        dtype: Dtype of the loss computation. Defaults to `None`.

    Example:

    >>> from keras_cbloss import CBFocalLoss
    >>> loss = CBFocalLoss([900, 90, 10], 0.99, 2.0, from_logits=True)
    >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
    >>> round(float(loss([0, 2], logits)), 4)
    1.2744

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
        reduction="sum_over_batch_size",
        name="cb_focal_loss",
        dtype=None,
    ):
        super().__init__(
            class_counts,
            beta,
            name=name,
            reduction=reduction,
            dtype=dtype,
        )
        self.gamma = check_gamma(gamma)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.weighting = check_weighting(weighting)

    def call(self, y_true, y_pred):
        return cb_focal_crossentropy(
            self._labels(y_true),
            y_pred,
            self._weights_or_raise(y_pred),
            gamma=self.gamma,
            from_logits=self.from_logits,
            weighting=self.weighting,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "gamma": self.gamma,
                "from_logits": self.from_logits,
                "weighting": self.weighting,
            }
        )
        return config


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

    classes = (CBSoftmaxLoss, CBSigmoidLoss, CBFocalLoss, PriorBiasInitializer)
    objects = {}
    for cls in classes:
        objects[cls.__name__] = cls
        objects[f"keras_cbloss>{cls.__name__}"] = cls
    return objects
