"""keras-cbloss: class-balanced losses (Cui et al., CVPR 2019) for Keras 3.

`import keras_cbloss` does not import TensorFlow: only counting needs it, so
`count_classes` (module `keras_cbloss.counting`) is imported on first use,
and `ClassCounter` imports it when it counts. A JAX or PyTorch user who
passes the counts by hand never pays for TensorFlow.
"""

from keras_cbloss.callbacks import ClassCounter
from keras_cbloss.callbacks import DeferredReweighting
from keras_cbloss.initializers import prior_bias_initializer
from keras_cbloss.logit_adjustment import LogitAdjustedLoss
from keras_cbloss.logit_adjustment import logit_adjust
from keras_cbloss.logit_adjustment import logit_adjusted_crossentropy
from keras_cbloss.losses import CBFocalLoss
from keras_cbloss.losses import CBSigmoidLoss
from keras_cbloss.losses import CBSoftmaxLoss
from keras_cbloss.losses import cb_focal_crossentropy
from keras_cbloss.losses import cb_sigmoid_crossentropy
from keras_cbloss.losses import cb_softmax_crossentropy
from keras_cbloss.metrics import BalancedAccuracy
from keras_cbloss.metrics import MeanAveragePrecision
from keras_cbloss.metrics import PerClassRecall
from keras_cbloss.metrics import ShotAccuracy
from keras_cbloss.metrics import shot_groups
from keras_cbloss.saving import custom_objects
from keras_cbloss.weights import class_balanced_weights
from keras_cbloss.weights import class_log_prior
from keras_cbloss.weights import effective_number


__version__ = "0.1.0"

_LAZY = {"count_classes": "keras_cbloss.counting"}


def __getattr__(name):
    # PEP 562: `from keras_cbloss import count_classes` imports TensorFlow
    # here, on first use, not at `import keras_cbloss`.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_cbloss' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "BalancedAccuracy",
    "CBFocalLoss",
    "CBSigmoidLoss",
    "CBSoftmaxLoss",
    "ClassCounter",
    "DeferredReweighting",
    "LogitAdjustedLoss",
    "MeanAveragePrecision",
    "PerClassRecall",
    "ShotAccuracy",
    "cb_focal_crossentropy",
    "cb_sigmoid_crossentropy",
    "cb_softmax_crossentropy",
    "class_balanced_weights",
    "class_log_prior",
    "count_classes",
    "custom_objects",
    "effective_number",
    "logit_adjust",
    "logit_adjusted_crossentropy",
    "prior_bias_initializer",
    "shot_groups",
]
