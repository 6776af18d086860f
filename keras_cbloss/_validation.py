"""Argument checks shared by the weights, losses, counting and callback code.

Messages follow Keras' wording: ``Invalid value for argument `beta`.
Expected a float in [0, 1). Received: beta=1.5``. Bad values raise
`ValueError`, bad types raise `TypeError`; every check runs eagerly, in
constructors and public functions, never only inside traced code.
"""

import numbers

import numpy as np

WEIGHTINGS = ("sample", "class")


def check_counts(counts, name="class_counts"):
    """Returns `counts` as a 1-D float64 NumPy array, or raises.

    Counts may be fractional (sample-weighted counting gives floats), but
    must be finite and non-negative, and at least one class must be given.
    """
    if isinstance(counts, (str, bytes)) or counts is None:
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected a 1-D sequence "
            f"of per-class sample counts. Received: {name}={counts!r}"
        )
    try:
        array = np.asarray(counts)
    except Exception as e:  # ragged lists and other oddities
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected a 1-D sequence "
            f"of per-class sample counts. Received: {name}={counts!r} ({e})"
        ) from e
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected numbers, one "
            f"count per class. Received: {name}={counts!r} "
            f"(dtype {array.dtype})"
        )
    if array.ndim != 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a 1-D array with "
            f"one count per class. Received an array of shape {array.shape}. "
            "For a [C] count vector stored as [1, C] or [C, 1], pass "
            "`np.ravel(counts)`."
        )
    if array.size == 0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected at least one "
            f"class. Received: {name}={counts!r}"
        )
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected finite counts. "
            f"Received non-finite values at classes "
            f"{np.flatnonzero(bad).tolist()}: {array[bad].tolist()}"
        )
    negative = array < 0
    if negative.any():
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected non-negative "
            f"counts. Received negative values at classes "
            f"{np.flatnonzero(negative).tolist()}: "
            f"{array[negative].tolist()}"
        )
    return array


def _check_real(value, name):
    if isinstance(value, bool) or not isinstance(
        value, (numbers.Real, np.floating, np.integer)
    ):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected a float. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if np.isnan(value):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a number, "
            f"not NaN. Received: {name}={value}"
        )
    return value


def check_beta(beta):
    """Returns `beta` as a float in [0, 1), or raises."""
    beta = _check_real(beta, "beta")
    if not 0.0 <= beta < 1.0:
        raise ValueError(
            "Invalid value for argument `beta`. Expected a float in [0, 1) "
            "(0 turns re-weighting off; values near 1, such as 0.999 or "
            f"0.9999, approach inverse class frequency). Received: "
            f"beta={beta}"
        )
    return beta


def check_gamma(gamma):
    """Returns `gamma` as a finite float >= 0, or raises."""
    gamma = _check_real(gamma, "gamma")
    if not 0.0 <= gamma < np.inf:
        raise ValueError(
            "Invalid value for argument `gamma`. Expected a finite float "
            f">= 0 (0 gives the plain sigmoid loss). Received: gamma={gamma}"
        )
    return gamma


def check_weighting(weighting):
    """Returns `weighting` if it is one of `WEIGHTINGS`, or raises."""
    if weighting not in WEIGHTINGS:
        raise ValueError(
            "Invalid value for argument `weighting`. Expected one of "
            f"{list(WEIGHTINGS)}: 'sample' weights every binary term of a "
            "sample by its label's class weight (the paper), 'class' weights "
            "the binary term of class c by w_c (multi-label data). "
            f"Received: weighting={weighting!r}"
        )
    return weighting


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected True or False. "
            f"Received: {name}={value!r}"
        )
    return bool(value)
