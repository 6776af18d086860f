"""Fused binary focal cross-entropy with an analytic gradient (private).

`binary_focal_sum` returns, for each position, the sum over the last axis of
the (class-weighted) binary focal cross-entropies. On TensorFlow and PyTorch
it differentiates that sum from logits with a closed-form gradient instead of
autodiff through a dozen elementwise ops; on JAX, and for probabilities, it
is the same log-space formula under autodiff. Every name here is private.

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
dFL/dz = -s * mod * (gamma * p_t * BCE + q)
```

For integer gamma (0, 1, 2, 3) `mod` is a product of `q`s, not a third
transcendental: forward and backward together take one exp, one log1p and
one division per element. (Taking p_t and q from the backend's sigmoid op
instead was faster under `tf.function` but up to 1.6x slower under XLA,
which expands each sigmoid into another exp and division.)

For soft targets t in [0, 1] the exponent interpolates linearly, as in the
official code:

```
BCE    = t * softplus(-z) + (1 - t) * softplus(z)
E      = t * softplus(z) + (1 - t) * softplus(-z),   mod = exp(-gamma * E)
dFL/dz = mod * ((p - t) + gamma * ((1 - t) - p) * BCE),   p = sigmoid(z)
```

(with t = 0 or 1 this is the formula above). p - t and (1 - t) - p are
computed as p * (1 - t) - t * (1 - p) and (1 - t) * (1 - p) - t * p, with p
and 1 - p each from `e`, so for 0/1 targets nothing cancels where the true
value is tiny (for soft targets p - t is as well conditioned as t allows).
Nothing overflows or divides by zero: for gamma < 1 the modulator is an exp
of a finite exponent, never a power of 0.

Second derivatives: the gradient is written in ops of the forward's own
terms, so it is differentiable again: TensorFlow (nested `GradientTape`),
JAX (`jax.hessian`, `jax.jacrev(jax.jacrev(...))`) and PyTorch
(`create_graph=True`) all give the exact second derivative
(tests/test_kernels.py).

On JAX the sum is left to autodiff: XLA fuses that graph as well as the
analytic one, and measured it as fast or faster (paired runs on CPU).
Probabilities (`from_logits=False`) also use autodiff, on every backend.
"""

import keras
from keras import ops

from keras_cbloss._compat import torch_records_gradient

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
        target: Boolean class mask `[..., C]` (sparse labels, e.g. from
            `_class_mask`) or float targets in [0, 1] of `y_pred`'s shape
            and dtype (one-hot, multi-hot or soft labels).
        gamma: Python float >= 0 (validated by the caller). Defaults to 0
            (plain binary cross-entropy).
        from_logits: Whether `y_pred` are logits. Probabilities are clipped
            to [epsilon, 1 - epsilon] as Keras clips them and differentiated
            by autodiff. Defaults to `True`.
        class_weights: Optional 1-D tensor of C weights in `y_pred`'s dtype:
            `out = sum_c w_c * FL_c` (the losses' `weighting="class"`).

    Returns:
        A tensor of shape `y_pred.shape[:-1]` in `y_pred`'s dtype.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_cbloss._kernels import binary_focal_sum
    >>> logits = ops.convert_to_tensor([[2.0, 0.0, -1.0]], "float32")
    >>> mask = ops.convert_to_tensor([[True, False, False]])
    >>> out = binary_focal_sum(logits, mask, gamma=2.0)
    >>> np.round(ops.convert_to_numpy(out), 4)
    array([0.1977], dtype=float32)

    References:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    gamma = float(gamma)
    if not from_logits:
        neg_log_p, neg_log_1mp = _probability_logs(y_pred)
        return _autodiff_focal_sum(
            neg_log_p, neg_log_1mp, None, target, gamma, class_weights
        )
    if keras.backend.backend() == "jax" or isinstance(
        y_pred, keras.KerasTensor
    ):
        # XLA fuses the autodiff graph as well as the analytic one (and a
        # custom gradient only constrains it): measured as fast or faster.
        # Symbolic inputs (Keras' shape inference) only need the shape,
        # which `custom_gradient` cannot trace on TensorFlow.
        neg_log_p, neg_log_1mp, shared = _logit_logs(y_pred)
        return _autodiff_focal_sum(
            neg_log_p, neg_log_1mp, shared, target, gamma, class_weights
        )
    hard = keras.backend.standardize_dtype(target.dtype) == "bool"
    terms = _hard_terms if hard else _soft_terms
    if class_weights is None:
        return _fused(terms, gamma, weighted=False)(y_pred, target)
    return _fused(terms, gamma, weighted=True)(y_pred, target, class_weights)


def _fused(terms, gamma, weighted):
    """The custom-gradient function for one form of target and weights."""

    @ops.custom_gradient
    def focal_sum(*inputs):
        z, target = inputs[0], inputs[1]
        weights = inputs[2] if weighted else None
        saved = terms(z, target, gamma)
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
                local = terms(args[0], args[1], gamma)
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


def _hard_terms(z, target, gamma):
    """Forward terms and gradient for a boolean target mask."""
    # u = s * z, with s = +1 where the target is set and -1 elsewhere.
    u = ops.where(target, z, -z)
    e = ops.exp(-ops.abs(z))
    log_term = ops.log1p(e)
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
            d_u = -mod * (gamma * p_t * bce + q)
        return ops.where(target, d_u, -d_u)

    return {"loss": loss, "grad": grad}


def _soft_terms(z, target, gamma):
    """Forward terms and gradient for float targets in [0, 1]."""
    e = ops.exp(-ops.abs(z))
    log_term = ops.log1p(e)
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
        return mod * (d_bce + gamma * d_exponent * bce)

    return {"loss": loss, "grad": grad}


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

