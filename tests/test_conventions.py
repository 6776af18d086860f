"""Conventions of the PyTorch code people port, and how to reproduce them.

- OLTR (Liu et al., `utils.py` `shot_acc`) groups classes by training count
  with `n >= 100` (many) and `n <= 20` (few); `ShotAccuracy` and
  `shot_groups` follow classifier-balancing / BALMS (`n > 100`, `n < 20`).
  `many_threshold=np.nextafter(100, 0)` and `few_threshold=np.nextafter(20,
  21)` (for integer counts, 99 and 21) reproduce OLTR's groups.
- The official logit-adjustment code (google-research `logit_adjustment`)
  adds `log(prior**tau + 1e-12)`; the package adds `tau * log(prior)`. They
  agree unless a prior is below about 1e-6; passing their vector as
  `log_prior` (with `tau=1`) reproduces them exactly.

(The LDAM-DRW recipe is replayed in `tests/test_weighted_mean.py`.)
"""

import numpy as np
import pytest
from backend_utils import random_logits
from backend_utils import to_numpy

from keras_cbloss import LogitAdjustedLoss
from keras_cbloss import ShotAccuracy
from keras_cbloss import class_log_prior
from keras_cbloss import logit_adjusted_crossentropy
from keras_cbloss import shot_groups

OLTR_MANY = np.nextafter(100.0, 0.0)
OLTR_FEW = np.nextafter(20.0, 21.0)


def _oltr_groups(counts):
    """OLTR's `shot_acc` rule, written from their code's comparisons."""
    counts = np.asarray(counts, np.float64)
    many = counts >= 100
    few = ~many & (counts <= 20)
    return {"many": many, "medium": ~many & ~few, "few": few}


def _balms_groups(counts):
    counts = np.asarray(counts, np.float64)
    many, few = counts > 100, counts < 20
    return {"many": many, "medium": ~many & ~few, "few": few}


# The boundary counts, where the two conventions part, and some others.
COUNTS = [500, 101, 100, 99, 50, 21, 20, 19, 5, 1]
FRACTIONAL = [100.5, 100.0, 99.99, 20.01, 20.0, 19.5]


@pytest.mark.parametrize("counts", [COUNTS, FRACTIONAL])
def test_the_defaults_are_balms_groups_and_differ_from_oltr(counts):
    got = shot_groups(counts)
    for shot, mask in _balms_groups(counts).items():
        np.testing.assert_array_equal(got[shot], mask, err_msg=shot)
    oltr = _oltr_groups(counts)
    assert any((got[s] != oltr[s]).any() for s in got)  # 100 and 20 move


@pytest.mark.parametrize("counts", [COUNTS, FRACTIONAL])
def test_nextafter_thresholds_reproduce_oltr_groups(counts):
    got = shot_groups(counts, many_threshold=OLTR_MANY, few_threshold=OLTR_FEW)
    for shot, mask in _oltr_groups(counts).items():
        np.testing.assert_array_equal(got[shot], mask, err_msg=shot)


def test_for_integer_counts_99_and_21_reproduce_oltr_groups():
    got = shot_groups(COUNTS, many_threshold=99, few_threshold=21)
    for shot, mask in _oltr_groups(COUNTS).items():
        np.testing.assert_array_equal(got[shot], mask, err_msg=shot)


def test_shot_accuracy_with_oltr_thresholds_is_oltr_shot_acc():
    # OLTR's shot_acc on a test set: mean recall within each group.
    counts = COUNTS
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(len(counts)), 4)
    predicted = np.where(
        rng.random(y.size) < 0.6, y, rng.integers(0, len(counts), y.size)
    )
    scores = np.eye(len(counts), dtype="f4")[predicted]
    groups = _oltr_groups(counts)
    recall = np.array(
        [np.mean(predicted[y == c] == c) for c in range(len(counts))]
    )
    for shot in ("many", "medium", "few"):
        metric = ShotAccuracy(
            shot, counts, many_threshold=OLTR_MANY, few_threshold=OLTR_FEW
        )
        metric.update_state(y, scores)
        np.testing.assert_allclose(
            to_numpy(metric.result()), recall[groups[shot]].mean(), rtol=1e-6
        )


# --------------------------------------------------------------------------
# Logit adjustment: log(prior**tau + 1e-12) against tau * log(prior).
# --------------------------------------------------------------------------


def _official_shift(counts, tau):
    """The official code's adjustment, written from its formula."""
    prior = np.asarray(counts, np.float64) / np.sum(counts)
    return np.log(prior**tau + 1e-12)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_the_two_shifts_agree_for_priors_above_one_in_a_million(tau):
    counts = [5000, 1200, 300, 40, 7]  # smallest prior 1.1e-3
    ours = tau * class_log_prior(counts)
    official = _official_shift(counts, tau)
    # log(p**tau + 1e-12) - tau * log(p) = log(1 + 1e-12 / p**tau)
    np.testing.assert_allclose(
        official - ours,
        np.log1p(1e-12 / (np.asarray(counts) / np.sum(counts)) ** tau),
        rtol=1e-6,
        atol=1e-14,
    )
    assert np.abs(official - ours).max() < 1e-5


def test_they_part_below_one_in_a_million():
    counts = [10**9, 10**4, 1]  # priors ~1, 1e-5, 1e-9
    gap = _official_shift(counts, 1.0) - class_log_prior(counts)
    assert gap[1] < 1e-6  # prior 1e-5: 1e-7
    assert gap[2] > 1e-4  # prior 1e-9: about 1e-3


def test_passing_their_vector_as_log_prior_reproduces_them():
    counts = [10**9, 10**4, 1]
    logits = random_logits((6, 3), seed=5)
    y = np.array([0, 1, 2, 2, 1, 0])
    official = _official_shift(counts, 2.0)
    got = to_numpy(
        logit_adjusted_crossentropy(
            y, logits, official, tau=1.0, from_logits=True
        )
    )
    # Their loss: softmax cross-entropy of z + log(prior**tau + 1e-12).
    adjusted = logits.astype(np.float64) + official
    log_softmax = (
        adjusted
        - np.log(
            np.exp(adjusted - adjusted.max(-1, keepdims=True)).sum(
                -1, keepdims=True
            )
        )
        - adjusted.max(-1, keepdims=True)
    )
    want = -log_softmax[np.arange(6), y]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # and the package's own tau = 2 differs for the 1e-9 class
    ours = to_numpy(
        LogitAdjustedLoss(counts, 2.0, from_logits=True, reduction="none")(
            y, logits
        )
    )
    assert np.abs(ours - want).max() > 1e-3
