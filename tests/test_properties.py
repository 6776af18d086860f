"""Property-based tests (hypothesis): random problems against the reference.

Hypothesis draws the number of classes, counts (including zeros, huge and
fractional ones), beta, gamma, batch shapes (rows and maps), label forms and
logits (including +-1e4), and checks:

- the three losses against the float64 reference (`tests/reference.py`);
- beta = 0 is plain (sparse) categorical cross-entropy, and C times Keras'
  binary cross-entropy for the sigmoid loss;
- gamma = 0 focal and the CB sigmoid loss both give the reference BCE;
- sparse, [..., 1] and one-hot labels give the same loss;
- renumbering the classes changes nothing;
- the class weights: finite, non-negative, 0 exactly for absent classes,
  summing to the number of present classes, non-increasing in the count;
- finite values and gradients.

The runs are derandomized (the same examples on every run) with 40
examples per test. For a longer, random search set
`KERAS_CBLOSS_HYPOTHESIS_EXAMPLES`, e.g. to 2000.
"""

import os
import warnings

import keras
import numpy as np
import reference
from backend_utils import make_loss
from backend_utils import to_numpy
from backend_utils import value_and_grad
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_cbloss import class_balanced_weights

_EXPLORE = os.environ.get("KERAS_CBLOSS_HYPOTHESIS_EXAMPLES")
SETTINGS = settings(
    max_examples=int(_EXPLORE) if _EXPLORE else 40,
    derandomize=not _EXPLORE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FORMS = ("sparse", "sparse_1", "onehot", "multihot", "soft")


# --------------------------------------------------------------------------
# Strategies.
# --------------------------------------------------------------------------

count_values = st.one_of(
    st.integers(0, 20),  # small classes, and empty ones
    st.integers(0, 10**6),  # beta**n underflows: uniform weights
    st.floats(1e-6, 1e4),  # sample-weighted counts
    # (counts below ~1e-308 raise: test_bad_inputs.py)
)
betas = st.one_of(
    st.just(0.0),
    st.sampled_from([0.9, 0.99, 0.999, 0.9999]),
    st.floats(0.0, 1.0, exclude_max=True),
    st.floats(0.999999, 1.0, exclude_max=True),
)
gammas = st.one_of(
    st.just(0.0), st.floats(0.0, 5.0), st.sampled_from([0.5, 1.0, 2.0])
)


@st.composite
def counts_vectors(draw, num_classes, all_present=False):
    elements = count_values
    if all_present:
        elements = st.one_of(st.integers(1, 10**6), st.floats(0.5, 1e4))
    counts = draw(hnp.arrays(np.float64, num_classes, elements=elements))
    if not counts.any():
        counts[draw(st.integers(0, num_classes - 1))] = 1.0
    return counts


@st.composite
def problems(draw, forms=FORMS, all_present=False):
    """A random loss problem: a dict of counts, beta, labels and logits."""
    num_classes = draw(st.integers(2, 6))
    counts = draw(counts_vectors(num_classes, all_present))
    batch = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    logit = st.one_of(
        st.floats(-60, 60, width=32), st.sampled_from([-1e4, 1e4, 0.0])
    )
    logits = draw(
        hnp.arrays(np.float32, batch + (num_classes,), elements=logit)
    )
    form = draw(st.sampled_from(forms))
    ids = draw(
        hnp.arrays(np.int32, batch, elements=st.integers(0, num_classes - 1))
    )
    if form == "sparse":
        labels = ids
    elif form == "sparse_1":
        labels = ids[..., None]
    elif form == "onehot":
        labels = np.eye(num_classes, dtype="f4")[ids]
    elif form == "multihot":
        labels = draw(
            hnp.arrays(
                np.float32,
                batch + (num_classes,),
                elements=st.sampled_from([0.0, 1.0]),
            )
        )
    else:  # soft targets in [0, 1] (label smoothing, mixup)
        labels = draw(
            hnp.arrays(
                np.float32,
                batch + (num_classes,),
                elements=st.floats(0, 1, width=32),
            )
        )
    return {
        "counts": counts,
        "beta": draw(betas),
        "form": form,
        "labels": labels,
        "ids": ids,
        "logits": logits,
    }


def _for_softmax(problem):
    """The problem with one class per row, as a softmax takes it: dense
    rows summing to more than 1 (multi-hot, or soft rows drawn entry by
    entry) divided by their sum, the fix the softmax losses' error gives."""
    labels = problem["labels"]
    if problem["form"] not in ("multihot", "soft"):
        return problem
    sums = labels.sum(-1, keepdims=True)
    rows = np.where(sums > 1, labels / np.maximum(sums, 1), labels)
    return dict(problem, labels=rows.astype("f4"))


def _dense(problem):
    # One-hot targets for the reference, whose `to_dense` would read sparse
    # ids of shape [..., 1] (a map of width 1) as the `[..., 1]` form.
    if problem["form"] in ("sparse", "sparse_1"):
        num_classes = problem["logits"].shape[-1]
        return np.eye(num_classes)[problem["ids"]]
    return problem["labels"]


def _loss(kind, problem, gamma=1.0, **kwargs):
    kwargs.setdefault("reduction", "none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return make_loss(
            kind, problem["counts"], problem["beta"], gamma, **kwargs
        )


def _probabilities(kind, logits):
    z = logits.astype(np.float64)
    if kind == "softmax":
        e = np.exp(z - z.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).astype("f4")
    return (0.5 * (1 + np.tanh(z / 2))).astype("f4")  # sigmoid, no overflow


def _tolerance(problem, weights):
    # float32 rounds each of the C terms to ~1e-7 of its size, which grows
    # like |z|; the class weights scale it.
    scale = max(1.0, float(np.abs(problem["logits"]).max()))
    return (
        2e-6
        * problem["logits"].shape[-1]
        * scale
        * max(1.0, float(weights.max()))
    )


# --------------------------------------------------------------------------
# Against the reference.
# --------------------------------------------------------------------------


@SETTINGS
@given(
    problem=problems(),
    kind=st.sampled_from(["softmax", "sigmoid", "focal"]),
    gamma=gammas,
    from_logits=st.booleans(),
    weighting=st.sampled_from(["sample", "class"]),
)
def test_losses_match_reference(problem, kind, gamma, from_logits, weighting):
    if kind == "softmax":
        problem = _for_softmax(problem)
    pred = problem["logits"]
    if not from_logits:
        pred = _probabilities(kind, pred)
    extra = {} if kind == "softmax" else {"weighting": weighting}
    loss = _loss(kind, problem, gamma, from_logits=from_logits, **extra)
    weights = loss.class_weights  # checked in test_class_weight_invariants
    got = to_numpy(loss(problem["labels"], pred))
    assert got.shape == problem["ids"].shape
    if kind == "softmax":
        want = reference.softmax_loss(
            _dense(problem), pred, weights, from_logits
        )
    else:
        want = reference.focal_loss(
            _dense(problem),
            pred,
            weights,
            from_logits,
            gamma if kind == "focal" else 0.0,
            weighting,
        )
    assert np.isfinite(got).all() and (got >= 0).all()
    np.testing.assert_allclose(
        got, want, rtol=1e-5, atol=_tolerance(problem, weights)
    )


# --------------------------------------------------------------------------
# Identities.
# --------------------------------------------------------------------------


@SETTINGS
@given(
    problem=problems(forms=("sparse", "onehot", "soft"), all_present=True),
    from_logits=st.booleans(),
)
def test_beta_zero_softmax_is_plain_crossentropy(problem, from_logits):
    problem = _for_softmax(problem)
    problem["beta"] = 0.0
    pred = problem["logits"]
    if not from_logits:
        pred = _probabilities("softmax", pred)
    ours = to_numpy(
        _loss("softmax", problem, from_logits=from_logits)(
            problem["labels"], pred
        )
    )
    if problem["form"] == "sparse":
        plain = keras.losses.sparse_categorical_crossentropy(
            problem["labels"], pred, from_logits=from_logits
        )
    else:
        plain = keras.losses.categorical_crossentropy(
            problem["labels"], pred, from_logits=from_logits
        )
    # soft targets: the sample weight is sum(y) * 1
    factor = 1.0 if problem["form"] == "sparse" else problem["labels"].sum(-1)
    np.testing.assert_allclose(
        ours, factor * to_numpy(plain), rtol=1e-6, atol=1e-6
    )


@SETTINGS
@given(problem=problems(forms=("sparse", "onehot"), all_present=True))
def test_beta_zero_sigmoid_is_num_classes_times_keras_bce(problem):
    problem["beta"] = 0.0
    num_classes = problem["logits"].shape[-1]
    onehot = np.eye(num_classes, dtype="f4")[problem["ids"]]
    ours = to_numpy(
        _loss("sigmoid", problem, from_logits=True)(
            problem["labels"], problem["logits"]
        )
    )
    keras_bce = to_numpy(
        keras.losses.binary_crossentropy(
            onehot, problem["logits"], from_logits=True
        )
    )
    np.testing.assert_allclose(
        ours,
        num_classes * keras_bce,
        rtol=1e-5,
        atol=_tolerance(problem, np.ones(1)),
    )


@SETTINGS
@given(
    problem=problems(),
    from_logits=st.booleans(),
    weighting=st.sampled_from(["sample", "class"]),
)
def test_gamma_zero_focal_and_cb_sigmoid_match_the_reference(
    problem, from_logits, weighting
):
    # Each against the float64 BCE reference, not against each other: the
    # sigmoid loss runs the focal code with gamma = 0.
    pred = problem["logits"]
    if not from_logits:
        pred = _probabilities("sigmoid", pred)
    kwargs = {"from_logits": from_logits, "weighting": weighting}
    for loss in (
        _loss("focal", problem, 0.0, **kwargs),
        _loss("sigmoid", problem, **kwargs),
    ):
        got = to_numpy(loss(problem["labels"], pred))
        want = reference.sigmoid_loss(
            _dense(problem), pred, loss.class_weights, from_logits, weighting
        )
        np.testing.assert_allclose(
            got, want, rtol=1e-5, atol=_tolerance(problem, loss.class_weights)
        )


@SETTINGS
@given(
    problem=problems(forms=("sparse",)),
    gamma=gammas,
    kind=st.sampled_from(["softmax", "sigmoid", "focal"]),
)
def test_sparse_trailing_one_and_onehot_labels_agree(problem, gamma, kind):
    loss = _loss(kind, problem, gamma, from_logits=True)
    num_classes = problem["logits"].shape[-1]
    ids = problem["ids"]
    values = [
        to_numpy(loss(labels, problem["logits"]))
        for labels in (
            ids,
            ids[..., None],
            np.eye(num_classes, dtype="f4")[ids],
        )
    ]
    atol = _tolerance(problem, loss.class_weights)
    np.testing.assert_allclose(values[1], values[0], rtol=1e-6, atol=atol)
    np.testing.assert_allclose(values[2], values[0], rtol=1e-6, atol=atol)


@SETTINGS
@given(
    problem=problems(forms=("sparse", "multihot", "soft")),
    gamma=gammas,
    kind=st.sampled_from(["softmax", "sigmoid", "focal"]),
    weighting=st.sampled_from(["sample", "class"]),
    data=st.data(),
)
def test_renumbering_the_classes_changes_nothing(
    problem, gamma, kind, weighting, data
):
    num_classes = problem["logits"].shape[-1]
    perm = np.asarray(data.draw(st.permutations(range(num_classes))))
    if kind == "softmax":
        problem = _for_softmax(problem)
    extra = {} if kind == "softmax" else {"weighting": weighting}
    loss = _loss(kind, problem, gamma, from_logits=True, **extra)
    before = to_numpy(loss(problem["labels"], problem["logits"]))
    renumbered = dict(problem, counts=problem["counts"][perm])
    if problem["form"] == "sparse":
        inverse = np.argsort(perm)  # new id of old class c is inverse[c]
        labels = inverse[problem["labels"]].astype("int32")
    else:
        labels = problem["labels"][..., perm]
    loss = _loss(kind, renumbered, gamma, from_logits=True, **extra)
    after = to_numpy(loss(labels, problem["logits"][..., perm]))
    np.testing.assert_allclose(
        after, before, rtol=1e-5, atol=_tolerance(problem, loss.class_weights)
    )


# --------------------------------------------------------------------------
# The weights, and finite gradients.
# --------------------------------------------------------------------------


@settings(SETTINGS, max_examples=max(SETTINGS.max_examples, 200))
@given(counts=st.integers(1, 12).flatmap(counts_vectors), beta=betas)
def test_class_weight_invariants(counts, beta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        weights = class_balanced_weights(counts, beta)
        raw = class_balanced_weights(counts, beta, normalize=False)
    present = counts > 0
    assert weights.dtype == np.float64 and weights.shape == counts.shape
    assert np.isfinite(weights).all() and (weights >= 0).all()
    assert np.all(weights[~present] == 0) and np.all(weights[present] > 0)
    np.testing.assert_allclose(weights.sum(), present.sum(), rtol=1e-12)
    np.testing.assert_allclose(
        weights, reference.cb_weights_in_decimal(counts, beta), rtol=1e-12
    )
    # a larger class never gets a larger weight
    order = np.argsort(counts[present], kind="stable")
    sorted_raw = raw[present][order]
    assert np.all(np.diff(sorted_raw) <= 1e-12 * sorted_raw[:-1])
    # normalizing only rescales
    np.testing.assert_allclose(
        weights[present] / raw[present],
        weights[present][0] / raw[present][0],
        rtol=1e-12,
    )


@settings(SETTINGS, max_examples=min(SETTINGS.max_examples, 25))
@given(
    problem=problems(forms=("sparse", "onehot", "soft")),
    gamma=gammas,
    kind=st.sampled_from(["softmax", "sigmoid", "focal"]),
)
def test_mean_loss_and_gradient_are_finite(problem, gamma, kind):
    if kind == "softmax":
        problem = _for_softmax(problem)
    loss = _loss(
        kind, problem, gamma, from_logits=True, reduction="sum_over_batch_size"
    )
    value, grad = value_and_grad(
        lambda z: loss(problem["labels"], z), problem["logits"]
    )
    assert np.isfinite(value) and value >= 0
    assert np.isfinite(grad).all()
    # d loss / d z is bounded by the weights: |dCE/dz| <= 1 per term
    num_classes = problem["logits"].shape[-1]
    bound = num_classes * (1 + gamma) * max(1.0, loss.class_weights.max())
    assert np.abs(grad).max() <= bound * (1 + 1e-5)


def test_strategies_reach_the_edge_cases():
    # The examples this module draws include what the properties are about.
    seen = {"zero_count": False, "huge_logit": False, "maps": False}

    @SETTINGS
    @given(problem=problems())
    def collect(problem):
        seen["zero_count"] |= bool((problem["counts"] == 0).any())
        seen["huge_logit"] |= bool((np.abs(problem["logits"]) >= 1e4).any())
        seen["maps"] |= problem["ids"].ndim >= 2

    collect()
    assert all(seen.values()), seen
