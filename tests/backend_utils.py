"""Backend-specific test plumbing: gradients and compiled functions.

The package itself only uses `keras.ops`; the tests need autodiff and jit,
which Keras exposes per backend.
"""

import keras
import numpy as np

BACKEND = keras.backend.backend()


def to_numpy(x):
    x = keras.ops.convert_to_numpy(keras.ops.cast(x, "float32"))
    return np.asarray(x, dtype=np.float64)


def value_and_grad(fn, x, dtype="float32"):
    """Value of the scalar `fn(x)` and its gradient with respect to `x`."""
    x = np.asarray(x)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.cast(tf.constant(x, dtype="float64"), dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = fn(x)
        return to_numpy(value), to_numpy(tape.gradient(value, x))
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        x = jnp.asarray(x, dtype=dtype)
        value, grad = jax.value_and_grad(fn)(x)
        return to_numpy(value), to_numpy(grad)
    if BACKEND == "torch":
        x = keras.ops.convert_to_tensor(x.astype("float32"), dtype=dtype)
        x = x.detach().clone().requires_grad_(True)
        value = fn(x)
        value.backward()
        return to_numpy(value.detach()), to_numpy(x.grad)
    raise NotImplementedError(BACKEND)


def compiled(fn):
    """`fn` compiled the way training compiles it on this backend."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn  # torch.compile takes minutes on CPU; eager is what fit uses


def fit_kwargs():
    """`compile()` arguments that exercise the backend's compiled path."""
    if BACKEND == "torch":
        return {"jit_compile": False}
    return {"jit_compile": True}


def make_loss(kind, counts, beta=0.999, gamma=1.0, **kwargs):
    """A CB loss by short name; `gamma` only reaches the focal loss."""
    from keras_cbloss import CBFocalLoss
    from keras_cbloss import CBSigmoidLoss
    from keras_cbloss import CBSoftmaxLoss

    if kind == "softmax":
        return CBSoftmaxLoss(counts, beta, **kwargs)
    if kind == "sigmoid":
        return CBSigmoidLoss(counts, beta, **kwargs)
    return CBFocalLoss(counts, beta, gamma, **kwargs)
