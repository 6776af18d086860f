"""Quick start: a class-balanced focal loss on long-tailed digits.

Trains a small network on a long-tailed subset of scikit-learn's bundled
8x8 digit images (no download), with `CBFocalLoss` built without counts and
`ClassCounter` counting the training labels when `fit` starts; scores it on
a balanced test split with scikit-learn's balanced accuracy, then saves the
model and loads it back with its loss. Usage:

    python examples/quick_start.py

`examples/long_tail_digits.py` is the full experiment (five losses, paired
seeds, significance tests, plots).
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from keras_cbloss import CBFocalLoss
from keras_cbloss import ClassCounter
from keras_cbloss import prior_bias_initializer

C = 10
keras.utils.set_random_seed(0)

# Data: 1797 digit images; a balanced test split of 30 %.
x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
x_pool, x_test, y_pool, y_test = train_test_split(
    x, y, test_size=0.3, stratify=y, random_state=0
)

# A long-tailed training set: digit c keeps int(100 * 0.6**c) images,
# from 100 for digit 0 down to 1 for digit 9.
rng = np.random.default_rng(0)
keep = np.concatenate(
    [
        rng.choice(
            np.flatnonzero(y_pool == c), int(100 * 0.6**c), replace=False
        )
        for c in range(C)
    ]
)
train = tf.data.Dataset.from_tensor_slices((x_pool[keep], y_pool[keep]))
train = train.shuffle(len(keep), seed=0).batch(32)

# The loss waits for its counts; ClassCounter counts `train` when fit starts.
# The focal head starts every class at p = 1/C (the paper's initialisation).
model = keras.Sequential(
    [
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(C, bias_initializer=prior_bias_initializer(C)),
    ]
)
loss = CBFocalLoss(beta=0.99, gamma=1.0, from_logits=True)
model.compile(optimizer="adam", loss=loss)
model.fit(
    train,
    epochs=60,
    shuffle=False,
    verbose=0,
    callbacks=[ClassCounter(train, num_classes=C, verbose=0)],
)
print("training images per class:", loss.class_counts.astype(int).tolist())

y_pred = model.predict(x_test, verbose=0).argmax(axis=-1)
print(f"balanced accuracy: {balanced_accuracy_score(y_test, y_pred):.3f}")

# The loss, with its counts, beta and gamma, is saved with the model.
path = Path("outputs", "quick_start", "model.keras")
path.parent.mkdir(parents=True, exist_ok=True)
model.save(path)
loaded = keras.saving.load_model(path)
np.testing.assert_array_equal(loaded.loss.class_counts, loss.class_counts)
np.testing.assert_allclose(
    loaded.predict(x_test, verbose=0),
    model.predict(x_test, verbose=0),
    rtol=1e-6,
)
print(f"saved to {path} and loaded back with {type(loaded.loss).__name__}")
