import warnings

import numpy as np
import pytest
import reference
from catalogues import BAD_BETAS
from catalogues import BAD_WEIGHT_COUNTS

from keras_cbloss import class_balanced_weights
from keras_cbloss import effective_number


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999])
def test_effective_number_matches_formula(beta):
    counts = np.array([1, 2, 7, 50, 1000, 25000])
    expected = (1.0 - np.power(beta, counts.astype(np.float64))) / (1 - beta)
    np.testing.assert_allclose(
        effective_number(counts, beta), expected, rtol=1e-12
    )


def test_effective_number_is_accurate_near_one():
    # 1 - beta**n in float64 keeps only ~6 digits for beta = 1 - 1e-10;
    # the exact value is n - n(n-1)/2 * eps + ..., so E(1) = 1 exactly.
    beta = 1.0 - 1e-10
    np.testing.assert_allclose(
        effective_number([1, 2], beta), [1.0, 2.0 - 1e-10], rtol=1e-13
    )


def test_effective_number_beta_zero_is_one_per_present_class():
    np.testing.assert_array_equal(
        effective_number([3, 1, 0, 100], 0.0), [1.0, 1.0, 0.0, 1.0]
    )


@pytest.mark.parametrize("beta", [0.0, 0.9, 0.999, 0.9999])
def test_weights_match_reference_and_sum_to_num_classes(beta):
    counts = [5000, 2000, 300, 40, 5, 1]
    weights = class_balanced_weights(counts, beta)
    np.testing.assert_allclose(
        weights, reference.cb_weights(counts, beta), rtol=1e-12
    )
    assert weights.dtype == np.float64
    np.testing.assert_allclose(weights.sum(), len(counts), rtol=1e-12)


def test_beta_zero_gives_uniform_weights():
    np.testing.assert_array_equal(
        class_balanced_weights([1000, 10, 1], 0.0), [1.0, 1.0, 1.0]
    )


def test_beta_to_one_tends_to_inverse_frequency():
    counts = np.array([1000.0, 100.0, 10.0, 1.0])
    inverse = (1 / counts) * len(counts) / (1 / counts).sum()
    errors = [
        np.abs(class_balanced_weights(counts, beta) - inverse).max()
        for beta in (0.99, 0.999, 0.9999, 0.99999999)
    ]
    assert errors == sorted(errors, reverse=True)
    np.testing.assert_allclose(
        class_balanced_weights(counts, 0.99999999), inverse, rtol=1e-4
    )


def test_unnormalized_weights_are_inverse_effective_numbers():
    counts = [10, 3]
    np.testing.assert_allclose(
        class_balanced_weights(counts, 0.9, normalize=False),
        0.1 / (1 - 0.9 ** np.array([10.0, 3.0])),
    )


def test_large_counts_give_uniform_weights_by_design():
    # beta**n underflows for every class: the formula says all classes are
    # equally "full", so the weights are uniform.
    np.testing.assert_allclose(
        class_balanced_weights([10**6, 10**5], 0.99), [1.0, 1.0]
    )


def test_zero_count_class_gets_zero_weight_and_a_warning():
    with pytest.warns(UserWarning, match=r"Classes \[1, 3\]"):
        weights = class_balanced_weights([100, 0, 10, 0], 0.99)
    assert weights[1] == 0.0 and weights[3] == 0.0
    assert np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights.sum(), 2.0)
    np.testing.assert_allclose(
        weights[[0, 2]], reference.cb_weights([100, 10], 0.99)
    )


def test_zero_count_warning_names_the_fix_and_the_fix_works():
    counts = np.array([300, 100, 30, 0])
    fix = r"never train.*np\.maximum\(counts, 1\)"
    with pytest.warns(UserWarning, match=fix):
        class_balanced_weights(counts, 0.999)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # following the fix: no warning
        weights = class_balanced_weights(np.maximum(counts, 1), 0.999)
    assert weights[3] > 0
    np.testing.assert_allclose(
        weights, reference.cb_weights([300, 100, 30, 1], 0.999), rtol=1e-12
    )


def test_fractional_counts_are_accepted():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weights = class_balanced_weights([10.5, 2.25], 0.9)
    np.testing.assert_allclose(weights, reference.cb_weights([10.5, 2.25], 0.9))


@pytest.mark.parametrize(
    "counts, error, match",
    BAD_WEIGHT_COUNTS + [(None, TypeError, "class_counts")],
)
def test_bad_counts_raise(counts, error, match):
    with pytest.raises(error, match=match):
        class_balanced_weights(counts, 0.9)


@pytest.mark.parametrize("beta, error, match", BAD_BETAS)
def test_bad_beta_raises(beta, error, match):
    with pytest.raises(error, match=match):
        class_balanced_weights([1, 2], beta)
    with pytest.raises(error, match=match):
        effective_number([1, 2], beta)


def test_bad_normalize_raises():
    with pytest.raises(TypeError, match="normalize"):
        class_balanced_weights([1, 2], 0.9, normalize="yes")
