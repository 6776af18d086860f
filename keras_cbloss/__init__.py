"""keras-cbloss: class-balanced losses (Cui et al., CVPR 2019) for Keras 3.

`import keras_cbloss` does not import TensorFlow: only counting a
`tf.data.Dataset` needs it, and imports it then. A JAX or PyTorch user who
counts NumPy labels, a `PyDataset` or a `DataLoader` never pays for it.
"""

from keras_cbloss.callbacks import ClassCounter
from keras_cbloss.callbacks import DeferredReweighting
from keras_cbloss.counting import count_classes
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
