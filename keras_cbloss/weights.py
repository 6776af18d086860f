"""Effective number of samples and class-balanced weights, in float64 NumPy.

The weights are computed once, on the host, when a loss is built or its
counts are set; the losses only cast them to the prediction dtype.
"""

import warnings

import numpy as np

from keras_cbloss._validation import check_beta
from keras_cbloss._validation import check_bool
from keras_cbloss._validation import check_counts


def effective_number(counts, beta):
    """Effective number of samples of each class.

    Formula:

    ```
    E(n_c) = (1 - beta ** n_c) / (1 - beta)
    ```

    E grows like n_c for small classes and saturates at 1 / (1 - beta) for
    large ones: beyond that size new samples mostly overlap old ones. With
    `beta = 0` every class with at least one sample has E = 1; a class with
    no samples has E = 0 for every beta.

    Args:
        counts: 1-D array-like of per-class sample counts `n_c` (integers,
            or non-negative floats for weighted counts).
        beta: Float in [0, 1), the paper's hyperparameter.

    Returns:
        NumPy float64 array of shape `[C]`.

    Raises:
        ValueError: If `counts` is not 1-D, is empty, has negative or
            non-finite entries, or if `beta` is outside [0, 1).
        TypeError: If `counts` or `beta` are not numbers.

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import effective_number
        >>> np.round(effective_number([1, 10, 1000], beta=0.9), 4)
        array([ 1.    ,  6.5132, 10.    ])

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555, Eq. 3 (Definition 1).
    """
    counts = check_counts(counts)
    beta = check_beta(beta)
    if beta == 0.0:
        return (counts > 0).astype(np.float64)
    # 1 - beta**n loses most of its digits when beta is close to 1 and n is
    # small; -expm1(n * log(beta)) keeps them.
    return -np.expm1(counts * np.log(beta)) / (1.0 - beta)


def class_balanced_weights(counts, beta=0.999, normalize=True):
    """Class-balanced weights, the inverse effective number of each class.

    Formula:

    ```
    w_c = 1 / E(n_c) = (1 - beta) / (1 - beta ** n_c)
    w   = w * K / sum(w)        # when normalize=True
    ```

    `K` is the number of classes with a non-zero count, which is `C` when
    every class occurs (the official implementation's convention: the
    weights sum to the number of classes, keeping a weighted loss on the
    scale of the unweighted one). `beta = 0` gives all ones; `beta -> 1`
    tends to inverse class frequency. When every count is large enough that
    `beta ** n_c` underflows, all classes get the same weight: that is the
    formula, not a bug (pick a beta closer to 1).

    Classes with a count of zero get weight 0 (and a warning naming them),
    since no sample of theirs is seen in training; the other weights are
    normalized over the classes that occur. Never inf or NaN. If such a
    class can occur at evaluation, give it a count of at least 1 (e.g.
    `np.maximum(counts, 1)`) or remove its output unit.

    Args:
        counts: 1-D array-like of per-class sample counts, length `C`.
        beta: Float in [0, 1). Defaults to `0.999`.
        normalize: Bool, whether to scale the weights to sum to `K`.
            Defaults to `True`.

    Returns:
        NumPy float64 array of shape `[C]`.

    Raises:
        ValueError: For invalid counts or beta, when every count is zero,
            or for a non-zero count so small (below about 1e-308) that its
            weight would overflow float64.
        TypeError: If `counts`, `beta` or `normalize` have the wrong type.

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import class_balanced_weights
        >>> np.round(class_balanced_weights([5000, 500, 50], beta=0.999), 3)
        array([0.126, 0.317, 2.557])

    References:
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555, Eq. 4.
    """
    counts = check_counts(counts)
    normalize = check_bool(normalize, "normalize")
    present = _present_classes(
        counts,
        "they get class weight 0 and the other weights are "
        "normalized over the classes that occur. Their samples then add "
        "nothing to the loss (a validation set of only such classes "
        'reports a loss of 0), and with `CBSigmoidLoss(weighting="class")` '
        "their one-vs-all terms never train, so the model may predict a "
        "class it never saw. If such a class can occur at evaluation, give "
        "it a count of at least 1 (e.g. `np.maximum(counts, 1)`), or remove "
        "its output unit.",
    )
    effective = effective_number(counts, beta)
    with np.errstate(divide="ignore", over="ignore"):
        inverse = 1.0 / effective[present]
    if not np.isfinite(inverse).all():
        # Only counts below about 1e-308 get here: E(n) ~ n underflows.
        tiny = np.flatnonzero(present)[~np.isfinite(inverse)]
        raise ValueError(
            "Invalid value for argument `class_counts`. The counts of classes "
            f"{tiny.tolist()} are too close to zero for float64 weights: "
            f"{counts[tiny].tolist()}. Pass 0 for a class without samples."
        )
    weights = np.zeros_like(counts)
    weights[present] = inverse
    if normalize:
        # Dividing by the largest weight first keeps the sum finite when the
        # weights are near the float64 maximum (counts near 1e-308).
        weights /= weights.max()
        weights *= present.sum() / weights.sum()
    return weights


def class_log_prior(class_counts):
    """Log of the training label prior, log(n_c / sum(n)), in float64.

    The per-class term of logit adjustment (Menon et al., 2021): the
    logit-adjusted loss adds `tau * log_prior` to the logits, the post-hoc
    correction subtracts it.

    Formula:

    ```
    n'_c     = n_c if n_c > 0 else min over classes with n > 0 of n
    log_prior_c = log(n'_c / sum_k n'_k)
    ```

    A class with a count of zero would have log prior -inf, which turns the
    loss and its gradient into NaN (0 * inf) and makes the post-hoc
    correction predict that class everywhere. It is given the count of the
    rarest class that occurs instead (with a warning naming it): finite,
    the strongest adjustment any observed class gets, and unchanged when
    all counts are scaled (the adjustment depends only on count ratios, so
    sample-weighted or normalised counts give the same result). Training
    data holds no sample of such a class, so the floor only decides how
    strongly its logit is pushed down by the other classes' samples.

    Args:
        class_counts: 1-D array-like of non-negative, finite per-class
            counts (or any vector proportional to the prior), at least one
            of them non-zero.

    Returns:
        A float64 NumPy array of shape `[C]`, finite, whose exponentials
        sum to 1.

    Raises:
        ValueError, TypeError: For invalid counts, or when every count is
            zero.

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import class_log_prior
        >>> np.round(class_log_prior([900, 90, 10]), 4)
        array([-0.1054, -2.4079, -4.6052])

    References:
        Menon et al., "Long-tail learning via logit adjustment", ICLR 2021,
        arXiv:2007.07314, Eq. 10.
    """
    counts = check_counts(class_counts)
    present = _present_classes(
        counts,
        "their log prior would be -inf. They are given the count "
        "of the rarest class that occurs, {rarest:g}, instead.",
    )
    floored = np.where(present, counts, counts[present].min())
    # In log space, relative to the largest count: the sum stays finite for
    # counts near the float64 maximum, and a ratio of counts that would
    # underflow (5e-324 / 1e308) keeps its finite log.
    log_counts = np.log(floored) - np.log(floored.max())
    return log_counts - np.log(np.exp(log_counts).sum())


def _present_classes(counts, consequence):
    """The mask `counts > 0`, after the checks both public functions share.

    Raises a ValueError when no class occurs and warns (at the caller of
    the public function) that the absent classes get `consequence`, a
    format string that may name `{rarest}`, the smallest non-zero count.
    """
    present = counts > 0
    if not present.any():
        raise ValueError(
            "Invalid value for argument `class_counts`. Expected at least "
            "one class with a non-zero count. Received all zeros: check "
            "that the labels were counted from the training data."
        )
    if not present.all():
        warnings.warn(
            f"Classes {np.flatnonzero(~present).tolist()} have a count of "
            "zero: " + consequence.format(rarest=counts[present].min()),
            UserWarning,
            stacklevel=3,
        )
    return present
