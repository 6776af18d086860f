"""Fused binary focal cross-entropy with an analytic gradient (private).

`binary_focal_sum` returns, for each position, the sum over the last axis of
the (class-weighted) binary focal cross-entropies, and differentiates that
sum from logits with a closed-form gradient (computed in the same pass as
the value) instead of autodiff through a dozen elementwise ops. Every name
here is private.

Notation, for a logit z and a 0/1 target t (s = 2t - 1, u = s * z):

```
e    = exp(-|z|)
l    = log1p(e)
r    = 1 / (1 + e)
p_t  = sigmoid(u)     = (1 if u >= 0 else e) * r
q    = 1 - p_t        = (e if u >= 0 else 1) * r
BCE  = -log(p_t)      = relu(-u) + l
mod  = q ** gamma     = exp(-gamma * (relu(u) + l))
FL   = mod * BCE
dFL/dz = -s * mod * (gamma * p_t * BCE + q) = -s * (gamma * p_t * FL + mod * q)
```

For integer gamma (0, 1, 2, 3) `mod` is a product of `q`s, not a third
transcendental: forward and backward together take one exp, one log1p and
one division per element. The gradient is written with FL, so that l feeds
the loss only.

For soft targets t in [0, 1] the exponent interpolates linearly, as in the
official code:

```
BCE    = t * softplus(-z) + (1 - t) * softplus(z)
E      = t * softplus(z) + (1 - t) * softplus(-z),   mod = exp(-gamma * E)
dFL/dz = mod * (p - t) + gamma * ((1 - t) - p) * FL,   p = sigmoid(z)
```

(with t = 0 or 1 this is the formula above). p - t and (1 - t) - p are
computed as p * (1 - t) - t * (1 - p) and (1 - t) * (1 - p) - t * p, with p
and 1 - p each from `e`, so for 0/1 targets nothing cancels where the true
value is tiny (for soft targets p - t is as well conditioned as t allows).
Nothing overflows or divides by zero: for gamma < 1 the modulator is an exp
of a finite exponent, never a power of 0.

How each backend runs it (benchmarks/results/ has the measurements):

- TensorFlow, in a graph without XLA (`tf.function`, every `tf.distribute`
  step): as its own `tf.function(jit_compile=True)`, one fused XLA cluster
  for the value and one for the gradient; dynamic shapes go through row
  buckets that bound the compilations (`_tf_cluster_call`). Under XLA
  (`jit_compile=True`) the kernel is part of the step's cluster. Eager
  code, an unknown class axis and devices without XLA run op by op.
- JAX: a `jax.custom_jvp` (forward and reverse mode, `jax.hessian`), and
  for float targets a `lax.cond` that gives 0/1 targets the boolean-mask
  terms.
- PyTorch: eager, then `torch.compile` once one configuration has been
  called `TORCH_COMPILE_AFTER` times (`_TorchFocalSum`).
- Under XLA `log1p` is a polynomial (`_log1p_of_exp`).

Second derivatives: the gradient is written in ops of the forward's own
terms, so it is differentiable again: TensorFlow (nested `GradientTape`),
JAX (`jax.hessian`, `jax.jacrev(jax.jacrev(...))`) and PyTorch
(`create_graph=True`) all give the exact second derivative
(tests/test_kernels.py). Probabilities (`from_logits=False`) and symbolic
inputs use autodiff of the log-space formula, on every backend.
"""

import functools
import warnings

import keras
import numpy as np
from keras import ops

from keras_cbloss._compat import executing_eagerly
from keras_cbloss._compat import tf_in_xla_context
from keras_cbloss._compat import torch_records_gradient
from keras_cbloss._labels import _class_mask

INTEGER_GAMMAS = (0.0, 1.0, 2.0, 3.0)


def binary_focal_sum(
    y_pred, target, gamma=0.0, from_logits=True, class_weights=None
):
    """Sum over the last axis of binary focal cross-entropies.

    Formula:

    ```
    FL_c = (1 - p_t) ** gamma * -log(p_t),   p_t = p_c if t_c else 1 - p_c
    out  = sum_c w_c * FL_c                  (w_c = 1 without class_weights)
    ```

    Args:
        y_pred: Logits (or probabilities with `from_logits=False`), a float
            tensor `[..., C]` (float32 or float64; 16-bit inputs should be
            cast to float32 first, as the losses do).
        target: Integer class ids `[...]` (one positive class per
            position, t_c = 1 for c = id; valid ids in [0, C)), a boolean
            class mask `[..., C]`, or float targets in [0, 1] of `y_pred`'s
            shape and dtype (one-hot, multi-hot or soft labels).
        gamma: Python float >= 0 (validated by the caller). Defaults to 0
            (plain binary cross-entropy).
        from_logits: Whether `y_pred` are logits. Probabilities are clipped
            to [epsilon, 1 - epsilon] as Keras clips them and differentiated
            by autodiff. Defaults to `True`.
        class_weights: Optional 1-D tensor of C weights in `y_pred`'s dtype:
            `out = sum_c w_c * FL_c` (the losses' `weighting="class"`).

    Returns:
        A tensor of shape `y_pred.shape[:-1]` in `y_pred`'s dtype.

    Examples:
        >>> import numpy as np
        >>> from keras import ops
        >>> from keras_cbloss._kernels import binary_focal_sum
        >>> logits = ops.convert_to_tensor([[2.0, 0.0, -1.0]], "float32")
        >>> mask = ops.convert_to_tensor([[True, False, False]])
        >>> out = binary_focal_sum(logits, mask, gamma=2.0)
        >>> np.round(ops.convert_to_numpy(out), 4)
        array([0.1977], dtype=float32)
        >>> ids = ops.convert_to_tensor([0], "int32")
        >>> loss = binary_focal_sum(logits, ids, 2.0)
        >>> np.round(ops.convert_to_numpy(loss), 4)
        array([0.1977], dtype=float32)

    References:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    gamma = float(gamma)
    kind = _target_kind(y_pred, target)
    if not from_logits or isinstance(y_pred, keras.KerasTensor):
        # Probabilities, and symbolic inputs (Keras' shape inference, which
        # only needs the shape and which `custom_gradient` cannot trace on
        # TensorFlow): the log-space formula under autodiff.
        if kind == "ids":
            target = _ids_mask(y_pred, target)
        if from_logits:
            logs = _logit_logs(y_pred)
        else:
            logs = _probability_logs(y_pred) + (None,)
        return _autodiff_focal_sum(*logs, target, gamma, class_weights)
    inputs = (y_pred, target)
    if class_weights is not None:
        inputs += (class_weights,)
    weighted = class_weights is not None
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_kernel(kind, gamma, weighted)(*inputs)
    if backend == "tensorflow" and _tf_cluster_applies(y_pred):
        return _tf_cluster_call(kind, gamma, inputs)
    if backend == "torch":
        return _torch_focal_sum(kind, gamma, weighted)(*inputs)
    compiled = backend == "tensorflow" and tf_in_xla_context()
    return _fused(_TERMS[kind], gamma, weighted, compiled)(*inputs)


def _jax_kernel(kind, gamma, weighted):
    """The kernel on JAX (`_jax_focal_sum`), and for float targets a branch
    on whether they are all 0 or 1 (one-hot, multi-hot).

    0/1 targets take the boolean-mask terms, which equal the soft ones
    there and need one `exp` instead of two; XLA runs one branch. (Not on
    TensorFlow: the gradient of `tf.cond` around a custom gradient does
    not compile under XLA.)
    """
    if kind != "soft":
        return _jax_focal_sum(kind, gamma, weighted)
    hard = _jax_focal_sum("mask", gamma, weighted)
    soft = _jax_focal_sum("soft", gamma, weighted)

    def focal_sum(z, target, *weights):
        binary = ops.all(ops.logical_or(target == 0.0, target == 1.0))
        return ops.cond(
            binary,
            lambda: hard(z, target > 0.5, *weights),
            lambda: soft(z, target, *weights),
        )

    return focal_sum


def _target_kind(y_pred, target):
    """ "ids" (int class ids `[...]`), "mask" (bool `[..., C]`) or "soft"."""
    dtype = keras.backend.standardize_dtype(target.dtype)
    if dtype == "bool":
        return "mask"
    if "int" in dtype and len(target.shape) == len(y_pred.shape) - 1:
        return "ids"
    return "soft"


def _ids_mask(z, ids):
    """The boolean class mask `[..., C]` of class ids `[...]`."""
    num_classes = z.shape[-1]
    if num_classes is None:
        num_classes = ops.shape(z)[-1]
        positions = ops.arange(num_classes, dtype=ids.dtype)
        return ops.equal(ops.expand_dims(ids, -1), positions)
    return _class_mask(ids, num_classes)


def _fused(terms, gamma, weighted, compiled=False):
    """The custom-gradient function for one form of target and weights.

    `compiled`: the function runs under XLA (see `_log1p_of_exp`).
    """

    @ops.custom_gradient
    def focal_sum(*inputs):
        z, target = inputs[0], inputs[1]
        weights = inputs[2] if weighted else None
        saved = terms(z, target, gamma, compiled)
        elementwise = saved["loss"]
        if weights is not None:
            elementwise = elementwise * weights
        value = ops.sum(elementwise, axis=-1)
        # Compiled backends get the elementwise derivative from the same
        # fused pass as the value (and prune it when no gradient is taken);
        # eager PyTorch computes it only in the backward pass.
        precomputed = None
        if keras.backend.backend() != "torch":
            precomputed = saved["grad"]()

        def grad(*args, upstream=None):
            # TensorFlow and JAX call grad(upstream); PyTorch calls
            # grad(*inputs, upstream=...) with the forward's inputs.
            local = saved
            if upstream is None:
                (upstream,) = args
            elif torch_records_gradient():
                # PyTorch runs the forward without recording it; to make
                # the gradient differentiable (create_graph=True) its terms
                # are recomputed from the recorded input.
                local = terms(args[0], args[1], gamma, compiled)
            scale = ops.expand_dims(upstream, -1)
            if weights is not None:
                scale = scale * weights
            if precomputed is not None:
                grad_z = scale * precomputed
            else:
                grad_z = scale * local["grad"]()
            return (grad_z,) + (None,) * (len(inputs) - 1)

        return value, grad

    return focal_sum


# --------------------------------------------------------------------------
# How each backend compiles the kernel.
# --------------------------------------------------------------------------


@functools.cache
def _jax_focal_sum(kind, gamma, weighted):
    """The kernel as a `jax.custom_jvp` function (one per form and gamma).

    The JVP rule computes the value and the elementwise derivative in one
    pass; reverse mode (`jax.grad`) transposes its linear part into
    `upstream * derivative`, and forward mode and higher derivatives
    (`jax.hessian`) differentiate the rule itself.
    """
    import jax
    from jax.custom_derivatives import SymbolicZero

    terms = _TERMS[kind]

    def focal_sum(z, target, *weights):
        loss = terms(z, target, gamma, True)["loss"]
        if weighted:
            loss = loss * weights[0]
        return ops.sum(loss, axis=-1)

    def jvp(primals, tangents):
        z, target = primals[0], primals[1]
        saved = terms(z, target, gamma, True)
        loss = saved["loss"]
        d_z = saved["grad"]()
        if weighted:
            w = primals[2]
            value = ops.sum(loss * w, axis=-1)
            d_z = d_z * w
        else:
            value = ops.sum(loss, axis=-1)
        tangent = ops.zeros_like(value)
        if not isinstance(tangents[0], SymbolicZero):
            tangent = ops.sum(d_z * tangents[0], axis=-1)
        if weighted and not isinstance(tangents[2], SymbolicZero):
            # d out / d w_c = FL_c (only if the weights are differentiated).
            tangent = tangent + ops.sum(loss * tangents[2], axis=-1)
        return value, tangent

    function = jax.custom_jvp(focal_sum)
    function.defjvp(jvp, symbolic_zeros=True)
    return function


# After this many calls of one kernel (target form, gamma, weights) on
# PyTorch, it runs through `torch.compile`; `None` never compiles.
TORCH_COMPILE_AFTER = 50


@functools.cache
def _torch_focal_sum(kind, gamma, weighted):
    return _TorchFocalSum(kind, gamma, weighted)


class _TorchFocalSum:
    """The kernel on PyTorch: eager at first, compiled once it is reused.

    Eager PyTorch runs each of the kernel's twenty-odd operations as its
    own pass over the tensor. `torch.compile` fuses the value and the
    elementwise derivative into one generated kernel, but compiling takes
    seconds, so it waits until the same kernel has been called
    `TORCH_COMPILE_AFTER` times (a training loop). PyTorch recompiles
    once when shapes change and then treats them as dynamic. If compiling
    fails (no compiler for the device), the eager kernel stays.
    """

    def __init__(self, kind, gamma, weighted):
        self.kind, self.gamma, self.weighted = kind, gamma, weighted
        self.calls = 0
        self.compiled = None
        self.failed = False

    def __call__(self, *inputs):
        self.calls += 1
        threshold = TORCH_COMPILE_AFTER
        eager = self.failed or threshold is None or self.calls <= threshold
        # Inside a compiled step (Keras' `jit_compile=True` on PyTorch) the
        # step's own `torch.compile` traces the eager kernel.
        if eager or not executing_eagerly(inputs[0]):
            return _fused(_TERMS[self.kind], self.gamma, self.weighted)(*inputs)
        if self.compiled is None:
            self.compiled = self._compile()
        try:
            return self.compiled(*inputs)
        except Exception as error:  # a backend compiler that is missing
            self.failed = True
            warnings.warn(
                "keras_cbloss: torch.compile of the focal kernel failed; "
                f"using the eager kernel. ({type(error).__name__}: {error})",
                stacklevel=2,
            )
            return _fused(_TERMS[self.kind], self.gamma, self.weighted)(*inputs)

    def _compile(self):
        import torch

        terms, gamma, weighted = _TERMS[self.kind], self.gamma, self.weighted

        def value_and_derivative(z, target, *weights):
            saved = terms(z, target, gamma)
            loss, derivative = saved["loss"], saved["grad"]()
            if weighted:
                loss, derivative = loss * weights[0], derivative * weights[0]
            return ops.sum(loss, axis=-1), derivative

        compiled = torch.compile(value_and_derivative)

        @ops.custom_gradient
        def focal_sum(*inputs):
            value, derivative = compiled(*inputs)

            def grad(*args, upstream=None):
                scale = ops.expand_dims(upstream, -1)
                if torch_records_gradient():
                    # create_graph=True: the derivative from recorded ops,
                    # so that it can be differentiated again.
                    local = terms(args[0], args[1], gamma)["grad"]()
                    if weighted:
                        local = local * args[2]
                    return (scale * local,) + (None,) * (len(args) - 1)
                return (scale * derivative,) + (None,) * (len(args) - 1)

            return value, grad

        return focal_sum


def _tf_cluster_applies(z):
    """Whether TensorFlow should run the kernel as its own XLA cluster.

    Yes in a graph being traced without XLA (a `tf.function`, including
    every `tf.distribute` step, where Keras turns XLA off), when the class
    axis is static and every device can compile XLA. Eager code runs op by
    op (a compilation per new shape would cost more than it saves), and a
    step already under XLA fuses the kernel with the rest of the step.
    """
    import tensorflow as tf

    if tf.executing_eagerly() or z.shape.rank is None:
        return False
    if z.shape[-1] is None or tf_in_xla_context():
        return False
    return _xla_devices_only()


@functools.cache
def _xla_devices_only():
    """Whether every visible device has an XLA backend (CPU, CUDA/ROCm)."""
    import tensorflow as tf

    kinds = {d.device_type for d in tf.config.list_physical_devices()}
    if kinds - {"CPU", "GPU"}:
        return False
    if "GPU" in kinds:
        # GPUs of a pluggable device (e.g. tensorflow-metal) have no XLA.
        return tf.test.is_built_with_gpu_support()
    return True


@functools.cache
def _tf_cluster(kind, gamma, weighted):
    """The custom-gradient kernel as a `tf.function(jit_compile=True)`."""
    import tensorflow as tf

    fused = _fused(_TERMS[kind], gamma, weighted, compiled=True)
    return tf.function(fused, jit_compile=True, autograph=False)


def _tf_cluster_call(kind, gamma, inputs):
    """Runs the XLA cluster; dynamic leading axes go through row buckets.

    XLA compiles once per input shape. With a static shape that is once.
    Otherwise (a partial last batch, `padded_batch` sequences of varying
    length, a varying number of positions) the positions are flattened to
    `[N, C]` rows and padded to the next of four sizes per power of two
    (N <= padded < 1.25 N), so that at most about 4 * log2(N_max)
    compilations (forward and backward each) serve every batch.
    """
    import tensorflow as tf

    cluster = _tf_cluster(kind, gamma, len(inputs) == 3)
    z, target = inputs[0], inputs[1]
    if z.shape.is_fully_defined():
        return cluster(*inputs)
    num_classes = z.shape[-1]
    leading = tf.shape(z)[:-1]
    rows = tf.reduce_prod(leading)
    extra = _bucket(rows) - rows
    z = tf.pad(tf.reshape(z, [-1, num_classes]), [[0, extra], [0, 0]])
    if kind == "ids":
        target = tf.pad(tf.reshape(target, [-1]), [[0, extra]])
    else:
        target = tf.reshape(target, [-1, num_classes])
        target = tf.pad(target, [[0, extra], [0, 0]])
    out = cluster(z, target, *inputs[2:])
    return tf.reshape(out[:rows], leading)


def _bucket(rows):
    """The smallest m * 2**k >= rows with m in {4, 5, 6, 7, 8} (int32)."""
    import tensorflow as tf

    # bit_length(rows) counts the powers of two <= rows, exactly.
    powers = tf.constant([2**k for k in range(31)], tf.int32)
    bit_length = tf.reduce_sum(tf.cast(rows >= powers, tf.int32))
    step = tf.bitwise.left_shift(1, tf.maximum(bit_length - 3, 0))
    return (rows + step - 1) // step * step


def _log1p_polynomial(degree=10):
    """Coefficients (low to high) of P with log1p(x) ~ x * P(x) on [0, 1].

    P interpolates log1p(x) / x at Chebyshev points of [0, 1] (NumPy,
    float64): the error falls by about 5.8x per degree (the function's
    nearest singularity is x = -1); degree 10 is below float32's rounding.
    """

    def ratio(x):
        safe = np.where(x == 0.0, 1.0, x)
        return np.where(x == 0.0, 1.0, np.log1p(safe) / safe)

    fit = np.polynomial.Chebyshev.interpolate(ratio, degree, domain=[0, 1])
    power_series = fit.convert(kind=np.polynomial.Polynomial)
    return tuple(float(c) for c in power_series.coef)


_LOG1P_COEFFICIENTS = _log1p_polynomial()


def _log1p_of_exp(e, compiled):
    """log1p(e) for e = exp(-|z|) in [0, 1].

    Under XLA on CPU `log1p` costs several times an `exp` and dominated
    the kernel; there it is e * P(e), a polynomial (`_log1p_polynomial`)
    whose multiply-adds fuse into the loss (relative error 1.5e-7 in
    float32, as `log1p`'s 2.3e-7; float64 keeps `log1p`). Op by op (eager
    code, TensorFlow graphs, PyTorch) the polynomial would be twenty passes
    over the tensor, so `ops.log1p` runs there.
    """
    if not compiled or keras.backend.standardize_dtype(e.dtype) == "float64":
        return ops.log1p(e)
    result = _LOG1P_COEFFICIENTS[-1]
    for coefficient in _LOG1P_COEFFICIENTS[-2::-1]:
        result = result * e + coefficient
    return result * e


def _modulator(q, exponent, gamma):
    """q ** gamma, from a product of q's when gamma is a small integer.

    `exponent` is a function returning -log(q), called only for other gammas.
    """
    if gamma == 0.0:
        return None
    if gamma in INTEGER_GAMMAS:
        mod = q
        for _ in range(int(gamma) - 1):
            mod = mod * q
        return mod
    return ops.exp(-gamma * exponent())


def _hard_terms(z, target, gamma, compiled=False):
    """Forward terms and gradient for a boolean target mask.

    `compiled`: the code runs under XLA (see `_log1p_of_exp`).
    """
    # u = s * z, with s = +1 where the target is set and -1 elsewhere.
    u = ops.where(target, z, -z)
    e = ops.exp(-ops.abs(z))
    log_term = _log1p_of_exp(e, compiled)
    reciprocal = 1.0 / (1.0 + e)
    positive = u >= 0
    # 1 - p_t = sigmoid(-u) = exp(-relu(u)) / (1 + exp(-|u|)).
    q = ops.where(positive, e, 1.0) * reciprocal
    bce = ops.relu(-u) + log_term
    mod = _modulator(q, lambda: ops.relu(u) + log_term, gamma)
    loss = bce if mod is None else mod * bce

    def grad():
        if mod is None:
            d_u = -q
        else:
            # p_t = sigmoid(u) = exp(-relu(-u)) / (1 + exp(-|u|)).
            p_t = ops.where(positive, 1.0, e) * reciprocal
            # mod * (gamma * p_t * BCE + q), with mod * BCE = loss: under
            # XLA the log term then feeds only the loss, not a second pass.
            d_u = -(gamma * p_t * loss + mod * q)
        return ops.where(target, d_u, -d_u)

    return {"loss": loss, "grad": grad}


def _soft_terms(z, target, gamma, compiled=False):
    """Forward terms and gradient for float targets in [0, 1]."""
    e = ops.exp(-ops.abs(z))
    log_term = _log1p_of_exp(e, compiled)
    # softplus(-z) = relu(-z) + l and softplus(z) = relu(z) + l; weighted by
    # t and 1 - t separately so that no two large terms cancel.
    relu_pos = ops.relu(z)
    relu_neg = ops.relu(-z)
    not_target = 1.0 - target
    bce = target * relu_neg + not_target * relu_pos + log_term
    mod = None
    if gamma != 0.0:
        exponent = target * relu_pos + not_target * relu_neg + log_term
        mod = ops.exp(-gamma * exponent)
    loss = bce if mod is None else mod * bce

    def grad():
        # sigmoid(z) and sigmoid(-z) from the same exp. p - t and
        # (1 - t) - p are written as differences of products so that 0/1
        # float targets (one-hot rows) lose nothing where p rounds to 1.
        reciprocal = 1.0 / (1.0 + e)
        positive = z >= 0
        p = ops.where(positive, 1.0, e) * reciprocal
        one_minus_p = ops.where(positive, e, 1.0) * reciprocal
        d_bce = not_target * p - target * one_minus_p
        if mod is None:
            return d_bce
        d_exponent = not_target * one_minus_p - target * p
        return mod * d_bce + gamma * d_exponent * loss

    return {"loss": loss, "grad": grad}


def _ids_terms(z, ids, gamma, compiled=False):
    """Forward terms and gradient for class ids (the mask built here, so
    that a compiled kernel reads the ids, not a `[..., C]` mask)."""
    return _hard_terms(z, _ids_mask(z, ids), gamma, compiled)


_TERMS = {"ids": _ids_terms, "mask": _hard_terms, "soft": _soft_terms}


def _probability_logs(p):
    """-log(p) and -log(1 - p) of probabilities clipped as Keras clips."""
    epsilon = keras.config.epsilon()
    p = ops.clip(p, epsilon, 1.0 - epsilon)
    return -ops.log(p), -ops.log(1.0 - p)


def _logit_logs(z):
    """-log(p) and -log(1 - p) of p = sigmoid(z), as part + shared term."""
    # softplus(-z) = relu(-z) + log1p(exp(-|z|)) and softplus(z) = relu(z)
    # + log1p(exp(-|z|)): one exp and one log1p, shared. z = 0 takes the
    # z < 0 side in both (a product, not `where`), so that its gradient
    # there is exactly sigmoid(0) - t.
    part_1mp = ops.relu(z)
    part_p = -z * ops.cast(z <= 0, z.dtype)
    shared = ops.log1p(ops.exp(-(part_1mp + part_p)))
    return part_p, part_1mp, shared


def _autodiff_focal_sum(
    neg_log_p, neg_log_1mp, shared, target, gamma, class_weights
):
    """The focal sum from -log(p), -log(1 - p) (+ shared), by autodiff."""
    if keras.backend.standardize_dtype(target.dtype) == "bool":
        bce = ops.where(target, neg_log_p, neg_log_1mp)
        exponent = ops.where(target, neg_log_1mp, neg_log_p)
    else:
        # Two products, so that nothing cancels where the value is tiny.
        not_target = 1.0 - target
        bce = target * neg_log_p + not_target * neg_log_1mp
        exponent = target * neg_log_1mp + not_target * neg_log_p
    if shared is not None:
        bce, exponent = bce + shared, exponent + shared
    loss = bce if gamma == 0.0 else ops.exp(-gamma * exponent) * bce
    if class_weights is not None:
        loss = loss * class_weights
    return ops.sum(loss, axis=-1)
