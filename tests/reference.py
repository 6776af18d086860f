"""Independent float64 NumPy reference, written from the paper's formulas.

Deliberately naive (explicit one-hot, explicit sigmoid and pow where they are
representable) so that it shares no code path with the package.
"""

import decimal

import numpy as np

EPSILON = (
    1e-7  # keras.config.epsilon(), the clip Keras applies to probabilities
)


def clip_probabilities(p):
    # Keras clips in the input's float32, where 1 - 1e-7 is 1 - 2**-23;
    # the logs that follow are float64.
    low, high = np.float32(EPSILON), np.float32(1 - EPSILON)
    return np.clip(np.asarray(p, np.float32), low, high).astype(np.float64)


def cb_weights(counts, beta, normalize=True):
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.zeros_like(counts)
    present = counts > 0
    effective = (1.0 - np.power(beta, counts[present])) / (1.0 - beta)
    weights[present] = 1.0 / effective
    if normalize:
        weights = weights / weights.sum() * present.sum()
    return weights


def to_dense(y_true, num_classes):
    y_true = np.asarray(y_true)
    if (
        y_true.ndim >= 1
        and y_true.shape[-1:] == (num_classes,)
        and (y_true.dtype.kind == "f" and num_classes != 1)
    ):
        return y_true.astype(np.float64)
    if y_true.ndim >= 1 and y_true.shape[-1:] == (1,) and num_classes != 1:
        y_true = y_true[..., 0]
    return np.eye(num_classes)[y_true.astype(np.int64)]


def _stable_sigmoid_logs(z):
    # log sigmoid(z) and log sigmoid(-z) via logaddexp, exact in float64.
    return -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)


def softmax_loss(y_true, y_pred, weights, from_logits):
    y_pred = np.asarray(y_pred, dtype=np.float64)
    t = to_dense(y_true, y_pred.shape[-1])
    if from_logits:
        log_p = y_pred - y_pred.max(-1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
    else:
        p = y_pred / y_pred.sum(-1, keepdims=True)
        log_p = np.log(clip_probabilities(p))
    ce = -(t * log_p).sum(-1)
    return (t * np.asarray(weights)).sum(-1) * ce


def binary_terms(y_true, y_pred, from_logits, gamma):
    """Per-class focal terms (1 - p_t)**gamma * BCE, shape [..., C]."""
    y_pred = np.asarray(y_pred, dtype=np.float64)
    t = to_dense(y_true, y_pred.shape[-1])
    if from_logits:
        log_p, log_1mp = _stable_sigmoid_logs(y_pred)
    else:
        p = clip_probabilities(y_pred)
        log_p, log_1mp = np.log(p), np.log(1 - p)
    bce = -(t * log_p + (1 - t) * log_1mp)
    # For 0/1 targets this is (1 - p_t)**gamma; soft targets interpolate the
    # exponent linearly, as the official code's exp(-gamma*(t*z + ...)).
    log_one_minus_pt = t * log_1mp + (1 - t) * log_p
    return np.exp(gamma * log_one_minus_pt) * bce, t


def focal_gradient(y_true, logits, weights, gamma, weighting="sample"):
    """d focal_loss / d logits of dense targets `[..., C]`, float64.

    d FL / dz = mod * ((p - t) + gamma * ((1 - t) - p) * BCE) with
    mod = exp(gamma * (t log(1 - p) + (1 - t) log p)); p - t and (1 - t) - p
    as differences of products, exact for 0/1 targets at any logit.
    A one-unit head passes `weights = (1 - t) w_0 + t w_1` per position and
    weighting "class" with a single column.
    """
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.float64)  # dense targets [..., C]
    log_p, log_1mp = _stable_sigmoid_logs(z)
    p, one_minus_p = np.exp(log_p), np.exp(log_1mp)
    modulator = np.exp(gamma * (t * log_1mp + (1 - t) * log_p))
    bce = -(t * log_p + (1 - t) * log_1mp)
    d_bce = p * (1 - t) - t * one_minus_p
    d_log_mod = (1 - t) * one_minus_p - t * p
    grad = modulator * (d_bce + gamma * d_log_mod * bce)
    weights = np.asarray(weights, dtype=np.float64)
    if weighting == "class":
        return grad * weights
    return grad * (t * weights).sum(-1, keepdims=True)


def focal_loss(y_true, y_pred, weights, from_logits, gamma, weighting="sample"):
    terms, t = binary_terms(y_true, y_pred, from_logits, gamma)
    weights = np.asarray(weights, dtype=np.float64)
    if weighting == "class":
        return (terms * weights).sum(-1)
    return (t * weights).sum(-1) * terms.sum(-1)


def sigmoid_loss(y_true, y_pred, weights, from_logits, weighting="sample"):
    return focal_loss(y_true, y_pred, weights, from_logits, 0.0, weighting)


def focal_loss_pow(y_true, logits, weights, gamma):
    """The textbook form with p_t and pow, for 0/1 labels and mild logits."""
    logits = np.asarray(logits, dtype=np.float64)
    t = to_dense(y_true, logits.shape[-1])
    p = 1.0 / (1.0 + np.exp(-logits))
    p_t = np.where(t == 1, p, 1 - p)
    terms = (1 - p_t) ** gamma * -np.log(p_t)
    return (t * weights).sum(-1) * terms.sum(-1)


def loss_by_kind(
    kind, y, pred, weights, from_logits, gamma, weighting="sample"
):
    """Per-sample reference of "softmax", "sigmoid" (gamma ignored), "focal"."""
    if kind == "softmax":
        return softmax_loss(y, pred, weights, from_logits)
    if kind == "sigmoid":
        gamma = 0.0
    return focal_loss(y, pred, weights, from_logits, gamma, weighting)


def binary_head_loss(y_true, logits, counts, beta, gamma):
    """A one-unit head as the two-class problem {0: negative, 1: positive}.

    Written from the textbook focal loss (Lin et al.) with the positive
    probability p and p_t, for 0/1 or soft targets t of shape [B] or [B, 1]
    and mild logits [B, 1]: per-sample ((1 - t) w_0 + t w_1) * FL.
    """
    w_neg, w_pos = cb_weights(counts, beta)
    t = np.asarray(y_true, np.float64).reshape(-1)
    z = np.asarray(logits, np.float64).reshape(-1)
    p = 1.0 / (1.0 + np.exp(-z))
    positive = (1 - p) ** gamma * -np.log(p)  # the term when t = 1
    negative = p**gamma * -np.log(1 - p)  # the term when t = 0
    if np.all((t == 0) | (t == 1)):
        focal = np.where(t == 1, positive, negative)
    else:  # soft targets: BCE(t) with the exponent interpolated linearly
        bce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
        focal = np.exp(gamma * (t * np.log(1 - p) + (1 - t) * np.log(p))) * bce
    return ((1 - t) * w_neg + t * w_pos) * focal


def unknown_entries_loss(
    y_true, logits, weights, gamma=0.0, weighting="sample", ignore_class=-1
):
    """Dense targets `[..., C]` with unknown entries, from logits.

    An entry equal to `ignore_class` is unknown: the row's loss sums the
    focal terms (1 - p_t)**gamma * BCE of its known entries only;
    "sample" weights that sum by the sum of w_c over the known positives,
    "class" weights each known entry's term by its own w_c. Returns the
    per-row losses and the mask of rows with at least one known entry
    (the others carry no loss and leave the mean).
    """
    t = np.asarray(y_true, np.float64)
    z = np.asarray(logits, np.float64)
    w = np.asarray(weights, np.float64)
    known = t != ignore_class
    t = np.where(known, t, 0.0)
    z = np.where(known, z, 0.0)  # whatever a model outputs there
    log_p, log_1mp = _stable_sigmoid_logs(z)
    bce = -(t * log_p + (1 - t) * log_1mp)
    focal = np.exp(gamma * (t * log_1mp + (1 - t) * log_p)) * bce
    focal = np.where(known, focal, 0.0)
    if weighting == "class":
        per_row = (focal * w).sum(-1)
    else:
        per_row = (np.where(known, t, 0.0) * w).sum(-1) * focal.sum(-1)
    return per_row, known.any(-1)


def unknown_entries_gradient(
    y_true, logits, weights, gamma=0.0, weighting="sample", ignore_class=-1
):
    """d(sum of `unknown_entries_loss`)/dz, float64: 0 at unknown entries."""
    t = np.asarray(y_true, np.float64)
    known = t != ignore_class
    t = np.where(known, t, 0.0)
    z = np.where(known, np.asarray(logits, np.float64), 0.0)
    w = np.asarray(weights, np.float64)
    if weighting == "class":
        grad = focal_gradient(t, z, known * w, gamma, "class")
    else:  # the row weight sums w over the known positives (t is 0 elsewhere)
        grad = focal_gradient(t, z, w, gamma, "sample")
    return np.where(known, grad, 0.0)


def masked_mean(per_position, keep, sample_weight=None):
    """Keras' `ignore_class` reduction: the mean over kept positions."""
    per_position = np.asarray(per_position, np.float64)
    keep = np.asarray(keep, bool)
    if sample_weight is not None:
        per_position = per_position * np.asarray(sample_weight, np.float64)
    return per_position[keep].sum() / max(keep.sum(), 1)


def logit_adjusted_loss(y_true, y_pred, counts, tau, from_logits):
    """Menon et al. (2021), Eq. 10: CE of softmax(z + tau * log(prior)).

    prior = counts / sum(counts), with a zero count replaced by the smallest
    non-zero count (the package's documented floor); with probabilities,
    z = log of the renormalised, clipped probabilities (as Keras takes them).
    """
    y_pred = np.asarray(y_pred, dtype=np.float64)
    t = to_dense(y_true, y_pred.shape[-1])
    counts = np.asarray(counts, dtype=np.float64)
    counts = np.where(counts > 0, counts, counts[counts > 0].min())
    prior = counts / counts.sum()
    if from_logits:
        z = y_pred
    else:
        z = np.log(clip_probabilities(y_pred / y_pred.sum(-1, keepdims=True)))
    adjusted = z + tau * np.log(prior)
    adjusted = adjusted - adjusted.max(-1, keepdims=True)
    log_softmax = adjusted - np.log(np.exp(adjusted).sum(-1, keepdims=True))
    return -(t * log_softmax).sum(-1)


def loss_gradient(kind, y, z, weights, gamma):
    """d(mean loss)/dz for sparse labels, written from the formulas.

    softmax: w_y * (softmax(z) - t) / N
    sigmoid: w_y * (p - t) / N                      (p = sigmoid(z))
    focal, t = 1: w_y * (1 - p)**g * (g * p * log(p) - (1 - p)) / N
    focal, t = 0: the t = 1 case at -z, negated (FL(z; 0) = FL(-z; 1)).
    All in float64 log space, so +-65504 is exact.
    """
    z = np.asarray(z, np.float64)
    t = np.eye(z.shape[-1])[y]
    scale = (np.asarray(weights)[y] / len(y))[:, None]
    if kind == "softmax":
        e = np.exp(z - z.max(-1, keepdims=True))
        return scale * (e / e.sum(-1, keepdims=True) - t)
    if kind == "sigmoid":
        gamma = 0.0

    def positive(v):  # derivative of FL(v; t=1)
        log_p = -np.logaddexp(0.0, -v)
        log_1mp = -np.logaddexp(0.0, v)
        p, one_minus_p = np.exp(log_p), np.exp(log_1mp)
        return np.exp(gamma * log_1mp) * (gamma * p * log_p - one_minus_p)

    return scale * np.where(t == 1, positive(z), -positive(-z))


def shot_accuracy(y, p, train_counts, shot, many=100, few=20):
    """Liu et al.'s `shot_acc`, written from their rule: per test class,
    correct / count; mean within the group of its training count."""
    values = {"many": [], "medium": [], "few": []}
    for c in np.unique(y):
        n = train_counts[c]
        group = "many" if n > many else "few" if n < few else "medium"
        values[group].append(np.mean(p[y == c] == c))
    return float(np.mean(values[shot])) if values[shot] else 0.0


def cb_weights_in_decimal(counts, beta):
    """The normalized CB weights at 60 significant digits.

    `reference.cb_weights` computes 1 - beta**n in float64, which loses
    every digit for beta within 1e-16 of 1 (and most for small fractional
    counts); this one does not. Floats convert to Decimal exactly.
    """
    context = decimal.Context(prec=60)
    one, beta = decimal.Decimal(1), decimal.Decimal(beta)
    inverse = []
    for n in counts:
        if n == 0:
            inverse.append(decimal.Decimal(0))
            continue
        power = context.power(beta, decimal.Decimal(n)) if beta else 0
        inverse.append(context.divide(one - beta, one - power))
    total = sum(inverse, decimal.Decimal(0))
    present = sum(1 for n in counts if n > 0)
    return np.array(
        [float(context.divide(w * present, total)) for w in inverse]
    )
