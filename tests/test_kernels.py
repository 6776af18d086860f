"""The fused focal kernel (`keras_cbloss._kernels`) against float64 NumPy.

Values, first and second derivatives are compared with a float64 reference
written here from the definitions (log-sigmoids via `np.logaddexp`, the
gradient by the product rule in log space, not the kernel's closed form),
and that reference gradient is itself checked by finite differences.
Backend-agnostic: run under KERAS_BACKEND=tensorflow, jax or torch.
"""

import children
import keras
import numpy as np
import pytest
from backend_utils import BACKEND
from backend_utils import compiled
from backend_utils import to_numpy
from backend_utils import value_and_grad
from keras import ops

from keras_cbloss import _kernels

GAMMAS = (0.0, 0.5, 1.0, 2.0, 3.0)
EPSILON = 1e-7
# Near float32's smallest normal number (1.2e-38) products of factors lose
# digits or flush to 0; only there does the absolute tolerance matter.
TINY = 1e-35


# --------------------------------------------------------------------------
# float64 reference.
# --------------------------------------------------------------------------


def _logit_logs(z):
    """log p, log(1 - p) and p for p = sigmoid(z), exact in float64."""
    log_p = -np.logaddexp(0.0, -z)
    log_1mp = -np.logaddexp(0.0, z)
    return log_p, log_1mp, np.exp(log_p)


def reference(z, t, gamma, weights=None):
    """Per-element focal terms and d/dz, in float64.

    FL = exp(gamma * L) * BCE with BCE = -(t log p + (1 - t) log(1 - p)) and
    L = t log(1 - p) + (1 - t) log p (log(1 - p_t) for 0/1 targets).
    dFL/dz = FL * gamma * dL/dz + exp(gamma * L) * dBCE/dz, with
    dBCE/dz = p - t and dL/dz = (1 - t) - p (the product rule).
    """
    z = np.asarray(z, np.float64)
    t = np.asarray(t, np.float64)
    log_p, log_1mp, p = _logit_logs(z)
    bce = -(t * log_p + (1 - t) * log_1mp)
    modulator = np.exp(gamma * (t * log_1mp + (1 - t) * log_p))
    value = modulator * bce
    # p - t and (1 - t) - p as p * (1 - t) - t * (1 - p) and
    # (1 - t) * (1 - p) - t * p: exact for 0/1 targets even where p or
    # 1 - p rounds to 1 in float64.
    one_minus_p = np.exp(log_1mp)
    d_bce = p * (1 - t) - t * one_minus_p
    d_log_mod = (1 - t) * one_minus_p - t * p
    grad = value * gamma * d_log_mod + modulator * d_bce
    if weights is not None:
        value, grad = value * weights, grad * weights
    return value, grad


def cancellation_scale(z, t, gamma):
    """Size of the terms that cancel in dFL/dz for soft targets.

    With 0 < t < 1 the gradient p - t (and the focal term's p + t - 1)
    is a difference of numbers of size p, t and 1: where they nearly cancel
    no float32 computation of sigmoid(z) gives the difference to better than
    float32's rounding of those terms, whatever the formula.
    """
    z = np.asarray(z, np.float64)
    t = np.asarray(t, np.float64)
    log_p, log_1mp, p = _logit_logs(z)
    bce = -(t * log_p + (1 - t) * log_1mp)
    modulator = np.exp(gamma * (t * log_1mp + (1 - t) * log_p))
    return modulator * (1.0 + gamma * bce)


def reference_probabilities(p, t, gamma):
    """Per-element terms and d/dp for clipped probabilities, in float64."""
    p32 = np.asarray(p, np.float32)
    inside = (p32 > np.float32(EPSILON)) & (p32 < np.float32(1 - EPSILON))
    p = np.clip(p32, np.float32(EPSILON), np.float32(1 - EPSILON))
    p = p.astype(np.float64)
    t = np.asarray(t, np.float64)
    bce = -(t * np.log(p) + (1 - t) * np.log1p(-p))
    modulator = np.exp(gamma * (t * np.log1p(-p) + (1 - t) * np.log(p)))
    d_bce = -t / p + (1 - t) / (1 - p)
    d_log_mod = -t / (1 - p) + (1 - t) / p
    value = modulator * bce
    grad = (value * gamma * d_log_mod + modulator * d_bce) * inside
    return value, grad


def second_reference(z, t, gamma, h=1e-5):
    """d2 FL / dz2 by central differences of the float64 gradient."""
    z = np.asarray(z, np.float64)
    _, up = reference(z + h, t, gamma)
    _, down = reference(z - h, t, gamma)
    return (up - down) / (2 * h)


# --------------------------------------------------------------------------
# Inputs.
# --------------------------------------------------------------------------


def confident_logits(rng, rows=6, classes=16):
    """Moderate and confident logits, |z| from 0 to 1e4, both signs."""
    magnitudes = np.concatenate(
        [
            rng.uniform(0.0, 5.0, rows * classes // 2),
            10.0 ** rng.uniform(1.0, 4.0, rows * classes // 2),
        ]
    )
    signs = rng.choice([-1.0, 1.0], magnitudes.size)
    z = rng.permutation(magnitudes * signs).reshape(rows, classes)
    z[0, :4] = [0.0, 1e4, -1e4, 88.5]  # 0, extremes, exp(-z) subnormal
    return z.astype(np.float32).astype(np.float64)


def float16_range_logits():
    """Logits a float16 model can emit, up to its largest finite value."""
    values = np.array(
        [
            0.0,
            6e-8,
            -6e-8,
            1e-3,
            -0.5,
            11.0,
            -11.0,
            100.0,
            -100.0,
            2048.0,
            -2048.0,
            65504.0,
            -65504.0,
            30000.0,
            -30000.0,
            3.0,
        ],
        np.float16,
    )
    return values.astype(np.float64).reshape(2, 8)


def hard_targets(rng, shape):
    """A boolean class mask, one class per row (sparse labels)."""
    labels = rng.integers(0, shape[-1], shape[:-1])
    return np.arange(shape[-1]) == labels[..., None]


def call_kernel(z, target, gamma, weights=None, from_logits=True):
    """The kernel on backend tensors, target as bool or float32."""
    target = ops.convert_to_tensor(target)
    if weights is not None:
        weights = ops.convert_to_tensor(weights, z.dtype)
    return _kernels.binary_focal_sum(
        z, target, gamma, from_logits=from_logits, class_weights=weights
    )


def check(z, t_tensor, t_ref, gamma, weights=None, fn_wrapper=None):
    """Value (1e-6 relative) and gradient (1e-5 relative) of the kernel."""
    rng = np.random.default_rng(1)
    upstream = rng.uniform(0.5, 2.0, z.shape[:-1])

    def fn(x):
        rows = call_kernel(x, t_tensor, gamma, weights)
        return ops.sum(rows * ops.convert_to_tensor(upstream, rows.dtype))

    if fn_wrapper is not None:
        fn = fn_wrapper(fn)
    value, grad = value_and_grad(fn, z)
    ref_value, ref_grad = reference(z, t_ref, gamma, weights)
    expected = np.sum(ref_value.sum(-1) * upstream)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    expected_grad = ref_grad * upstream[..., None]
    allowed = 1e-5 * np.abs(expected_grad) + TINY
    soft = (t_ref > 0) & (t_ref < 1)
    allowed = (
        allowed
        + soft
        * 2e-7
        * cancellation_scale(z, t_ref, gamma)
        * upstream[..., None]
    )
    worst = np.max(np.abs(grad - expected_grad) / allowed)
    assert worst <= 1.0, f"gradient off by {worst:.3g} x the tolerance"
    assert np.all(np.isfinite(grad))


# --------------------------------------------------------------------------
# Tests.
# --------------------------------------------------------------------------


def test_reference_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 3.0, (4, 5))
    for t in (hard_targets(rng, z.shape), rng.uniform(0, 1, z.shape)):
        for gamma in GAMMAS:
            h = 1e-6
            numeric = (
                reference(z + h, t, gamma)[0] - reference(z - h, t, gamma)[0]
            ) / (2 * h)
            np.testing.assert_allclose(
                reference(z, t, gamma)[1], numeric, rtol=1e-6, atol=1e-9
            )


def test_reference_equals_the_textbook_focal_loss():
    z = np.linspace(-6.0, 6.0, 13)
    t = z > 0.5
    p = 1 / (1 + np.exp(-z))
    p_t = np.where(t, p, 1 - p)
    textbook = (1 - p_t) ** 2.0 * -np.log(p_t)
    np.testing.assert_allclose(reference(z, t, 2.0)[0], textbook, rtol=1e-12)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_hard_targets_confident_logits(gamma):
    rng = np.random.default_rng(2)
    z = confident_logits(rng)
    t = hard_targets(rng, z.shape)
    check(z, t, t, gamma)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("soft", [False, True])
def test_analytic_form_on_every_backend(soft, gamma):
    # binary_focal_sum leaves JAX to autodiff; the custom-gradient function
    # itself must be exact everywhere.
    rng = np.random.default_rng(10)
    z = confident_logits(rng)
    t = hard_targets(rng, z.shape)
    terms = _kernels._soft_terms if soft else _kernels._hard_terms
    target = ops.convert_to_tensor(t.astype(np.float32) if soft else t)
    fused = _kernels._fused(terms, gamma, weighted=False)
    value, grad = value_and_grad(lambda x: ops.sum(fused(x, target)), z)
    ref_value, ref_grad = reference(z, t, gamma)
    np.testing.assert_allclose(value, ref_value.sum(), rtol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=TINY)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_soft_and_one_hot_float_targets(gamma):
    rng = np.random.default_rng(3)
    z = confident_logits(rng)
    soft = rng.uniform(0.0, 1.0, z.shape).astype(np.float32)
    soft[:, :3] = [0.0, 1.0, 0.5]
    check(z, soft, soft.astype(np.float64), gamma)
    one_hot = hard_targets(rng, z.shape).astype(np.float32)
    check(z, one_hot, one_hot.astype(np.float64), gamma)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_float16_range_logits(gamma):
    rng = np.random.default_rng(4)
    z = float16_range_logits()
    t = hard_targets(rng, z.shape)
    t[1, 3] = True  # the largest logit with target 1: p_t -> 1
    check(z, t, t, gamma)
    check(z, t.astype(np.float32), t.astype(np.float64), gamma)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_class_weights(gamma):
    rng = np.random.default_rng(5)
    z = confident_logits(rng, rows=3, classes=6)
    t = hard_targets(rng, z.shape)
    weights = rng.uniform(0.1, 3.0, 6).astype(np.float32)
    check(z, t, t, gamma, weights.astype(np.float64))


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_compiled_matches_reference(gamma):
    rng = np.random.default_rng(6)
    z = confident_logits(rng, rows=4, classes=8)
    t = hard_targets(rng, z.shape)
    check(z, t, t, gamma, fn_wrapper=compiled)
    soft = rng.uniform(0, 1, z.shape).astype(np.float32)
    check(z, soft, soft.astype(np.float64), gamma, fn_wrapper=compiled)


@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.9])
def test_gamma_below_one_has_no_nan_where_p_t_is_one(gamma):
    # p_t rounds to 1 in float32 from z = 17 on; pow(1 - p_t, gamma) would
    # have an infinite derivative there.
    z = np.array([[17.0, 50.0, 1e4, -17.0, -50.0, -1e4]])
    t = np.array([[True, True, True, False, False, False]])
    value, grad = value_and_grad(lambda x: ops.sum(call_kernel(x, t, gamma)), z)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(
        grad, reference(z, t, gamma)[1], rtol=1e-5, atol=TINY
    )


@pytest.mark.parametrize("gamma", GAMMAS)
def test_probabilities_including_zero_and_one(gamma):
    p = np.array(
        [
            [0.0, 1.0, 1e-9, 1 - 1e-9, 0.5, 0.25],
            [0.999, 0.001, 0.7, 0.3, 1.0, 0.0],
        ]
    )
    t_hard = np.array(
        [
            [True, True, False, False, True, False],
            [True, False, False, True, False, True],
        ]
    )
    for t_tensor, t_ref in (
        (t_hard, t_hard),
        (np.full(p.shape, 0.3, np.float32), np.full(p.shape, 0.3)),
    ):
        value, grad = value_and_grad(
            lambda x, tt=t_tensor: ops.sum(
                call_kernel(x, tt, gamma, from_logits=False)
            ),
            p,
        )
        ref_value, ref_grad = reference_probabilities(p, t_ref, gamma)
        np.testing.assert_allclose(value, ref_value.sum(), rtol=1e-6)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-6)


def test_output_shape_and_dtype_per_pixel():
    rng = np.random.default_rng(7)
    z = rng.normal(0, 2, (2, 3, 4, 5))
    t = hard_targets(rng, z.shape)
    out = call_kernel(ops.convert_to_tensor(z, "float32"), t, 1.0)
    assert tuple(out.shape) == (2, 3, 4)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(out), reference(z, t, 1.0)[0].sum(-1), rtol=1e-6
    )


# --------------------------------------------------------------------------
# Second derivatives.
# --------------------------------------------------------------------------


def second_derivative(fn, x):
    """Diagonal of the Hessian of the scalar `fn` (separable in x)."""
    x = np.asarray(x, np.float32)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                value = fn(x)
            first = inner.gradient(value, x)
        return to_numpy(outer.gradient(first, x))
    if BACKEND == "jax":
        import jax

        first = jax.grad(fn)
        return to_numpy(jax.grad(lambda v: first(v).sum())(x))
    import torch

    x = torch.tensor(x, requires_grad=True)
    (first,) = torch.autograd.grad(fn(x), x, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), x)
    return to_numpy(second)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("soft", [False, True])
def test_second_derivative(gamma, soft):
    rng = np.random.default_rng(8)
    z = rng.normal(0.0, 3.0, (3, 5)).astype(np.float32).astype(np.float64)
    t = hard_targets(rng, z.shape)
    t_tensor = t.astype(np.float32) if soft else t
    second = second_derivative(
        lambda x: ops.sum(call_kernel(x, t_tensor, gamma)), z
    )
    np.testing.assert_allclose(
        second, second_reference(z, t, gamma), rtol=1e-4, atol=1e-6
    )


@pytest.mark.skipif(BACKEND != "jax", reason="JAX transformations")
def test_jax_hessian_and_jacrev_twice():
    import jax

    rng = np.random.default_rng(9)
    z = rng.normal(0.0, 2.0, (4,)).astype(np.float32)
    t = np.array([True, False, False, True])

    def fn(x):
        return ops.sum(call_kernel(x[None], t[None], 0.5))

    expected = np.diag(second_reference(z.astype(np.float64), t, 0.5))
    for hessian in (jax.hessian(fn)(z), jax.jacrev(jax.jacrev(fn))(z)):
        np.testing.assert_allclose(
            np.asarray(hessian, np.float64), expected, rtol=1e-4, atol=1e-7
        )


# --------------------------------------------------------------------------
# How each backend compiles the kernel.
# --------------------------------------------------------------------------


def test_log1p_polynomial_is_as_exact_as_log1p():
    # The XLA form of log1p(exp(-|z|)), in float32, against float64.
    e = np.concatenate(
        [np.linspace(0.0, 1.0, 20001), 10.0 ** -np.arange(1.0, 38.0)]
    ).astype(np.float32)
    got = to_numpy(_kernels._log1p_of_exp(ops.convert_to_tensor(e), True))
    expected = np.log1p(e.astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=3e-7, atol=0)
    if BACKEND == "jax":  # float64 needs jax_enable_x64
        return
    # float64 keeps log1p's full precision
    e64 = ops.convert_to_tensor(e.astype(np.float64), "float64")
    got = ops.convert_to_numpy(_kernels._log1p_of_exp(e64, True))
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_compiled_form_matches_reference(gamma):
    # The terms as XLA runs them (`compiled=True`), through the analytic
    # gradient: what JAX and TensorFlow's XLA paths compute, on any backend.
    rng = np.random.default_rng(11)
    z = confident_logits(rng)
    t = hard_targets(rng, z.shape)
    for terms, target in (
        (_kernels._hard_terms, t),
        (_kernels._soft_terms, t.astype(np.float32)),
    ):
        fused = _kernels._fused(terms, gamma, weighted=False, compiled=True)
        target = ops.convert_to_tensor(target)
        value, grad = value_and_grad(
            lambda x, f=fused, tt=target: ops.sum(f(x, tt)), z
        )
        ref_value, ref_grad = reference(z, t, gamma)
        np.testing.assert_allclose(value, ref_value.sum(), rtol=1e-6)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=TINY)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graphs")
@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("form", ["ids", "mask", "soft", "weighted"])
def test_tensorflow_graph_runs_one_xla_cluster(form, static):
    # In a tf.function without XLA the kernel runs as its own XLA cluster;
    # with unknown leading axes through the row buckets (padded rows).
    import tensorflow as tf

    gamma = 2.0
    rng = np.random.default_rng(12)
    z = confident_logits(rng, rows=7, classes=16).reshape(7, 2, 8)
    mask = hard_targets(rng, z.shape)
    weights = None
    if form == "ids":
        target = np.argmax(mask, -1).astype(np.int32)
    elif form == "soft":
        target = rng.uniform(0.0, 1.0, z.shape).astype(np.float32)
        mask = target.astype(np.float64)
    else:
        target = mask
    if form == "weighted":
        weights = rng.uniform(0.1, 3.0, 8)
    kind = "ids" if form == "ids" else ("soft" if form == "soft" else "mask")
    cluster = _kernels._tf_cluster(kind, gamma, weights is not None)
    traces = cluster.experimental_get_tracing_count()
    signature = None
    if not static:
        signature = [tf.TensorSpec([None, None, 8], tf.float32)]

    def graph(fn):
        return tf.function(fn, input_signature=signature)

    check(z, target, mask, gamma, weights, fn_wrapper=graph)
    assert cluster.experimental_get_tracing_count() == traces + 1


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graphs")
@pytest.mark.parametrize("soft", [False, True])
def test_tensorflow_graph_second_derivative(soft):
    import tensorflow as tf

    gamma = 0.5
    rng = np.random.default_rng(13)
    z = rng.normal(0.0, 3.0, (3, 5)).astype(np.float32).astype(np.float64)
    t = hard_targets(rng, z.shape)
    target = tf.constant(t.astype(np.float32) if soft else t)

    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32)])
    def second(x):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                value = ops.sum(call_kernel(x, target, gamma))
            first = inner.gradient(value, x)
        return outer.gradient(first, x)

    np.testing.assert_allclose(
        to_numpy(second(tf.constant(z, tf.float32))),
        second_reference(z, t, gamma),
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graphs")
def test_tensorflow_xla_step_keeps_the_kernel_inline():
    # Under jit_compile=True the kernel is part of the step's own cluster:
    # no nested cluster is traced.
    import tensorflow as tf

    rng = np.random.default_rng(14)
    z = tf.constant(rng.normal(0.0, 3.0, (4, 6)), tf.float32)
    t = hard_targets(rng, (4, 6))
    cluster = _kernels._tf_cluster("mask", 1.0, False)
    traces = cluster.experimental_get_tracing_count()
    step = tf.function(lambda x: call_kernel(x, t, 1.0), jit_compile=True)
    np.testing.assert_allclose(
        to_numpy(step(z)),
        reference(to_numpy(z), t, 1.0)[0].sum(-1),
        rtol=1e-6,
    )
    assert cluster.experimental_get_tracing_count() == traces


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graphs")
def test_row_buckets_bound_the_shapes():
    import tensorflow as tf

    bucket = tf.function(_kernels._bucket)

    def padded(sizes):
        return np.array([int(bucket(tf.constant(n, tf.int32))) for n in sizes])

    np.testing.assert_array_equal(
        padded([1, 7, 8, 9, 255, 256, 257, 321, 4999]),
        [1, 7, 8, 10, 256, 256, 320, 384, 5120],
    )
    rows = np.arange(1, 5000, 7)
    sizes = padded(rows)
    np.testing.assert_array_equal(sizes, [_row_bucket(n) for n in rows])
    assert np.all(sizes >= rows) and np.all(sizes < 1.25 * rows + 1)
    # four sizes per power of two (and every size below 8)
    assert len(set(sizes)) <= 4 * 13


def _row_bucket(rows):
    """The smallest multiple of 2**(bit_length(rows) - 3) >= rows."""
    step = 2 ** max(int(rows).bit_length() - 3, 0)
    return -(-int(rows) // step) * step


# Run in the session's TensorFlow child (tests/children.py), where XLA
# dumps the HLO modules of the focal kernel to `workdir/xla`: the files that
# this script adds there are its compilations. Lengths between 16 and 128
# tokens: about 22 shapes, in 6 row buckets.
SEQUENCE_SCRIPT = """
import os
import numpy as np
import keras
import tensorflow as tf
from keras_cbloss import CBFocalLoss, _kernels

_kernels._tf_cluster.cache_clear()  # compiled afresh in this script
dump = os.path.join(workdir, "xla")
before = set(os.listdir(dump)) if os.path.isdir(dump) else set()
C, V, BATCH = 5, 30, 4
rng = np.random.default_rng(0)
lengths = np.exp(rng.uniform(np.log(16), np.log(128), 24 * BATCH)).astype(int)
tokens = [rng.integers(1, V, n).astype("int32") for n in lengths]
data = tf.data.Dataset.from_generator(
    lambda: ((x, x % C) for x in tokens),
    output_signature=(tf.TensorSpec([None], tf.int32),
                      tf.TensorSpec([None], tf.int32)),
).padded_batch(BATCH, padding_values=(0, -1))
model = keras.Sequential([
    keras.Input((None,), dtype="int32"),
    keras.layers.Embedding(V, 8, mask_zero=True),
    keras.layers.Dense(C),
])
loss = CBFocalLoss([50, 40, 30, 20, 10], 0.99, 2.0, from_logits=True,
                   ignore_class=-1)
model.compile("adam", loss=loss)
history = model.fit(data, epochs=2, verbose=0)
rows = [BATCH * int(lengths[i:i + BATCH].max())
        for i in range(0, len(lengths), BATCH)]
result = {"rows": rows, "loss": history.history["loss"],
          "dumped": sorted(set(os.listdir(dump)) - before)}
"""


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graphs")
def test_padded_batch_sequences_compile_a_bounded_number_of_times():
    # A sequence model fed `padded_batch` data: nearly every batch has a new
    # shape. XLA's own dump counts the kernel's compilations.
    report = children.run("tensorflow_two_cpus", SEQUENCE_SCRIPT)
    assert np.all(np.isfinite(report["loss"]))
    compiles = [
        name
        for name in report["dumped"]
        if "focal_sum" in name and name.endswith("before_optimizations.txt")
    ]
    shapes = set(report["rows"])
    buckets = {_row_bucket(n) for n in shapes}
    assert len(shapes) >= 20  # without buckets: a compilation per shape
    # forward and backward once per bucket, in both epochs together
    assert 2 <= len(compiles) <= 2 * len(buckets) < len(shapes)


@pytest.mark.skipif(BACKEND != "torch", reason="torch.compile")
@pytest.mark.parametrize("form", ["ids", "soft_weighted"])
def test_torch_compiled_kernel_matches_reference(form, monkeypatch):
    # The kernel's torch.compile path (taken after TORCH_COMPILE_AFTER
    # calls), from the first call: values, gradients, second derivatives.
    monkeypatch.setattr(_kernels, "TORCH_COMPILE_AFTER", 0)
    rng = np.random.default_rng(15)
    z = confident_logits(rng, rows=4, classes=8)
    mask = hard_targets(rng, z.shape)
    if form == "ids":
        kind, gamma, weights = "ids", 2.0, None
        target, t_ref = np.argmax(mask, -1).astype(np.int32), mask
    else:
        kind, gamma = "soft", 0.5
        weights = rng.uniform(0.1, 3.0, 8)
        target = rng.uniform(0.0, 1.0, z.shape).astype(np.float32)
        t_ref = target.astype(np.float64)
    check(z, target, t_ref, gamma, weights)
    kernel = _kernels._torch_focal_sum(kind, gamma, weights is not None)
    assert kernel.compiled is not None and not kernel.failed
    moderate = rng.normal(0.0, 3.0, (3, 8)).astype(np.float32)
    second = second_derivative(
        lambda x: ops.sum(call_kernel(x, mask[:3], gamma)), moderate
    )
    np.testing.assert_allclose(
        second,
        second_reference(moderate.astype(np.float64), mask[:3], gamma),
        rtol=1e-4,
        atol=1e-6,
    )
