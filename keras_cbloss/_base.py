"""The count-based loss base classes, in the shape of Keras' wrapper.

`CountBasedLoss` holds a per-sample function and its keyword arguments
(as Keras' `LossFunctionWrapper` does), validates them, turns class counts
into one per-class vector on the host and writes `call()` and
`get_config()` once; `ClassBalancedLoss` adds beta and the class-balanced
weights. The public losses (`losses.py`, `logit_adjustment.py`) are a
signature and a docstring over these.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_cbloss._compat import executing_eagerly
from keras_cbloss._compat import get_keras_mask
from keras_cbloss._compat import in_symbolic_scope
from keras_cbloss._compat import set_keras_mask
from keras_cbloss._labels import _SIXTEEN_BIT
from keras_cbloss._labels import _align_sample_weight
from keras_cbloss._labels import _check_not_strings
from keras_cbloss._labels import _check_sample_weight_shape
from keras_cbloss._labels import _compute_dtype
from keras_cbloss._labels import _is_sparse
from keras_cbloss._labels import _prepare
from keras_cbloss._labels import _sample_weights
from keras_cbloss._validation import check_beta
from keras_cbloss._validation import check_bool
from keras_cbloss._validation import check_counts
from keras_cbloss._validation import check_gamma
from keras_cbloss._validation import check_ignore_class
from keras_cbloss._validation import check_tau
from keras_cbloss._validation import check_weighting
from keras_cbloss.weights import class_balanced_weights

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


# The reduction whose divisor is the batch's sum of the weights: with the
# class-balanced losses, the class weight joins the sample weight there.
WEIGHTED_MEAN = "mean_with_sample_weight"


def _same_rank(factor, sample_weight):
    """Aligns `sample_weight` with per-position `factor` as Keras aligns it
    with per-position losses (`squeeze_or_expand_to_same_rank`): a trailing
    unit axis on one side is dropped, or added to a rank-1 other side."""
    factor_rank, weight_rank = len(factor.shape), len(sample_weight.shape)
    if weight_rank == factor_rank + 1 and sample_weight.shape[-1] == 1:
        if factor_rank == 1:
            return ops.expand_dims(factor, -1), sample_weight
        return factor, ops.squeeze(sample_weight, axis=-1)
    if factor_rank == weight_rank + 1 and factor.shape[-1] == 1:
        if weight_rank == 1:
            return factor, ops.expand_dims(sample_weight, -1)
        return ops.squeeze(factor, axis=-1), sample_weight
    return factor, sample_weight


def _without_factor(loss, factor):
    """`loss / factor` where the factor is positive, `loss` elsewhere.

    The per-position loss is `factor * unweighted`; where the factor is 0
    (a multi-hot row without positives) the loss is 0 too, or NaN for an
    unusable label, which must stay. Computed in float32 for 16-bit losses;
    the Keras mask of `loss` is kept.
    """
    mask = get_keras_mask(loss)
    dtype = keras.backend.standardize_dtype(loss.dtype)
    value = ops.cast(loss, _compute_dtype(dtype))
    factor = ops.cast(factor, value.dtype)
    positive = factor > 0
    safe = ops.where(positive, factor, ops.ones_like(factor))
    value = ops.cast(ops.where(positive, value / safe, value), dtype)
    if mask is not None:
        set_keras_mask(value, mask)
    return value


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

    With `reduction="mean_with_sample_weight"`, a subclass whose per-class
    vector is a per-sample weight (`_class_weight_factor`) has it count as
    a sample weight, as in `fit(class_weight=...)` and PyTorch's
    `cross_entropy(weight=w)`: `__call__` hands Keras' reduction
    `sample_weight = factor * sample_weight` and `call()` returns the
    per-position loss with the factor divided out, so the batch loss is
    `sum(factor * loss * sample_weight) / sum(factor * sample_weight)`
    (masks and ignored positions left out of both sums).

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
        # The class-weight factor of the positions of the current call when
        # it travels as a sample weight (see `__call__`), else None.
        self._class_factor = None
        # Set once `call()` runs in compiled code, which embeds the
        # per-class vector as a constant (see `_warn_if_traced`).
        self._traced = False
        # The stale-trace warning is given once per loss.
        self._warned_stale = False
        if class_counts is not None:
            self.set_class_counts(class_counts)

    def _per_class_from_counts(self, counts):
        """The float64 per-class vector that `fn` takes, from the counts."""
        raise NotImplementedError

    def _hyperparameters(self):
        """The subclass's own config entries that `fn` does not take."""
        return {}

    def _class_weight_factor(self, y_true, y_pred):
        """Each position's class weight, `[...]`, or `None` if none.

        Used with `reduction="mean_with_sample_weight"`: the factor that
        multiplies a position's unweighted loss. `None` means the per-class
        vector is not a per-sample weight, and Keras' reduction divides by
        the sum of the sample weights alone.
        """
        return None

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
        already traced into a model's step functions warns, once per
        loss): after a
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
        """Warns when compiled step functions hold other per-class values.

        Once per loss: a schedule that changes the weights every epoch and
        rebuilds the step functions itself (the documented fix) is told
        once, not at every change.
        """
        if not self._traced or self._per_class is None or self._warned_stale:
            return
        if np.array_equal(self._per_class, per_class):
            return
        self._warned_stale = True
        warnings.warn(
            f"`{type(self).__name__}.{method}()` changed the per-class "
            "weights of a loss already traced into compiled step functions "
            "(by `fit()`, `evaluate()` or `train_on_batch()`); those "
            "functions keep the old weights as constants, so `fit()` and "
            "`evaluate()` would still use them. To use the new weights, "
            f"{_RETRACE_FIX}. (Given once per loss.)",
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
        if sample_weight is not None:
            _check_sample_weight_shape(sample_weight, y_pred)
            sample_weight = _align_sample_weight(sample_weight, y_pred)
        # `Loss.__call__` casts y_true to the loss dtype before `call()`; in
        # bfloat16, class ids above 256 would round to other classes (2048
        # in float16). So a 16-bit loss hands its sparse ids to `call()`
        # uncast, through `_uncast_labels`: set here for the duration of
        # this one call only, read by `call()`, cleared in `finally`.
        if self.dtype in _SIXTEEN_BIT:
            y_true = ops.convert_to_tensor(y_true)
            if _is_sparse(y_true.shape, ops.shape(y_pred)):
                self._uncast_labels = y_true
        if sample_weight is not None and keras.backend.backend() == "torch":
            # Keras' reduction multiplies the sample weight by the loss's
            # Keras mask in place (`sample_weight *= mask`), which on PyTorch
            # would rewrite the caller's tensor (that `fit` hands on to
            # `weighted_metrics=`): reduce a copy.
            sample_weight = ops.copy(sample_weight)
        if self.reduction == WEIGHTED_MEAN:
            factor = self._class_weight_factor(y_true, y_pred)
            if factor is not None:
                # The class weight becomes a sample weight: Keras' reduction
                # then divides by the batch's sum of both (masks included),
                # and `call()` divides it out of the per-position loss.
                sample_weight = self._times_sample_weight(factor, sample_weight)
                self._class_factor = factor
        try:
            return super().__call__(y_true, y_pred, sample_weight)
        finally:
            self._uncast_labels = None
            self._class_factor = None

    @staticmethod
    def _times_sample_weight(factor, sample_weight):
        if sample_weight is None:
            return factor
        sample_weight = ops.cast(sample_weight, factor.dtype)
        factor, sample_weight = _same_rank(factor, sample_weight)
        return factor * sample_weight

    def call(self, y_true, y_pred):
        if self._uncast_labels is not None:
            y_true = self._uncast_labels
        if not executing_eagerly(y_pred) and not in_symbolic_scope():
            self._traced = True
        fn_kwargs = {name: getattr(self, name) for name in self._fn_arg_names}
        loss = self.fn(
            y_true, y_pred, self._per_class_or_raise(y_pred), **fn_kwargs
        )
        if self._class_factor is not None:
            loss = _without_factor(loss, self._class_factor)
        return loss

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

    def _class_weight_factor(self, y_true, y_pred):
        # The weight each position's loss is multiplied by: w[y] for class
        # ids, sum_c y_c * w_c for dense rows, (1 - t) * w_0 + t * w_1 for
        # a one-unit head. With weighting="class" on C units the weights
        # scale the terms within a sample and average 1 over the classes
        # (they sum to C): no per-sample factor.
        y_pred = ops.convert_to_tensor(y_pred)
        one_unit = y_pred.shape[-1] == 1
        if getattr(self, "weighting", "sample") == "class" and not one_unit:
            return None
        inputs = _prepare(
            y_true,
            y_pred,
            self._per_class_or_raise(y_pred),
            getattr(self, "ignore_class", None),
        )
        return _sample_weights(
            inputs.target, inputs.labels, inputs.weights, inputs.binary_head
        )

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
        (a loss already traced into a model's step functions warns, once
        per loss): after a change, call
        `model.make_train_function(force=True)` and
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
