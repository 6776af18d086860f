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


def assert_short_fit_learns(model, loss, x, y):
    """Compiles `model` with `loss` (Adam 0.05, the backend's compiled path),
    fits 5 epochs and checks that the loss stays finite and falls below 0.7
    of its start. Returns the evaluated loss after the fit."""
    model.compile(keras.optimizers.Adam(0.05), loss=loss, **fit_kwargs())
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert after < 0.7 * before
    return after


def random_logits(shape, seed=0, scale=3.0):
    """float32 logits drawn from N(0, scale**2)."""
    return np.random.default_rng(seed).normal(0, scale, shape).astype("f4")


def np_softmax(logits):
    """float32 softmax of `logits` over the last axis, computed in NumPy."""
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype("f4")


def random_labels(form, shape, num_classes, seed=1):
    """Labels of `shape` (the batch dims) in one of the label forms.

    `form`: "sparse" (int ids), "sparse_1" (ids with a trailing 1),
    "onehot", "multihot" (each class with probability 0.3) or "soft"
    (one-hot with label smoothing 0.1).
    """
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, num_classes, shape)
    if form == "sparse":
        return ids
    if form == "sparse_1":
        return ids[..., None]
    if form == "onehot":
        return np.eye(num_classes, dtype="f4")[ids]
    if form == "multihot":
        return (rng.random(shape + (num_classes,)) < 0.3).astype("f4")
    if form == "soft":
        return (np.eye(num_classes)[ids] * 0.9 + 0.1 / num_classes).astype("f4")
    raise ValueError(form)


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
