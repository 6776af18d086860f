"""The bad-value catalogues, one per kind of argument, shared by the modules
that check an argument of that kind.

Each entry is `(bad value, error type, regex the message must match)`. The
counts are four-class vectors (`[30, 10, 5, 2]` spoiled at one place), so the
messages name the class that is wrong.
"""

import numpy as np

# Checked by every function that takes class counts (`check_counts`).
BAD_COUNTS = [
    ([30, -1, 5, 2], ValueError, r"non-negative.*classes \[1\]: \[-1.0\]"),
    ([30, np.nan, 5, 2], ValueError, r"finite.*classes \[1\]: \[nan\]"),
    ([30, 10, np.inf, 2], ValueError, r"finite.*classes \[2\]: \[inf\]"),
    ([[30, 10, 5, 2]], ValueError, r"1-D.*shape \(1, 4\).*np.ravel"),
    (np.array(47), ValueError, r"1-D.*shape \(\)"),
    ([], ValueError, "at least one class"),
    ([0, 0, 0, 0], ValueError, r"non-zero count.*all zeros"),
    ("30,10,5,2", TypeError, r"1-D sequence.*'30,10,5,2'"),
    ([[30, 10], [5]], TypeError, r"class_counts"),
    (["a", "b", "c", "d"], TypeError, r"numbers"),
    ([True, False, True, True], TypeError, r"numbers.*dtype bool"),
    ([1 + 2j, 3, 4, 5], TypeError, r"numbers.*complex"),
]
# The class-balanced weights also need 1 / E(n) finite in float64 (the
# log prior of the logit adjustment does not: it works in log space).
BAD_WEIGHT_COUNTS = BAD_COUNTS + [
    ([30, 2e-309, 5, 2], ValueError, r"classes \[1\] are too close to zero"),
]

BAD_BETAS = [
    (-0.1, ValueError, r"\[0, 1\).*beta=-0.1"),
    (1.0, ValueError, r"\[0, 1\).*beta=1.0"),
    (1.5, ValueError, r"\[0, 1\).*beta=1.5"),
    (float("inf"), ValueError, r"\[0, 1\).*beta=inf"),
    (float("nan"), ValueError, r"not NaN.*beta=nan"),
    ("0.9", TypeError, r"Expected a float.*beta='0.9'"),
    (None, TypeError, r"beta=None"),
    (True, TypeError, r"beta=True"),
    ([0.9], TypeError, r"beta=\[0.9\]"),
]

BAD_GAMMAS = [
    (-0.5, ValueError, r">= 0.*gamma=-0.5"),
    (float("nan"), ValueError, r"not NaN.*gamma=nan"),
    (float("inf"), ValueError, r"finite.*gamma=inf"),
    ("2", TypeError, r"Expected a float.*gamma='2'"),
    (None, TypeError, r"gamma=None"),
]

BAD_TAUS = [
    (-0.5, ValueError, r"argument `tau`.*tau=-0.5"),
    (float("nan"), ValueError, "not NaN"),
    (float("inf"), ValueError, "finite float >= 0"),
    ("1.0", TypeError, "argument `tau`"),
    (True, TypeError, "argument `tau`"),
]
