import keras
import numpy as np
import pytest
from backend_utils import to_numpy

from keras_cbloss import prior_bias_initializer
from keras_cbloss.initializers import PriorBiasInitializer


@pytest.mark.parametrize("num_classes", [2, 10, 1000])
def test_num_classes_gives_the_official_minus_log_c_minus_one(num_classes):
    bias = to_numpy(prior_bias_initializer(num_classes)((num_classes,)))
    np.testing.assert_allclose(bias, -np.log(num_classes - 1.0), rtol=1e-6)
    # sigmoid(b) = 1 / C: training starts at the prior
    np.testing.assert_allclose(
        1 / (1 + np.exp(-bias)), 1 / num_classes, rtol=1e-5
    )


def test_per_class_priors():
    priors = [0.7, 0.2, 0.1]
    bias = to_numpy(prior_bias_initializer(priors)((3,)))
    np.testing.assert_allclose(
        bias,
        [np.log(0.7 / 0.3), np.log(0.2 / 0.8), np.log(0.1 / 0.9)],
        rtol=1e-6,
    )


def test_dense_layer_uses_it_and_saves_it_as_keras_constant():
    init = prior_bias_initializer(5)
    layer = keras.layers.Dense(5, bias_initializer=init)
    layer.build((None, 3))
    np.testing.assert_allclose(to_numpy(layer.bias), -np.log(4.0), rtol=1e-6)
    saved = layer.get_config()["bias_initializer"]
    # A Keras built-in with the computed value: no keras_cbloss to load it.
    assert saved["module"] == "keras.initializers"
    assert saved["class_name"] == "Constant"
    assert saved["registered_name"] is None
    np.testing.assert_allclose(
        saved["config"]["value"], -np.log(4.0), rtol=1e-12
    )
    clone = keras.initializers.deserialize(saved)
    assert type(clone) is keras.initializers.Constant
    np.testing.assert_allclose(to_numpy(clone((5,))), -np.log(4.0), rtol=1e-6)


def test_per_class_priors_save_their_bias_vector():
    priors = [0.7, 0.2, 0.1]
    saved = keras.initializers.serialize(prior_bias_initializer(priors))
    assert saved["class_name"] == "Constant"
    expected = [np.log(0.7 / 0.3), np.log(0.2 / 0.8), np.log(0.1 / 0.9)]
    np.testing.assert_allclose(saved["config"]["value"], expected, rtol=1e-12)
    clone = keras.initializers.deserialize(saved)
    np.testing.assert_allclose(to_numpy(clone((3,))), expected, rtol=1e-6)


def test_it_is_still_its_own_class_until_saved():
    init = prior_bias_initializer(5)
    assert type(init) is PriorBiasInitializer
    assert isinstance(init, PriorBiasInitializer)
    assert isinstance(init, keras.initializers.Constant)
    assert init.prior == 5


def test_files_saved_with_the_prior_config_still_load():
    # keras-cbloss 0.1.0 saved {"prior": C} under its registered name.
    old = {
        "module": "keras_cbloss.initializers",
        "class_name": "PriorBiasInitializer",
        "config": {"prior": 5},
        "registered_name": "keras_cbloss>PriorBiasInitializer",
    }
    clone = keras.initializers.deserialize(old)
    assert isinstance(clone, PriorBiasInitializer)
    np.testing.assert_allclose(to_numpy(clone((5,))), -np.log(4.0), rtol=1e-6)


@pytest.mark.parametrize(
    "value, error",
    [
        (1, ValueError),
        (0, ValueError),
        (1.5, ValueError),
        (0.0, ValueError),
        ([0.5, 1.0], ValueError),
        ("ten", TypeError),
        (True, TypeError),
    ],
)
def test_bad_values_raise(value, error):
    with pytest.raises(error, match="num_classes_or_prior"):
        prior_bias_initializer(value)


def test_positive_prior_for_a_one_unit_binary_head():
    n_neg, n_pos = 60, 4
    prior = n_pos / (n_neg + n_pos)
    layer = keras.layers.Dense(
        1, bias_initializer=prior_bias_initializer(prior)
    )
    layer.build((None, 3))
    bias = to_numpy(layer.bias)
    np.testing.assert_allclose(bias, [-np.log((1 - prior) / prior)], rtol=1e-6)
    # the head starts at the training set's positive rate
    np.testing.assert_allclose(1 / (1 + np.exp(-bias)), [prior], rtol=1e-5)


def test_one_class_error_points_to_the_binary_prior_and_that_works():
    with pytest.raises(ValueError, match=r"positive-class prior.*n_pos"):
        prior_bias_initializer(1)
    bias = to_numpy(prior_bias_initializer(4 / 64)((1,)))
    np.testing.assert_allclose(bias, [np.log(4 / 60)], rtol=1e-6)


def test_num_classes_must_match_the_units_and_the_named_fix_works():
    layer = keras.layers.Dense(5, bias_initializer=prior_bias_initializer(10))
    with pytest.raises(
        ValueError,
        match=r"units.*5.*=10.*prior_bias_init"
        r"ializer\(5\)",
    ):
        layer.build((None, 3))
    fixed = keras.layers.Dense(5, bias_initializer=prior_bias_initializer(5))
    fixed.build((None, 3))
    # sigmoid(b) = 1 / 5 for every unit
    np.testing.assert_allclose(
        to_numpy(fixed.bias), [-np.log(4.0)] * 5, rtol=1e-6
    )
    # the float-prior form broadcasts to any number of units
    bias = to_numpy(prior_bias_initializer(0.1)((5,)))
    np.testing.assert_allclose(bias, [np.log(0.1 / 0.9)] * 5, rtol=1e-6)


def test_a_class_count_on_a_one_unit_head_points_to_the_float_prior():
    # Dense(1) with `prior_bias_initializer(2)` (two classes, one unit):
    # the message once said `prior_bias_initializer(1)`, which raises too.
    layer = keras.layers.Dense(1, bias_initializer=prior_bias_initializer(2))
    with pytest.raises(
        ValueError,
        match=r"one-unit.*positive-class prior "
        r"as a float.*n_pos / \(n_neg \+ n_pos\).*=2",
    ):
        layer.build((None, 3))
    fixed = keras.layers.Dense(
        1, bias_initializer=prior_bias_initializer(9 / 209)
    )
    fixed.build((None, 3))
    np.testing.assert_allclose(
        to_numpy(fixed.bias), [np.log(9 / 200)], rtol=1e-6
    )
