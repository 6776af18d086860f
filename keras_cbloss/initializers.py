"""Output-bias initialisation for sigmoid and focal heads."""

import numbers

import keras
import numpy as np
from keras import ops


def _prior_to_bias(num_classes_or_prior):
    value = num_classes_or_prior
    if isinstance(value, bool):
        raise TypeError(
            "Invalid type for argument `num_classes_or_prior`. Expected an "
            "int number of classes, a float prior or a 1-D array of priors. "
            f"Received: {value!r}"
        )
    if isinstance(value, (numbers.Integral, np.integer)):
        if value < 2:
            raise ValueError(
                "Invalid value for argument `num_classes_or_prior`. Expected "
                "at least 2 classes. For a one-unit (binary) head, pass the "
                "positive-class prior as a float, e.g. "
                f"`n_pos / (n_neg + n_pos)`. Received: {value}"
            )
        prior = np.float64(1.0 / value)
    else:
        try:
            prior = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(
                "Invalid type for argument `num_classes_or_prior`. Expected "
                "an int number of classes, a float prior or a 1-D array of "
                f"priors. Received: {value!r}"
            ) from e
        if prior.ndim > 1 or not np.all((prior > 0) & (prior < 1)):
            raise ValueError(
                "Invalid value for argument `num_classes_or_prior`. Expected "
                "priors strictly between 0 and 1 (a float, or a 1-D array "
                f"with one prior per class). Received: {value!r}"
            )
    return -np.log((1.0 - prior) / prior)


def _check_units(prior, shape):
    """Raises when a number of classes differs from the bias's units."""
    is_count = isinstance(prior, (numbers.Integral, np.integer)) and (
        not isinstance(prior, bool)
    )
    if not is_count or len(shape) == 0 or shape[-1] == prior:
        return
    units = shape[-1]
    if units == 1:
        raise ValueError(
            "Invalid value for argument `num_classes_or_prior`. A one-unit "
            "(binary) head has one logit, the positive class's: pass the "
            "positive-class prior as a float, e.g. "
            "`prior_bias_initializer(n_pos / (n_neg + n_pos))`. Received: "
            f"num_classes_or_prior={prior} for a bias of shape "
            f"{tuple(shape)}"
        )
    raise ValueError(
        "Invalid value for argument `num_classes_or_prior`. Expected the "
        f"number of output units of the layer, {units} (bias "
        f"shape={tuple(shape)}). Received: num_classes_or_prior={prior}, "
        f"which would start each of the {units} units at the prior "
        f"1/{prior} instead of 1/{units}. Pass "
        f"`prior_bias_initializer({units})`, or give the layer {prior} "
        "units."
    )


@keras.saving.register_keras_serializable(package="keras_cbloss")
class PriorBiasInitializer(keras.initializers.Constant):
    """Initialises a bias to b = -log((1 - pi) / pi), the logit of pi.

    Made by `prior_bias_initializer`; see there. `prior` is the argument it
    was given: a number of classes, a float or a list of per-class priors.

    It is a `keras.initializers.Constant` holding the computed bias, and it
    is saved as one: a model file names `keras.initializers.Constant` with
    the bias values, so Keras alone loads the model (a serving process
    needs no `keras_cbloss`). Until then it also checks that a number of
    classes C matches the layer's units.
    """

    def __init__(self, prior):
        self.prior = prior
        bias = _prior_to_bias(prior)
        super().__init__(bias.tolist() if bias.ndim else float(bias))

    # Keras saves an initializer under the name of `obj.__class__`: naming
    # the built-in here makes the saved config `keras.initializers.Constant`
    # with `get_config()`'s values, which loads without this package.
    # `type(obj)` and `isinstance` still see this class.
    @property
    def __class__(self):
        return keras.initializers.Constant

    def __call__(self, shape, dtype=None):
        _check_units(self.prior, shape)
        bias = np.broadcast_to(np.asarray(self.value, np.float64), shape)
        return ops.convert_to_tensor(bias, dtype=dtype or "float32")

    def get_config(self):
        return {"value": self.value}

    @classmethod
    def from_config(cls, config):
        if "prior" in config:  # files saved by keras-cbloss 0.1.0
            return cls(config["prior"])
        return keras.initializers.Constant.from_config(config)


def prior_bias_initializer(num_classes_or_prior):
    """Bias initializer that starts sigmoid outputs at a class prior.

    Formula:

    ```
    b = -log((1 - pi) / pi),   pi = 1 / C when given C classes
    ```

    For a one-unit binary head (`Dense(1)` with `CBSigmoidLoss` or
    `CBFocalLoss([n_neg, n_pos], ...)`), pass the positive-class prior
    `pi = n_pos / (n_neg + n_pos)` as a float: the head then starts at the
    training set's positive rate instead of p = 0.5.

    With sigmoid or focal losses a zero bias starts every class at p = 0.5,
    so the C - 1 negative terms of each sample dominate the first steps;
    starting at p = pi avoids that (Lin et al., 2017; Cui et al. use
    pi = 1 / C, the official code -log(C - 1), the same value).

    Args:
        num_classes_or_prior: The number of classes C (int >= 2, giving
            pi = 1 / C for every unit), one prior pi in (0, 1) (for a
            one-unit head: the positive-class prior), or a 1-D array-like
            of per-class priors (e.g. class frequencies), whose length must
            match the layer's units.

    Returns:
        A `PriorBiasInitializer`, a `keras.initializers.Constant` with the
        computed bias: a model saves it as `keras.initializers.Constant`,
        so the model file loads where `keras_cbloss` is not installed.

    Raises:
        ValueError: For fewer than 2 classes (the message says what to pass
            for a one-unit head) or priors outside (0, 1); when
            initialising, for a number of classes C that differs from the
            layer's units (bias shape `[..., C]` expected).
        TypeError: For values that are not numbers.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> from keras_cbloss import prior_bias_initializer
        >>> init = prior_bias_initializer(10)
        >>> np.round(np.asarray(init((10,)))[:3], 4)
        array([-2.1972, -2.1972, -2.1972], dtype=float32)
        >>> head = keras.layers.Dense(10, bias_initializer=init)
        >>> # A one-unit binary head, 4 positives in 64 training samples
        >>> binary = prior_bias_initializer(4 / 64)
        >>> np.round(np.asarray(binary((1,))), 4)
        array([-2.7081], dtype=float32)
        >>> head = keras.layers.Dense(1, bias_initializer=binary)

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555, Section 4.
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002, Section 3.3.
    """
    if isinstance(num_classes_or_prior, (list, tuple)):
        num_classes_or_prior = [float(p) for p in num_classes_or_prior]
    return PriorBiasInitializer(num_classes_or_prior)
