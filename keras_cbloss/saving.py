"""The package's serializable classes, in one list, and `custom_objects()`.

Every class that a saved model can refer to (losses, metrics, the
initializer) is named once in `SERIALIZABLE_CLASSES`; `custom_objects()` is
built from it, and a test compares the list with what the package registers
with Keras.
"""


def _serializable_classes():
    """Every class the package registers with Keras, in one tuple.

    Imported here, not at module level, so that this module can be imported
    by the modules that define the classes without a cycle.
    """
    from keras_cbloss import initializers
    from keras_cbloss import logit_adjustment
    from keras_cbloss import losses
    from keras_cbloss import metrics

    return (
        losses.CBSoftmaxLoss,
        losses.CBSigmoidLoss,
        losses.CBFocalLoss,
        logit_adjustment.LogitAdjustedLoss,
        metrics.BalancedAccuracy,
        metrics.PerClassRecall,
        metrics.ShotAccuracy,
        metrics.MeanAveragePrecision,
        initializers.PriorBiasInitializer,
    )


def custom_objects():
    """The package's serializable classes, for `custom_objects=` in loading.

    Importing `keras_cbloss` registers them, so `keras.saving.load_model`
    needs no argument. Where registration is not in effect, pass this dict:
    it holds every class (losses, metrics, the initializer) under both its
    plain name (`"CBFocalLoss"`) and its registered name
    (`"keras_cbloss>CBFocalLoss"`), which is the key Keras 3 looks up.

    Returns:
        A dict from names to classes.

    Examples:
        >>> import keras_cbloss
        >>> sorted(keras_cbloss.custom_objects())[:2]
        ['BalancedAccuracy', 'CBFocalLoss']
    """
    objects = {}
    for cls in _serializable_classes():
        objects[cls.__name__] = cls
        objects[f"keras_cbloss>{cls.__name__}"] = cls
    return objects
