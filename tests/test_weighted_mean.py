"""`reduction="mean_with_sample_weight"`: the weighted mean of PyTorch's
`cross_entropy(weight=w)`, on the active Keras backend.

The class weight counts as a sample weight: the batch loss is
`sum(f * loss * s) / sum(f * s)` over the kept positions, with `f` the
position's class-weight factor (`w[y]`, `sum_c y_c w_c`, or
`(1 - t) w_0 + t w_1` for a one-unit head) and `s` the sample weight. The
expected values are float64 NumPy (`tests/reference.py`) or Keras' own
`SparseCategoricalCrossentropy(reduction="mean_with_sample_weight")` with
`sample_weight = w[y] * s`. `tests/test_backends.py` reruns this module
under JAX and PyTorch.
"""

import keras
import numpy as np
import pytest
import reference
from backend_utils import BACKEND
from backend_utils import compiled
from backend_utils import make_loss
from backend_utils import random_labels
from backend_utils import random_logits
from backend_utils import to_numpy
from backend_utils import value_and_grad

from keras_cbloss import CBSoftmaxLoss
from keras_cbloss import LogitAdjustedLoss
from keras_cbloss._compat import set_keras_mask

WEIGHTED = "mean_with_sample_weight"
RTOL = 1e-6

# The values of the issue (counts, beta, labels, logits and the results).
COUNTS = [60, 25, 8, 2]
C = len(COUNTS)
LABELS = np.array([0, 0, 1, 3, 2, 0])
LOGITS = np.array(
    [
        [2, 0, -1, 0.5],
        [1, 1, 0, 0],
        [0, 2, 1, -1],
        [0.5, 0, 0, 1],
        [-1, 0, 2, 0],
        [3, -1, 0, 0],
    ],
    "float32",
)
WEIGHTS = [0.10047, 0.23697, 0.73427, 2.92829]
DEFAULT_MEAN = 0.491247
WEIGHTED_MEAN = 0.701625


def _keras_scce(y, logits, sample_weight):
    scce = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=WEIGHTED
    )
    return to_numpy(scce(y, logits, sample_weight=sample_weight))


def test_the_values_of_the_issue():
    default = CBSoftmaxLoss(COUNTS, 0.999, from_logits=True)
    weighted = CBSoftmaxLoss(
        COUNTS, 0.999, from_logits=True, reduction=WEIGHTED
    )
    np.testing.assert_allclose(default.class_weights, WEIGHTS, atol=5e-6)
    np.testing.assert_allclose(
        to_numpy(default(LABELS, LOGITS)), DEFAULT_MEAN, atol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(weighted(LABELS, LOGITS)), WEIGHTED_MEAN, atol=1e-6
    )
    # Keras' own reduction, with the class weight as the sample weight
    w = reference.cb_weights(COUNTS, 0.999)
    np.testing.assert_allclose(
        to_numpy(weighted(LABELS, LOGITS)),
        _keras_scce(LABELS, LOGITS, w[LABELS]),
        rtol=RTOL,
    )


def test_sample_weight_multiplies_the_class_weight():
    w = reference.cb_weights(COUNTS, 0.999)
    sample_weight = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 0.0], "float32")
    loss = CBSoftmaxLoss(COUNTS, 0.999, from_logits=True, reduction=WEIGHTED)
    got = to_numpy(loss(LABELS, LOGITS, sample_weight=sample_weight))
    np.testing.assert_allclose(
        got, _keras_scce(LABELS, LOGITS, w[LABELS] * sample_weight), rtol=RTOL
    )
    ce = reference.softmax_loss(LABELS, LOGITS, np.ones(C), True)
    factor = w[LABELS] * sample_weight
    np.testing.assert_allclose(
        got, (factor * ce).sum() / factor.sum(), rtol=RTOL
    )
    # a [B, 1] sample weight is the same weight
    np.testing.assert_allclose(
        to_numpy(loss(LABELS, LOGITS, sample_weight=sample_weight[:, None])),
        got,
        rtol=RTOL,
    )


def test_the_gradient_is_keras_weighted_mean_gradient():
    w = reference.cb_weights(COUNTS, 0.999)
    loss = CBSoftmaxLoss(COUNTS, 0.999, from_logits=True, reduction=WEIGHTED)
    scce = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=WEIGHTED
    )
    _, got = value_and_grad(lambda z: loss(LABELS, z), LOGITS)
    _, want = value_and_grad(
        lambda z: scce(LABELS, z, sample_weight=w[LABELS]), LOGITS
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def _factor(kind, y, num_classes, weights, weighting, binary):
    """The per-position class-weight factor, from NumPy (None: none)."""
    if binary:
        t = np.asarray(y, np.float64).reshape(np.shape(y)[:1])
        return (1 - t) * weights[0] + t * weights[1]
    if kind != "softmax" and weighting == "class":
        return None
    return (reference.to_dense(y, num_classes) * weights).sum(-1)


LAYOUTS = [
    # (kind, label form, weighting)
    *[
        ("softmax", form, "sample")
        for form in ("sparse", "sparse_1", "onehot", "soft")
    ],
    *[
        (kind, form, weighting)
        for kind in ("sigmoid", "focal")
        for form in ("sparse", "onehot", "multihot", "soft")
        for weighting in ("sample", "class")
    ],
]


@pytest.mark.parametrize("kind, form, weighting", LAYOUTS)
def test_every_layout_divides_by_its_class_weight_factor(kind, form, weighting):
    counts = [500, 120, 40, 9, 2]
    logits = random_logits((12, len(counts)), seed=11)
    y = random_labels(form, (12,), len(counts), seed=12)
    # with and without sample weights, alternately
    weighted = LAYOUTS.index((kind, form, weighting)) % 2 == 0
    sample_weight = (
        np.random.default_rng(13).uniform(0.2, 2.0, 12).astype("f4")
        if weighted
        else None
    )
    kwargs = {} if kind == "softmax" else {"weighting": weighting}
    loss = make_loss(
        kind, counts, 0.99, 2.0, from_logits=True, reduction=WEIGHTED, **kwargs
    )
    w = reference.cb_weights(counts, 0.99)
    per_sample = reference.loss_by_kind(
        kind, y, logits, w, True, 2.0, weighting
    )  # factor included
    s = np.ones(12) if sample_weight is None else sample_weight
    factor = _factor(kind, y, len(counts), w, weighting, binary=False)
    if factor is None:  # weighting="class": Keras' sample-weighted mean
        want = (per_sample * s).sum() / s.sum()
    else:
        want = (per_sample * s).sum() / (factor * s).sum()
    got = to_numpy(loss(y, logits, sample_weight=sample_weight))
    np.testing.assert_allclose(got, want, rtol=RTOL)


@pytest.mark.parametrize("kind", ["sigmoid", "focal"])
@pytest.mark.parametrize("weighting", ["sample", "class"])
@pytest.mark.parametrize("shape, soft", [("b", False), ("b1", True)])
def test_one_unit_heads_divide_by_their_two_class_weights(
    kind, weighting, shape, soft
):
    counts = [60, 4]
    rng = np.random.default_rng(21)
    t = rng.uniform(size=10) if soft else rng.integers(0, 2, 10)
    t = t.astype("f4")
    y = t[:, None] if shape == "b1" else t
    logits = random_logits((10, 1), seed=22)
    sample_weight = rng.uniform(0.2, 2.0, 10).astype("f4")
    loss = make_loss(
        kind,
        counts,
        0.999,
        2.0,
        from_logits=True,
        weighting=weighting,
        reduction=WEIGHTED,
    )
    gamma = 2.0 if kind == "focal" else 0.0
    per_sample = reference.binary_head_loss(t, logits, counts, 0.999, gamma)
    w = reference.cb_weights(counts, 0.999)
    factor = (1 - t) * w[0] + t * w[1]
    want = (per_sample * sample_weight).sum() / (factor * sample_weight).sum()
    got = to_numpy(loss(y, logits, sample_weight=sample_weight))
    np.testing.assert_allclose(got, want, rtol=RTOL)


@pytest.mark.parametrize("kind", ["softmax", "sigmoid", "focal"])
def test_ignored_positions_leave_both_sums(kind):
    counts = [10, 5, 2]
    y = np.array([[0, 1, 255, 2], [2, 255, 0, 1]])
    logits = random_logits((2, 4, 3), seed=31)
    sample_weight = np.array([[1.0, 2.0, 5.0, 0.5], [1.5, 9.0, 1.0, 1.0]], "f4")
    loss = make_loss(
        kind,
        counts,
        0.99,
        1.5,
        from_logits=True,
        ignore_class=255,
        reduction=WEIGHTED,
    )
    w = reference.cb_weights(counts, 0.99)
    keep = y != 255
    ids = np.where(keep, y, 0)
    per_position = reference.loss_by_kind(kind, ids, logits, w, True, 1.5)
    factor = w[ids] * sample_weight * keep
    want = (per_position * sample_weight * keep).sum() / factor.sum()
    got = to_numpy(loss(y, logits, sample_weight=sample_weight))
    np.testing.assert_allclose(got, want, rtol=RTOL)
    if kind == "softmax":  # and Keras' ignore_class does the same
        scce = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=255, reduction=WEIGHTED
        )
        np.testing.assert_allclose(
            got,
            to_numpy(scce(y, logits, sample_weight=w[ids] * sample_weight)),
            rtol=RTOL,
        )


def test_a_keras_mask_on_the_predictions_leaves_both_sums():
    # Embedding(mask_zero=True) hands the loss masked predictions.
    w = reference.cb_weights(COUNTS, 0.999)
    y = np.array([[0, 1, 3], [2, 0, 0]])
    mask = np.array([[True, True, True], [True, True, False]])
    logits = random_logits((2, 3, C), seed=41)

    def masked(value):
        tensor = keras.ops.convert_to_tensor(value)
        set_keras_mask(tensor, keras.ops.convert_to_tensor(mask))
        return tensor

    loss = CBSoftmaxLoss(COUNTS, 0.999, from_logits=True, reduction=WEIGHTED)
    got = to_numpy(loss(y, masked(logits)))
    ce = reference.softmax_loss(y, logits, np.ones(C), True)
    want = (w[y] * ce)[mask].sum() / w[y][mask].sum()
    np.testing.assert_allclose(got, want, rtol=RTOL)
    scce = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=WEIGHTED
    )
    np.testing.assert_allclose(
        got, to_numpy(scce(y, masked(logits), sample_weight=w[y])), rtol=RTOL
    )


def test_logit_adjusted_loss_is_keras_sample_weighted_mean():
    # No class weights: the class prior shifts the logits, every sample
    # keeps weight 1, and the reduction is Keras' own.
    sample_weight = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 0.0], "float32")
    loss = LogitAdjustedLoss(COUNTS, 1.0, from_logits=True, reduction=WEIGHTED)
    per_sample = reference.logit_adjusted_loss(
        LABELS, LOGITS, COUNTS, 1.0, True
    )
    got = to_numpy(loss(LABELS, LOGITS, sample_weight=sample_weight))
    np.testing.assert_allclose(
        got, (per_sample * sample_weight).sum() / sample_weight.sum(), rtol=RTOL
    )
    np.testing.assert_allclose(
        to_numpy(loss(LABELS, LOGITS)), per_sample.mean(), rtol=RTOL
    )


def test_compiled_equals_eager_and_the_weights_stay_constants():
    loss = CBSoftmaxLoss(COUNTS, 0.999, from_logits=True, reduction=WEIGHTED)
    sample_weight = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0], "float32")
    function = compiled(lambda y, z, s: loss(y, z, sample_weight=s))
    got = to_numpy(function(LABELS, LOGITS, sample_weight))
    np.testing.assert_allclose(
        got,
        to_numpy(loss(LABELS, LOGITS, sample_weight=sample_weight)),
        rtol=RTOL,
    )


def test_a_batch_without_weight_gives_zero_not_nan():
    loss = CBSoftmaxLoss(COUNTS, 0.999, from_logits=True, reduction=WEIGHTED)
    got = to_numpy(loss(LABELS, LOGITS, sample_weight=np.zeros(6, "f4")))
    assert got == 0.0  # as Keras' divide_no_nan


def test_fit_reports_the_weighted_mean():
    # evaluate() on one batch is the loss of that batch.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((C,)), keras.layers.Dense(C)])
    model.compile(
        "sgd",
        loss=CBSoftmaxLoss(COUNTS, 0.999, from_logits=True, reduction=WEIGHTED),
        jit_compile=BACKEND != "torch",
    )
    evaluated = model.evaluate(LOGITS, LABELS, batch_size=6, verbose=0)
    z = model.predict(LOGITS, verbose=0)
    w = reference.cb_weights(COUNTS, 0.999)
    ce = reference.softmax_loss(LABELS, z, np.ones(C), True)
    want = (w[LABELS] * ce).sum() / w[LABELS].sum()
    np.testing.assert_allclose(evaluated, want, rtol=1e-5)


# --------------------------------------------------------------------------
# Reproducing LDAM-DRW (Cao et al., 2019, `cifar_train.py`): a NumPy replay
# of their rule against the Keras recipe of docs/guides/deferred-reweighting.
# --------------------------------------------------------------------------

# Their epochs scaled down: warm-up 5 -> 2, DRW and the first drop at 160
# -> 3, the second drop at 180 -> 5, 200 -> 6 epochs.
WARMUP, DRW_EPOCH, SECOND_DROP, EPOCHS = 2, 3, 5, 6
BASE_LR, WEIGHT_DECAY, DRW_BETA = 0.5, 2e-3, 0.9999
DRW_COUNTS = [12, 6, 4, 2]


def _their_learning_rate(epoch):
    """LDAM-DRW's `adjust_learning_rate`, written from their rule."""
    epoch = epoch + 1
    if epoch <= WARMUP:
        return BASE_LR * epoch / WARMUP
    if epoch > SECOND_DROP:
        return BASE_LR * 0.0001
    if epoch > DRW_EPOCH:
        return BASE_LR * 0.01
    return BASE_LR


def _their_class_weights(epoch):
    """Their DRW weights: beta 0, then 0.9999; normalised to sum to C."""
    beta = 0.0 if epoch < DRW_EPOCH else DRW_BETA
    counts = np.asarray(DRW_COUNTS, np.float64)
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return weights / weights.sum() * len(counts)


def _drw_data():
    rng = np.random.default_rng(51)
    y = rng.permutation(np.repeat(np.arange(4), DRW_COUNTS))
    x = rng.normal(size=(len(y), 3)) + 0.5 * np.eye(4, 3)[y]
    kernel = rng.normal(0, 0.3, (3, 4))
    bias = rng.normal(0, 0.1, 4)
    return x.astype("f4"), y, kernel.astype("f4"), bias.astype("f4")


def _replay(momentum, momentum_form, batch_size=8):
    """Their training loop in float64 NumPy: the weighted mean of
    `F.cross_entropy(weight=w)`, SGD with coupled weight decay; returns the
    weights after each epoch. `momentum_form`: "torch" (buf = m buf + g;
    p -= lr buf) or "keras" (v = m v - lr g; p += v)."""
    x, y, kernel, bias = _drw_data()
    x = x.astype(np.float64)
    params = [kernel.astype(np.float64), bias.astype(np.float64)]
    buffers = [np.zeros_like(p) for p in params]
    history = []
    for epoch in range(EPOCHS):
        lr, w = _their_learning_rate(epoch), _their_class_weights(epoch)
        for start in range(0, len(y), batch_size):
            xb, yb = (
                x[start : start + batch_size],
                y[start : start + batch_size],
            )
            z = xb @ params[0] + params[1]
            p = np.exp(z - z.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            # d/dz of sum(w[y] CE) / sum(w[y])
            dz = w[yb][:, None] * (p - np.eye(4)[yb]) / w[yb].sum()
            grads = [
                xb.T @ dz + WEIGHT_DECAY * params[0],
                dz.sum(0) + WEIGHT_DECAY * params[1],
            ]
            for i, g in enumerate(grads):
                if momentum_form == "torch":
                    buffers[i] = momentum * buffers[i] + g
                    params[i] = params[i] - lr * buffers[i]
                else:
                    buffers[i] = momentum * buffers[i] - lr * g
                    params[i] = params[i] + buffers[i]
        history.append([p.copy() for p in params])
    return history


def _keras_recipe(momentum, batch_size=8):
    """The recipe of the docs: the weighted-mean reduction, DRW at the
    epoch of the drop, their schedule as a `LearningRateScheduler`, weight
    decay as an L2 penalty of half the coefficient (PyTorch's SGD adds
    `weight_decay * p` to the gradient, the gradient of
    `weight_decay / 2 * p**2`)."""
    from keras_cbloss import DeferredReweighting

    x, y, kernel, bias = _drw_data()
    decay = keras.regularizers.L2(WEIGHT_DECAY / 2)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(
                4, kernel_regularizer=decay, bias_regularizer=decay
            ),
        ]
    )
    model.set_weights([kernel, bias])
    model.compile(
        keras.optimizers.SGD(BASE_LR, momentum=momentum),
        loss=CBSoftmaxLoss(
            DRW_COUNTS, DRW_BETA, from_logits=True, reduction=WEIGHTED
        ),
        jit_compile=BACKEND != "torch",
    )
    history = []
    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[
            DeferredReweighting(start_epoch=DRW_EPOCH, beta=DRW_BETA),
            keras.callbacks.LearningRateScheduler(
                lambda epoch, lr: _their_learning_rate(epoch)
            ),
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: history.append(
                    [np.asarray(w) for w in model.get_weights()]
                )
            ),
        ],
    )
    return history


def _assert_same_weights(got, want):
    for epoch, (g, w) in enumerate(zip(got, want)):
        for a, b in zip(g, w):
            np.testing.assert_allclose(
                a, b, rtol=2e-5, atol=2e-6, err_msg=f"epoch {epoch}"
            )


def test_the_keras_recipe_replays_ldam_drw_epoch_by_epoch():
    # Plain SGD: Keras' and PyTorch's updates are the same formula.
    _assert_same_weights(_keras_recipe(momentum=0.0), _replay(0.0, "torch"))


def test_with_momentum_keras_sgd_carries_the_old_rate_after_a_change():
    # Keras' SGD keeps the learning rate inside its velocity; PyTorch's
    # scales the whole momentum buffer by the current rate. At a constant
    # rate they agree; after a change (warm-up, the drop) they differ until
    # the history decays (about 1 / (1 - momentum) steps).
    keras_run = _keras_recipe(momentum=0.9)
    _assert_same_weights(keras_run, _replay(0.9, "keras"))
    torch_run = _replay(0.9, "torch")
    _assert_same_weights(keras_run[:1], torch_run[:1])  # first rate
    assert not np.allclose(keras_run[-1][0], torch_run[-1][0], rtol=1e-3)


@pytest.mark.parametrize(
    "reduction", ["sum_over_batch_size", "mean_with_sample_weight"]
)
def test_the_callers_sample_weight_is_left_unchanged(reduction):
    # Keras' reduction multiplies the sample weight by a loss's Keras mask
    # in place (`sample_weight *= mask`); on PyTorch that rewrote the
    # caller's tensor, which `fit` hands on to `weighted_metrics=` next.
    y = np.array([0, -1, 2, 1])
    logits = random_logits((4, 3), seed=7)
    loss = CBSoftmaxLoss(
        [30, 10, 3],
        0.99,
        from_logits=True,
        ignore_class=-1,
        reduction=reduction,
    )
    weights = keras.ops.convert_to_tensor(
        np.array([1.0, 2.0, 0.5, 3.0], "float32")
    )
    loss(y, logits, sample_weight=weights)
    np.testing.assert_array_equal(to_numpy(weights), [1.0, 2.0, 0.5, 3.0])
