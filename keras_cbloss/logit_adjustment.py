"""Logit adjustment: the alternative to re-weighting (Menon et al., 2021).

Instead of weighting each sample by its class, the logit-adjusted loss adds
`tau * log(prior)` to the logits inside the softmax cross-entropy, so that
the model's own logits learn the balanced (prior-free) scores; `tau = 1`
is Ren et al.'s balanced softmax. `logit_adjust` is the post-hoc variant:
it subtracts `tau * log(prior)` from the logits of a model trained with
plain cross-entropy.

The loss is a pair, like the class-balanced ones: a per-sample function
taking the per-class log prior (`class_log_prior(counts)`), and a
`keras.losses.Loss` subclass built on `CountBasedLoss` that takes counts
(or waits for `ClassCounter`) and derives the log prior once, in float64.
"""

import keras
import numpy as np
from keras import ops

from keras_cbloss._base import CountBasedLoss
from keras_cbloss._labels import _check_prediction_rank
from keras_cbloss._labels import _finish
from keras_cbloss._labels import _prepare
from keras_cbloss._validation import check_bool
from keras_cbloss._validation import check_ignore_class
from keras_cbloss._validation import check_tau
from keras_cbloss.weights import class_log_prior


def _check_softmax_units(y_pred):
    _check_prediction_rank(y_pred)
    if ops.shape(y_pred)[-1] == 1:
        raise ValueError(
            "Logit adjustment shifts the logits of a softmax, and a softmax "
            "over one output unit is always 1. Give the model 2 output "
            "units (class ids 0/1) with `class_counts=[n_neg, n_pos]`, or "
            "use `CBSigmoidLoss` / `CBFocalLoss` for a one-unit head. "
            f"Received: y_pred.shape={tuple(ops.shape(y_pred))}"
        )


def _check_log_prior(log_prior):
    """Checks a host-side log prior: 1-D and finite (no -inf, no NaN)."""
    if not isinstance(log_prior, (list, tuple, np.ndarray)):
        return log_prior  # a tensor, e.g. the loss's cached one
    array = np.asarray(log_prior, dtype=np.float64)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(
            "Invalid value for argument `log_prior`. Expected a 1-D array "
            "of finite per-class log priors. Received: "
            f"log_prior={array.tolist()}. Compute it with "
            "`keras_cbloss.class_log_prior(class_counts)`, which gives a "
            "class with a count of 0 a finite value."
        )
    return array


def _log_probabilities(y_pred):
    """log(p) of probability rows, renormalised and clipped as Keras does."""
    epsilon = keras.config.epsilon()
    p = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
    return ops.log(ops.clip(p, epsilon, 1.0 - epsilon))


def logit_adjusted_crossentropy(
    y_true, y_pred, log_prior, tau=1.0, from_logits=False, ignore_class=None
):
    """Logit-adjusted softmax cross-entropy of each sample (or position).

    Formula:

    ```
    z    = y_pred if from_logits else log(clip(p / sum(p), eps, 1 - eps))
    loss = CE(y, softmax(z + tau * log_prior))
         = -sum_c y_c * log(q_c),
    q_c  = prior_c**tau * exp(z_c) / sum_k prior_k**tau * exp(z_k)
    ```

    The model's logits z are trained to be the balanced scores: the
    training label prior enters only through the additive
    `tau * log_prior`, so at inference `argmax(z)` needs no correction.
    `tau = 0` is plain cross-entropy, `tau = 1` the balanced softmax. With
    probabilities (`from_logits=False`) z is their log, clipped like Keras
    clips probabilities; then `softmax(z + tau * log_prior)` is `p_c *
    prior_c**tau` renormalised. Only differences between classes matter:
    adding a constant to `log_prior` (e.g. `log(counts)` instead of
    `log(counts / sum(counts))`) gives the same loss.

    Args:
        y_true: Sparse class ids of shape `[...]` or `[..., 1]`, or dense
            labels `[..., C]` in [0, 1], one class per row (one-hot, or
            soft rows summing to 1; multi-hot rows raise: use
            `cb_sigmoid_crossentropy` or `cb_focal_crossentropy` for
            multi-label targets).
        y_pred: Probabilities (`from_logits=False`) or logits, `[..., C]`
            with `C >= 2` and at least two dimensions.
        log_prior: 1-D array-like or tensor of the `C` per-class log
            priors, finite; `class_log_prior(class_counts)` computes them.
            Array-likes are checked; a tensor is used as given.
        tau: Float >= 0, the scale of the adjustment. Defaults to `1.0`.
            The official code (google-research `logit_adjustment`) adds
            `log(prior**tau + 1e-12)`, which equals `tau * log(prior)`
            unless a prior is below about 1e-6 (a count of 0 gets -27.6
            there); to reproduce it exactly, pass that vector as
            `log_prior` with `tau=1.0`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        ignore_class: Optional int label value to skip, as in
            `cb_softmax_crossentropy`: sparse positions, and dense rows made
            only of it (a row with only some such entries raises).
            Defaults to `None`.

    Returns:
        Per-position losses of shape `y_pred.shape[:-1]`, in `y_pred`'s
        dtype (16-bit inputs are evaluated in float32).

    Raises:
        ValueError: For a negative or non-finite tau, a non-finite or
            non-1-D `log_prior`, mismatched shapes, `y_pred` with one unit
            or no class axis (rank 1), a wrong number of classes,
            `ignore_class` 0 or 1 with dense labels, or (when values can be
            inspected) sparse labels outside `[0, C)`, dense labels outside
            [0, 1] (other than `ignore_class`), dense rows only partly
            `ignore_class`, or multi-hot rows (summing to more than 1, with
            a tolerance of 0.01 for rounding). In compiled code such labels
            give a NaN loss instead.
        TypeError: For string labels, or a non-float tau.

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import class_log_prior
        >>> from keras_cbloss import logit_adjusted_crossentropy
        >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
        >>> log_prior = class_log_prior([900, 90, 10])
        >>> loss = logit_adjusted_crossentropy(
        ...     [0, 2], logits, log_prior, tau=1.0, from_logits=True)
        >>> np.round(np.asarray(loss), 4)
        array([0.014, 4.749], dtype=float32)

    References:
        Menon et al., "Long-tail learning via logit adjustment", ICLR 2021,
        arXiv:2007.07314, Eq. 10.
        Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual
        Recognition", NeurIPS 2020, arXiv:2007.10740, Eq. 4.
    """
    tau = check_tau(tau)
    from_logits = check_bool(from_logits, "from_logits")
    ignore_class = check_ignore_class(ignore_class)
    _check_softmax_units(y_pred)
    log_prior = _check_log_prior(log_prior)
    inputs = _prepare(
        y_true,
        y_pred,
        log_prior,
        ignore_class,
        "log priors",
        softmax="`LogitAdjustedLoss` (`logit_adjusted_crossentropy`)",
    )
    z = inputs.y_pred if from_logits else _log_probabilities(inputs.y_pred)
    adjusted = z + tau * inputs.weights
    if inputs.labels is not None:
        loss = ops.sparse_categorical_crossentropy(
            inputs.labels, adjusted, from_logits=True
        )
    else:
        loss = ops.categorical_crossentropy(
            inputs.target, adjusted, from_logits=True
        )
    return _finish(loss, inputs)


def logit_adjust(logits, class_counts, tau=1.0):
    """Post-hoc logit adjustment: logits minus `tau * log(prior)`.

    Formula:

    ```
    adjusted_c = z_c - tau * log(prior_c),   prior_c = n_c / sum(n)
    prediction = argmax_c adjusted_c
    ```

    For a model trained with plain cross-entropy on long-tailed data, whose
    softmax estimates the training posterior p(y | x) ~ prior_y p(x | y),
    `argmax` of the adjusted logits is the Bayes-optimal prediction for the
    balanced error when `tau = 1` (Menon et al., Section 4). Tune
    `tau` on a validation split. Do not apply it to a model trained with
    `LogitAdjustedLoss`, whose logits are already adjusted. Zero counts
    are handled as in `class_log_prior`. For probabilities, pass
    `ops.log(probabilities)`.

    Args:
        logits: Array or tensor `[..., C]` of logits (or log
            probabilities), float; also a symbolic model output, to build
            a serving model that predicts with the adjusted logits.
        class_counts: 1-D array-like of the `C` training counts per class
            (or any vector proportional to the prior).
        tau: Float >= 0. Defaults to `1.0`. The official code subtracts
            `log(prior**tau + 1e-12)` instead of `tau * log(prior)`: the
            same unless a prior is below about 1e-6.

    Returns:
        A tensor like `logits` (same shape and dtype).

    Raises:
        ValueError, TypeError: For invalid counts or tau, or when
            `logits.shape[-1]` differs from the number of counts.

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import logit_adjust
        >>> logits = np.array([[2.0, 0.0, -1.0]], "float32")
        >>> np.round(np.asarray(logit_adjust(logits, [900, 90, 10])), 4)
        array([[2.1054, 2.4079, 3.6052]], dtype=float32)

    References:
        Menon et al., "Long-tail learning via logit adjustment", ICLR 2021,
        arXiv:2007.07314, Section 4 (post-hoc logit adjustment).
    """
    tau = check_tau(tau)
    log_prior = class_log_prior(class_counts)
    if not isinstance(logits, keras.KerasTensor):  # symbolic: model outputs
        logits = ops.convert_to_tensor(logits)
    dtype = keras.backend.standardize_dtype(logits.dtype)
    if "float" not in dtype:
        raise TypeError(
            "Invalid type for argument `logits`. Expected a float array. "
            f"Received dtype {dtype}."
        )
    if ops.shape(logits)[-1] != log_prior.shape[0]:
        raise ValueError(
            f"The logits have {ops.shape(logits)[-1]} classes (shape "
            f"{tuple(ops.shape(logits))}) but there are {log_prior.shape[0]} "
            "class counts. Pass one count per output unit."
        )
    shift = ops.convert_to_tensor(tau * log_prior, dtype="float32")
    return ops.cast(ops.cast(logits, "float32") - shift, dtype)


@keras.saving.register_keras_serializable(package="keras_cbloss")
class LogitAdjustedLoss(CountBasedLoss):
    """Logit-adjusted softmax cross-entropy (balanced softmax at tau = 1).

    Formula:

    ```
    log_prior_c = log(n_c / sum(n))
    loss = mean over samples of CE(y, softmax(z + tau * log_prior))
    ```

    The alternative to re-weighting: every sample keeps weight 1, and the
    label prior is added to the logits during training, so that the
    model's logits z become the balanced scores and `argmax(z)` targets the
    balanced error (Menon et al.). `tau = 0` is Keras' plain
    cross-entropy; `tau = 1` is Ren et al.'s balanced softmax. Takes the
    same labels as `CBSoftmaxLoss` (one class per row: multi-hot rows
    have no meaning in a softmax and raise, naming `CBSigmoidLoss` /
    `CBFocalLoss` for multi-label data), counts from `ClassCounter`, and
    saves its counts and tau in the config. With `from_logits=False` the
    logits are the logs of the probabilities, clipped as in Keras.

    A class with a count of 0 (which cannot appear in the training labels)
    is given the count of the rarest class that occurs, with a warning
    (see `class_log_prior`): the loss stays finite, never NaN.

    Args:
        class_counts: 1-D array-like with the number of training samples of
            each class (at least two classes), or `None` to set them later
            (`set_class_counts`, or the `ClassCounter` callback). Defaults
            to `None`.
        tau: Float >= 0, the scale of the adjustment. Defaults to `1.0`
            (Menon et al. found 1 close to best; tune on validation data).
            The official code adds `log(prior**tau + 1e-12)`, which equals
            `tau * log(prior)` unless a prior is below about 1e-6; to
            reproduce it exactly, call `logit_adjusted_crossentropy` with
            that vector as `log_prior` and `tau=1.0`.
        from_logits: Whether `y_pred` are logits. Defaults to `False`.
        ignore_class: Optional int label value to skip, as in
            `CBSoftmaxLoss` (sparse positions, and dense rows made only of
            it). Defaults to `None`.
        reduction: As in Keras. Defaults to `"sum_over_batch_size"`. The
            loss has no class weights (every sample keeps weight 1), so
            `"mean_with_sample_weight"` is Keras' own: the batch's sum of
            `loss * sample_weight` over the sum of `sample_weight`.
        name: Defaults to `"logit_adjusted_loss"`.
        dtype: Dtype of the loss computation, as in Keras. Defaults to
            `None` (`keras.config.floatx()`).

    Raises:
        ValueError, TypeError: For invalid counts (fewer than two classes
            included, or all zero), tau, `from_logits` or `ignore_class`.
            When called: as `logit_adjusted_crossentropy` (e.g. multi-hot
            rows).

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import LogitAdjustedLoss
        >>> loss = LogitAdjustedLoss([900, 90, 10], tau=1.0, from_logits=True)
        >>> np.round(loss.log_prior, 4)
        array([-0.1054, -2.4079, -4.6052])
        >>> logits = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], "float32")
        >>> round(float(loss([0, 2], logits)), 4)
        2.3815

    References:
        Menon et al., "Long-tail learning via logit adjustment", ICLR 2021,
        arXiv:2007.07314, Eq. 10.
        Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual
        Recognition", NeurIPS 2020, arXiv:2007.10740, Eq. 4.
    """

    def __init__(
        self,
        class_counts=None,
        tau=1.0,
        *,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        name="logit_adjusted_loss",
        dtype=None,
    ):
        super().__init__(
            logit_adjusted_crossentropy,
            class_counts,
            name=name,
            reduction=reduction,
            dtype=dtype,
            tau=tau,
            from_logits=from_logits,
            ignore_class=ignore_class,
        )

    def _per_class_from_counts(self, counts):
        return class_log_prior(counts)

    @property
    def log_prior(self):
        """Per-class log prior (float64 NumPy copy), or `None` if not set.

        Classes with a count of 0 hold the rarest observed class's value.
        """
        if self._per_class is None:
            return None
        return self._per_class.copy()

    @property
    def class_weights(self):
        """Always `None`: this loss adjusts logits instead of weighting.

        Present so that code written for the class-balanced losses (such
        as `ClassCounter`, which looks for `set_class_counts` and
        `class_weights`) treats this loss like them. See `log_prior`.
        """
        return None
