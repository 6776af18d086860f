"""Counting a `tf.data.Dataset` in graph, in one pass (private).

The `tf.data` adapter of `counting.py`: the labels are projected with
`Dataset.map` (as `fit` finds them, or by `label_fn`), regrouped into large
batches, and counted by a `tf.function` that runs a `tf.while_loop` over
the dataset's iterator, with `DenseBincount` for class ids and column sums
for one-hot or multi-hot rows, so the cost is the pipeline's own speed.
The plan, the checks and the messages are `counting.py`'s, shared with
every other source.

The parts: `_State` (the loop state), the step functions `_sparse_step` and
`_dense_step` (one group of labels), `_run_loop` (the `tf.while_loop`),
`_run` (the calls of the loop, in chunks when a progress bar may show).
This is the only counting module that imports TensorFlow.
"""

import functools
import typing

import numpy as np
import tensorflow as tf

from keras_cbloss import _sources
from keras_cbloss._compat import dense_bincount
from keras_cbloss._validation import check_label_spec
from keras_cbloss._validation import check_weight_spec
from keras_cbloss.counting import _DENSE_GROUP_VALUES
from keras_cbloss.counting import _GROUP_VALUES
from keras_cbloss.counting import _MAX_INFERRED_CLASSES
from keras_cbloss.counting import _check_projected
from keras_cbloss.counting import _Code
from keras_cbloss.counting import _invalid_error
from keras_cbloss.counting import _locate_labels
from keras_cbloss.counting import _no_labels_error
from keras_cbloss.counting import _plan
from keras_cbloss.counting import _Progress
from keras_cbloss.counting import _representable
from keras_cbloss.counting import _total

# Progress updates per count, when a bar may be shown.
_PROGRESS_CHUNKS = 100


class _Key(typing.NamedTuple):
    """What the traced loop depends on (the cache key of `_cached_runner`)."""

    sparse: bool
    dtype: str
    num_classes: typing.Optional[int]  # None: inferred from sparse labels
    weighted: bool
    ignore_class: typing.Optional[int]  # None, or a value the dtype holds
    steps_mode: str  # see `_group`


class _State(typing.NamedTuple):
    """The loop state of the in-graph pass (all tensors)."""

    counts: tf.Tensor  # [C] int64, or float64 when weighted
    elements: tf.Tensor  # dataset elements read (for the progress bar)
    rows: tf.Tensor  # labels counted
    code: tf.Tensor  # a `_Code`
    bad: tf.Tensor  # [2] float64: the offending value(s), if any
    exhausted: tf.Tensor  # the iterator has no more elements

    @classmethod
    def initial(cls, plan):
        size = plan.num_classes or 0
        dtype = tf.float64 if plan.weighted else tf.int64
        return cls(
            counts=tf.zeros([size], dtype),
            elements=tf.constant(0, tf.int64),
            rows=tf.constant(0, tf.int64),
            code=tf.constant(_Code.OK, tf.int32),
            bad=tf.zeros([2], tf.float64),
            exhausted=tf.constant(False),
        )


class _Step(typing.NamedTuple):
    """One group of labels, checked: `count()` adds it to the counts."""

    code: tf.Tensor
    bad: tf.Tensor
    rows: tf.Tensor
    count: typing.Callable


def count(dataset, args):
    """Counts a `tf.data.Dataset` (`args`: `counting._Args`): `(counts,
    plan)`."""
    total = _total(_length(dataset), args.steps, _sources.TF_DATA)
    if args.steps is not None:
        dataset = dataset.take(args.steps)
    labels, has_features = _labels_dataset(
        dataset, args.label_fn, args.weighted
    )
    spec = labels.element_spec[0] if args.weighted else labels.element_spec
    plan = _plan(label_spec(spec), args)
    verbose = args.verbose
    show_bar = verbose in (1, 2) or (
        verbose == "auto" and has_features and total is not None
    )
    grouped, steps_mode, chunk = _group(labels, plan, show_bar, total)
    key = _Key(
        plan.sparse,
        plan.dtype,
        plan.num_classes,
        plan.weighted,
        _representable(plan.ignore_class, plan.dtype),
        steps_mode,
    )
    state = _run(
        grouped, _cached_runner(key), chunk, plan, _Progress(verbose, total)
    )
    return state.counts.numpy(), plan


def _length(dataset):
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        return _sources.INFINITE
    return None if cardinality < 0 else cardinality


def _run(grouped, runner, chunk, plan, progress):
    """Runs the loop (in chunks when a bar may show): the final `_State`."""
    state = _State.initial(plan)
    iterator = iter(grouped)
    max_groups = tf.constant(
        chunk if chunk else np.iinfo(np.int64).max, tf.int64
    )
    while True:
        state = runner(iterator, max_groups, state)
        if int(state.code) != _Code.OK or bool(state.exhausted) or not chunk:
            break
        progress.update(int(state.elements))
    if int(state.code) != _Code.OK:
        raise _invalid_error(plan, _Code(int(state.code)), state.bad.numpy())
    progress.finish(int(state.elements))
    if int(state.rows) == 0:
        raise _no_labels_error(plan.ignore_class)
    return state


# The elements: labels and weights.


def label_spec(spec):
    """The `LabelSpec` of a `tf.data` spec (structures are returned as they
    are: the checks refuse them)."""
    if isinstance(spec, (dict, tuple, list)):
        return spec
    if isinstance(spec, tf.TensorSpec):
        shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
        return _sources.LabelSpec(
            shape, spec.dtype.name, "dense", "tf", str(spec)
        )
    if isinstance(spec, tf.RaggedTensorSpec):
        kind = "ragged"
    elif isinstance(spec, tf.SparseTensorSpec):
        kind = "sparse"
    else:
        kind = "other"
    return _sources.LabelSpec(None, "", kind, "tf", str(spec))


def _show(spec):
    return f"element_spec={spec}"


def _labels_dataset(dataset, label_fn, weighted):
    """Projects the elements to labels (and weights): `(dataset, features)`.

    `features` is whether the elements carry more than the labels, i.e.
    whether the count also runs the pipeline's feature work.
    """
    spec = dataset.element_spec
    if label_fn is not None:
        labels = dataset.map(label_fn)
        _check_projected(labels.element_spec, weighted, label_spec, str)
        return labels, True
    index, weight_index = _locate_labels(spec, weighted, _show)
    if index is None:
        check_label_spec(
            label_spec(spec), "the dataset's elements", received=str(spec)
        )
        return dataset, False
    check_label_spec(
        label_spec(spec[1]),
        "`y` in the dataset's `(x, y, ...)`",
        received=str(spec[1]),
    )
    if weight_index is None:
        return dataset.map(lambda *element: element[1]), True
    check_weight_spec(
        label_spec(spec[2]),
        "the dataset's `sample_weight`",
        received=str(spec[2]),
    )
    return dataset.map(lambda *element: (element[1], element[2])), True


def _group(labels, plan, show_bar, total):
    """Regroups the labels stream: `(dataset, steps_mode, chunk)`.

    `steps_mode` says how the loop counts dataset elements (for the progress
    bar): "leading" (each group stacks elements along axis 0), "one" (one
    element per group), or "none" (not tracked). `chunk` is the number of
    groups per call of the loop when progress is reported, 0 for one call.
    """
    per_row = 1 if plan.sparse else plan.num_classes
    values = _GROUP_VALUES if plan.sparse else _DENSE_GROUP_VALUES
    shape = plan.shape
    fixed = shape is not None and None not in shape
    rank = None if shape is None else len(shape)
    if not plan.batched:
        size = max(1, values // per_row)
        grouped, steps_mode = labels.batch(size), "leading"
        groups = None if total is None else -(-total // size)
    elif (
        show_bar
        or plan.weighted
        or (not fixed and rank != (1 if plan.sparse else 2))
    ):
        # With weights or a progress bar, keep the batches (exact sizes and
        # element counts); batches of ids [B, T] (rows [B, T, C]) with a
        # dynamic T cannot be concatenated.
        grouped, steps_mode, groups = labels, "one", total
    elif fixed:
        # Batches of one static size (`drop_remainder=True`, or pre-sliced
        # arrays) stack; `rebatch` would log "Tensor RefCount not reliable"
        # errors on slices of a `from_tensor_slices` array.
        size = max(1, values // max(1, int(np.prod(shape))))
        grouped, steps_mode, groups = labels.batch(size), "none", None
    else:
        grouped = labels.rebatch(max(1, values // per_row))
        steps_mode, groups = "none", None
    chunk = 0
    if show_bar:
        chunk = max(1, -(-groups // _PROGRESS_CHUNKS)) if groups else 16
    return grouped, steps_mode, chunk


# The in-graph loop.


@functools.lru_cache(maxsize=32)
def _cached_runner(key):
    return tf.function(functools.partial(_run_loop, key), reduce_retracing=True)


def _run_loop(key, iterator, max_groups, state):
    """Reads up to `max_groups` groups (in graph): the new `_State`."""

    def cond(i, state):
        return (
            (i < max_groups) & tf.equal(state.code, _Code.OK) & ~state.exhausted
        )

    def loop(i, state):
        optional = iterator.get_next_as_optional()
        state = tf.cond(
            optional.has_value(),
            lambda: _body(key, optional.get_value(), state),
            lambda: state._replace(exhausted=tf.constant(True)),
        )
        return i + 1, state

    scalar = tf.TensorShape([])
    invariants = _State(
        counts=tf.TensorShape([None]),
        elements=scalar,
        rows=scalar,
        code=scalar,
        bad=tf.TensorShape([2]),
        exhausted=scalar,
    )
    _, state = tf.while_loop(
        cond,
        loop,
        (tf.constant(0, tf.int64), state),
        shape_invariants=(scalar, invariants),
    )
    return state


def _body(key, group, state):
    """Checks and counts one group of labels, unless an error was found."""
    y, w = group if key.weighted else (group, None)
    if key.steps_mode == "leading":
        new_elements = tf.shape(y, out_type=tf.int64)[0]
    elif key.steps_mode == "one":
        new_elements = tf.constant(1, tf.int64)
    else:
        new_elements = tf.constant(0, tf.int64)
    step_fn = _sparse_step if key.sparse else _dense_step
    step = step_fn(key, y, w, state.counts)
    return tf.cond(
        tf.equal(step.code, _Code.OK),
        lambda: state._replace(
            counts=step.count(),
            elements=state.elements + new_elements,
            rows=state.rows + step.rows,
        ),
        lambda: state._replace(code=step.code, bad=step.bad),
    )


def _sparse_step(key, y, w, counts):
    """Class ids of any shape: checks, then a `DenseBincount`."""
    lead = _leading(y)
    y = tf.reshape(y, [-1])
    limit = key.num_classes or _MAX_INFERRED_CLASSES
    keep = None
    if key.ignore_class is not None:
        keep = tf.not_equal(y, tf.cast(key.ignore_class, y.dtype))
    if y.dtype.is_bool:
        invalid = tf.zeros_like(y)
    elif y.dtype.is_floating:
        invalid = (
            ~tf.math.is_finite(y)
            | tf.not_equal(y, tf.floor(y))
            | (y < 0)
            | (y >= limit)
        )
    else:
        ids = tf.cast(y, tf.int64)
        invalid = (ids < 0) | (ids >= limit)
    if keep is not None:
        invalid = invalid & keep
    code, bad = _first_invalid(invalid, y, _Code.BAD_SPARSE)
    values = tf.size(y, out_type=tf.int64)
    rows = values if keep is None else _count_true(keep)
    if w is not None:
        code, bad = _check_weights(w, values, lead, code, bad)

    def count():
        ids = tf.cast(y, tf.int64)
        if key.num_classes is None:
            top = ids if keep is None else tf.where(keep, ids, -1)
            size = tf.maximum(
                tf.size(counts, out_type=tf.int64),
                tf.reduce_max(tf.concat([top, [-1]], 0)) + 1,
            )
            old = tf.pad(
                counts, [[0, size - tf.size(counts, out_type=tf.int64)]]
            )
        else:
            size, old = tf.constant(key.num_classes, tf.int64), counts
        weights = (
            _expand_weights(w, values, lead)
            if w is not None
            else tf.zeros([0], tf.int64)
        )
        if keep is None:
            return old + dense_bincount(ids, size, weights)
        # Ignored labels go to one extra bin, dropped afterwards.
        ids = tf.where(keep, ids, size)
        return old + dense_bincount(ids, size + 1, weights)[:size]

    return _Step(code, bad, rows, count)


def _dense_step(key, y, w, counts):
    """One-hot / multi-hot rows `[..., C]`: column sums, checked.

    Without `ignore_class`, each value is read once by the sums and once by
    the check `y * y != y` (true exactly when y is neither 0 nor 1, NaN
    included, for floats and for wrapping integers alike); an infinite
    label, which passes that test, makes the sums non-finite. Only when
    either flags the group is the offending value looked for. With it,
    entries equal to `ignore_class` are unknown: the sums count the known
    1s, and the check skips them.
    """
    lead = _leading(y)
    y = tf.reshape(y, [-1, key.num_classes])
    keep = None
    if key.ignore_class is not None:
        keep = tf.not_equal(y, tf.cast(key.ignore_class, y.dtype))
        rows = _count_true(tf.reduce_any(keep, axis=1))
        values = tf.equal(y, tf.ones_like(y)) & keep
    else:
        rows = tf.shape(y, out_type=tf.int64)[0]
        values = y
    n = tf.shape(y, out_type=tf.int64)[0]
    if w is not None:
        w64 = _expand_weights(w, n, lead)
        sums = tf.linalg.matvec(
            tf.cast(values, tf.float64), w64, transpose_a=True
        )
        new_counts = counts + sums
    else:
        # Column sums as a [1, n] x [n, C] product: on CPU as fast as or
        # faster than reduce_sum over axis 0, and exact in float32: a batch
        # has far fewer than 2**24 rows.
        ones = tf.ones(tf.stack([1, tf.shape(y)[0]]), tf.float32)
        sums = tf.reshape(tf.matmul(ones, tf.cast(values, tf.float32)), [-1])
        new_counts = counts + tf.cast(sums, tf.int64)
    code, bad = tf.constant(int(_Code.OK)), tf.zeros([2], tf.float64)
    if not y.dtype.is_bool:
        suspect = tf.reduce_any(tf.not_equal(y * y, y)) | ~tf.reduce_all(
            tf.math.is_finite(sums)
        )
        invalid = tf.not_equal(y, 0) & tf.not_equal(y, 1)
        if keep is not None:
            invalid = invalid & keep
            suspect = tf.reduce_any(invalid)
        code, bad = tf.cond(
            suspect,
            lambda: _first_invalid(invalid, y, _Code.BAD_DENSE),
            lambda: (code, bad),
        )
    if w is not None:
        code, bad = _check_weights(w, n, lead, code, bad)
    return _Step(code, bad, rows, lambda: new_counts)


def _leading(y):
    """The number of samples of a group: its leading dimension (or 1)."""
    if y.shape.rank == 0:
        return tf.constant(1, tf.int64)
    return tf.shape(y, out_type=tf.int64)[0]


def _count_true(mask):
    return tf.reduce_sum(tf.cast(mask, tf.int64))


def _expand_weights(w, n, lead):
    """float64 weights, one per label: per-sample weights are repeated."""
    w = tf.reshape(tf.cast(w, tf.float64), [-1])
    if w.shape[0] is not None and w.shape[0] == n:
        return w
    return tf.cond(
        tf.equal(tf.size(w, out_type=tf.int64), n),
        lambda: w,
        lambda: tf.repeat(w, n // tf.maximum(lead, 1)),
    )


def _first_invalid(invalid, values, code):
    """In graph: `(code, [value, 0])` for the first invalid value, or OK."""
    found = tf.reduce_any(invalid)
    first = tf.cond(
        found,
        lambda: tf.cast(tf.boolean_mask(values, invalid)[0], tf.float64),
        lambda: tf.constant(0.0, tf.float64),
    )
    return (
        tf.where(found, int(code), int(_Code.OK)),
        tf.stack([first, tf.constant(0.0, tf.float64)]),
    )


def _check_weights(w, n, lead, code, bad):
    """In graph: flags weights that are not finite and >= 0, or not one per
    label (`n`) or per sample (`lead`, the leading dimension)."""
    w = tf.reshape(w, [-1])
    m = tf.size(w, out_type=tf.int64)
    sizes_bad = tf.not_equal(m, n) & tf.not_equal(m, lead)
    sizes = tf.cast(tf.stack([n, m]), tf.float64)
    w64 = tf.cast(w, tf.float64)
    w_code, w_bad = _first_invalid(
        tf.logical_not(w64 >= 0) | ~tf.math.is_finite(w64),
        w,
        _Code.BAD_WEIGHT,
    )
    ok = tf.equal(code, _Code.OK)
    new_code = tf.where(
        ok, tf.where(sizes_bad, int(_Code.BAD_SIZES), w_code), code
    )
    new_bad = tf.where(ok, tf.where(sizes_bad, sizes, w_bad), bad)
    return new_code, new_bad
