"""Per-class label counts from a `tf.data` pipeline, in one in-graph pass.

The class-balanced weights need the number of training samples of each
class over the whole training set (not per batch: Cui et al. compute them
once, from the data set). `count_classes` reads every label of a `tf.data`
pipeline inside a `tf.function` (a `tf.while_loop` over the dataset's
iterator, with `DenseBincount` for class ids and column sums for one-hot or
multi-hot rows), so the cost is the pipeline's own speed.

Counting reads every element the pipeline produces. A pipeline that decodes
or augments images spends nearly all its time on the images, which counting
does not need: count a labels-only dataset built from the same source
instead (see the README's "Where do the counts come from?").

The module is built from small named parts: `_Plan` (how to read the
labels, decided once from the static element spec), `_State` (the loop
state of the in-graph pass), the step functions `_sparse_step` and
`_dense_step` (one group of labels), `_run_loop` (the `tf.while_loop`), and
`_Progress` (the optional Keras progress bar).
"""

import dataclasses
import enum
import functools
import time
import typing
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_cbloss._compat import dense_bincount
from keras_cbloss._validation import check_bool
from keras_cbloss._validation import check_dataset
from keras_cbloss._validation import check_ignore_class
from keras_cbloss._validation import check_label_fn
from keras_cbloss._validation import check_label_spec
from keras_cbloss._validation import check_num_classes
from keras_cbloss._validation import check_sparse
from keras_cbloss._validation import check_steps
from keras_cbloss._validation import check_verbose
from keras_cbloss._validation import check_weight_spec

# A batched labels-only stream is regrouped (`Dataset.rebatch`, unbatched
# streams with `Dataset.batch`) into groups of about this many labels, so the
# per-iteration cost of the loop is paid once per group, not once per batch.
_GROUP_VALUES = 2**16
# One-hot / multi-hot rows are regrouped into groups of about this many
# values: the per-iteration cost of the dense check and sums (a dozen ops)
# then no longer dominates for batches of a few hundred rows.
_DENSE_GROUP_VALUES = 2**20
# Inferring `num_classes` from the largest sparse label: refuse labels that
# would allocate an absurd count vector (a garbage label such as 2**31).
_MAX_INFERRED_CLASSES = 2**24
# verbose="auto": show the progress bar once a count has run this long.
_AUTO_BAR_AFTER_S = 1.0
# Progress updates per count, when a bar may be shown.
_PROGRESS_CHUNKS = 100

_SHAPE_HELP = (
    "Expected sparse class ids of shape [] (unbatched), [B] or [B, 1] "
    "(batched), or one-hot / multi-hot rows of shape [C] (unbatched) or "
    "[B, C] (batched). For class ids of any other shape (per-token ids "
    "[B, T], segmentation masks [B, H, W]), pass `sparse=True`; for one-hot "
    "rows [..., C], pass `sparse=False`."
)


class _Code(enum.IntEnum):
    """What the in-graph loop found: OK, or the first invalid input."""

    OK = 0
    BAD_SPARSE = 1  # a class id out of range or not an integer
    BAD_DENSE = 2  # a dense label other than 0 or 1
    BAD_WEIGHT = 3  # a negative or non-finite sample weight
    BAD_SIZES = 4  # not one sample weight per sample


class _Key(typing.NamedTuple):
    """What the traced loop depends on (the cache key of `_cached_runner`)."""

    sparse: bool
    dtype: tf.DType
    num_classes: typing.Optional[int]  # None: inferred from sparse labels
    weighted: bool
    ignore_class: typing.Optional[int]  # None, or a value the dtype holds
    steps_mode: str  # see `_group`


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How to read the labels: the static facts `_plan` derives once."""

    sparse: bool  # class ids (True) or one-hot / multi-hot rows (False)
    shape: tf.TensorShape  # the label element's static shape
    dtype: tf.DType
    num_classes: typing.Optional[int]  # None: infer from sparse labels
    batched: bool  # the leading dimension is the batch
    weighted: bool
    ignore_class: typing.Optional[int]
    # A rank-1 label of static length read as class ids by inference could
    # be an unbatched one-hot row instead.
    ambiguous: bool = False

    def key(self, steps_mode):
        return _Key(
            self.sparse,
            self.dtype,
            self.num_classes,
            self.weighted,
            _representable(self.ignore_class, self.dtype),
            steps_mode,
        )


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


def count_classes(
    dataset,
    num_classes=None,
    *,
    label_fn=None,
    steps=None,
    sample_weighted=False,
    sparse=None,
    ignore_class=None,
    verbose="auto",
):
    """Counts the samples of each class in a `tf.data` pipeline.

    Formula:

    ```
    n_c = sum over labels y of [y == c]            (class ids)
    n_c = sum over rows t of t_c                   (one-hot / multi-hot rows)
    n_c = sum over labels y of [y == c] * s        (sample_weighted=True)
    ```

    One pass over `dataset`, run in graph: a `tf.function` loop over the
    dataset's iterator that adds a `DenseBincount` of each batch of class
    ids (or the column sums of each batch of one-hot / multi-hot rows) to
    the running counts. Labels-only streams are regrouped into large
    batches first, so the per-batch overhead stays negligible. The result
    is what the class-balanced losses take as `class_counts`: counts over
    the whole training set, not per batch.

    Elements may be what `model.fit` accepts from `tf.data`: `(x, y)`,
    `(x, y, sample_weight)`, or labels only, batched or unbatched. Labels
    may be:

    - sparse class ids, shape `[]` (unbatched), `[B]` or `[B, 1]`, or, with
      `sparse=True`, of any shape (per-token ids `[B, T]`, per-pixel masks
      `[B, H, W]`): each element is one label;
    - dense one-hot or multi-hot rows of 0s and 1s, shape `[C]`
      (unbatched) or `[B, C]` (or `[..., C]` with `sparse=False`); the
      counts are then the column sums (a multi-label sample counts once for
      each of its classes).

    A binary model with one sigmoid unit and 0/1 labels (int or float,
    `[B]` or `[B, 1]`) is the two-class problem {0: negative, 1: positive}:
    pass `num_classes=2` to get `[n_neg, n_pos]`.

    A rank-1 label of static length `d` is ambiguous when `sparse=None`: a
    batch of `d` class ids (`batch(d, drop_remainder=True)`) or one
    unbatched one-hot row of `d` classes. Integer labels are read as class
    ids; floating-point (or boolean) labels as a one-hot row, unless
    `num_classes` is given and differs from `d`. Pass `sparse` if that guess
    is wrong for your data.

    Counting reads every element the pipeline produces, features included:
    a pipeline whose `map` decodes or augments images runs at the speed of
    that `map`. Count a labels-only dataset built from the same source
    (e.g. `tf.data.Dataset.from_tensor_slices(y_train)`, or the label
    column of your files) before the heavy `map`; in the package benchmark
    that was over 30 times faster. `label_fn` selects the labels but does
    not skip the work that produced the rest of the element.

    Args:
        dataset: A `tf.data.Dataset`. Must be finite, or `steps` must be
            given.
        num_classes: Positive int, or `None` (default) to infer it: the
            last dimension of dense labels, or the largest sparse label
            plus one. Inference from sparse labels cannot see classes above
            the largest label that occurs: pass `num_classes` (or let
            `ClassCounter` take it from the model's output) so that absent
            trailing classes get a count of 0.
        label_fn: Optional function mapping a dataset element to the label
            tensor to count, called like a `Dataset.map` function: tuple
            elements are unpacked, so `(x, y)` calls `label_fn(x, y)`. Use
            it for dict or multi-output labels
            (`lambda x, y: y["class_output"]`). With
            `sample_weighted=True` it must return `(labels, sample_weight)`.
            Defaults to `None`: the labels are the second item of an
            `(x, y)` or `(x, y, sample_weight)` element, or the whole
            element of a labels-only dataset.
        steps: Optional positive int: count only the first `steps`
            elements (batches, for a batched dataset), like
            `steps_per_epoch` in `fit`. Required for an infinite dataset
            (`.repeat()` without a count); on a finite dataset that has more
            elements, a warning says that the counts cover only part of it.
            Defaults to `None`: the whole dataset.
        sample_weighted: Bool. If `True`, each sample counts with its
            sample weight (the third item of `(x, y, sample_weight)`, or the
            second output of `label_fn`), and the counts are floats. The
            weights hold one value per label, or one per sample (`[B]`,
            `[B, 1]`) for per-token or per-pixel labels. Defaults to `False`.
        sparse: `True` (labels are class ids of any shape, each element one
            label), `False` (one-hot / multi-hot rows `[..., C]`), or `None`
            (default) to infer the form from the shape and dtype, as
            described above.
        ignore_class: Optional int. Class ids equal to it are skipped (void
            pixels marked 255, sequence padding marked -1), as Keras'
            `SparseCategoricalCrossentropy(ignore_class=...)` skips them.
            Applies to class ids only (one-hot rows have no ignored value).
            Defaults to `None`.
        verbose: `"auto"` (default), 0, 1 or 2. 0 is silent; 1 shows a
            Keras progress bar (in dataset elements); 2 prints one line when
            done. `"auto"` shows a bar only when the dataset carries
            features beside the labels, its length is known, and the count
            has been running for more than a second.

    Returns:
        NumPy array of shape `[num_classes]`: int64 counts, or float64
        weighted counts when `sample_weighted=True`.

    Raises:
        TypeError: If `dataset` is not a `tf.data.Dataset`, an argument has
            the wrong type, or the labels are not a dense numeric tensor.
        ValueError: If the dataset is infinite and `steps` is not given; if
            it is empty; if a label lies outside `[0, num_classes)`, is not
            an integer id, or a dense label is not 0 or 1 (the message shows
            the offending value); if a sample weight is negative or not
            finite; if the labels have a shape that is neither form above
            (the message shows it); or if the elements hold no labels.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from keras_cbloss import count_classes
    >>> y = np.array([0, 2, 2, 1, 2, 0, 2])
    >>> x = np.zeros((7, 4), "float32")
    >>> ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    >>> count_classes(ds, num_classes=4, verbose=0)
    array([2, 1, 4, 0])
    >>> count_classes(tf.data.Dataset.from_tensor_slices(y), verbose=0)
    array([2, 1, 4])
    >>> masks = np.array([[[0, 1], [255, 2]], [[1, 1], [255, 255]]])
    >>> ds = tf.data.Dataset.from_tensor_slices(masks).batch(2)
    >>> count_classes(ds, 3, sparse=True, ignore_class=255, verbose=0)
    array([1, 3, 1])

    References:
        Cui et al., Class-Balanced Loss Based on Effective Number of
        Samples, CVPR 2019 (arXiv:1901.05555).
    """
    dataset = check_dataset(dataset)
    num_classes = check_num_classes(num_classes)
    label_fn = check_label_fn(label_fn)
    steps = check_steps(steps)
    sample_weighted = check_bool(sample_weighted, "sample_weighted")
    sparse = check_sparse(sparse)
    ignore_class = check_ignore_class(ignore_class)
    verbose = check_verbose(verbose)

    total = _total_elements(dataset, steps)
    if steps is not None:
        dataset = dataset.take(steps)
    labels, has_features = _labels_dataset(dataset, label_fn, sample_weighted)
    spec = labels.element_spec[0] if sample_weighted else labels.element_spec
    plan = _plan(spec, num_classes, sparse, sample_weighted, ignore_class)
    show_bar = verbose in (1, 2) or (
        verbose == "auto" and has_features and total is not None
    )
    grouped, steps_mode, chunk = _group(labels, plan, show_bar, total)
    state = _run(grouped, _cached_runner(plan.key(steps_mode)), chunk, plan,
                 _Progress(verbose, total))
    counts = state.counts.numpy()
    _warn_if_ambiguous(plan, counts)
    return counts.astype(np.float64 if sample_weighted else np.int64)


def _run(grouped, runner, chunk, plan, progress):
    """Runs the loop (in chunks when a bar may show): the final `_State`."""
    state = _State.initial(plan)
    iterator = iter(grouped)
    max_groups = tf.constant(
        chunk if chunk else np.iinfo(np.int64).max, tf.int64
    )
    while True:
        state = runner(iterator, max_groups, state)
        if (
            int(state.code) != _Code.OK
            or bool(state.exhausted)
            or not chunk
        ):
            break
        progress.update(int(state.elements))
    if int(state.code) != _Code.OK:
        raise _invalid_error(plan, _Code(int(state.code)), state.bad.numpy())
    progress.finish(int(state.elements))
    if int(state.rows) == 0:
        ignored = (
            f" (labels equal to `ignore_class={plan.ignore_class}` are "
            "skipped)"
            if plan.ignore_class is not None
            else ""
        )
        raise ValueError(
            "The dataset yielded no labels to count: it is empty, or all "
            f"its batches are empty{ignored}. Pass the training dataset (or "
            "its labels) that `fit` will read."
        )
    return state


class _Progress:
    """The optional Keras progress bar of a count, in dataset elements.

    `verbose=1` or `2` shows it from the start; `"auto"` once the count has
    run for `_AUTO_BAR_AFTER_S` (the caller only reports progress, i.e.
    runs the loop in chunks, when a bar may be shown).
    """

    def __init__(self, verbose, total):
        self._verbose = verbose
        self._total = total
        self._start = time.perf_counter()
        self._bar = None
        if verbose in (1, 2):
            self._bar = keras.utils.Progbar(
                total, verbose=verbose, unit_name="step"
            )

    def update(self, elements):
        if (
            self._bar is None
            and self._verbose == "auto"
            and time.perf_counter() - self._start > _AUTO_BAR_AFTER_S
        ):
            self._bar = keras.utils.Progbar(
                self._total, verbose=1, unit_name="step"
            )
        if self._bar is not None:
            self._bar.update(elements, finalize=False)

    def finish(self, elements):
        if self._bar is not None:
            self._bar.update(elements, finalize=True)


def _warn_if_ambiguous(plan, counts):
    if (
        plan.ambiguous
        and plan.num_classes is not None
        and plan.num_classes > 2
        and np.count_nonzero(counts[2:]) == 0
    ):
        warnings.warn(
            f"Counted labels of shape {plan.shape} as batches of class ids, "
            "and found only classes 0 and 1. If each element is one "
            "unbatched one-hot or multi-hot row, pass `sparse=False` (or "
            "batch the dataset first).",
            UserWarning,
            stacklevel=3,
        )


def _representable(value, dtype):
    """`value` if a label of `dtype` can equal it, else None."""
    if value is None or dtype.is_floating:
        return value
    if dtype.is_bool:
        return value if value in (0, 1) else None
    return value if dtype.min <= value <= dtype.max else None


# The elements: cardinality, labels and weights.


def _total_elements(dataset, steps):
    """The number of elements the count reads, or None when unknown."""
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY and steps is None:
        raise ValueError(
            "The dataset is infinite (repeated without a count), so counting "
            "its labels would never end. Pass `steps`, the number of "
            "elements (batches) to count, e.g. `steps=steps_per_epoch`, or "
            "count the dataset before `.repeat()`."
        )
    if cardinality == 0:
        raise ValueError(
            "The dataset is empty (cardinality 0): there are no labels to "
            "count. Pass the training dataset that `fit` will read."
        )
    if cardinality < 0:  # unknown, or infinite with `steps`
        return steps
    if steps is None:
        return cardinality
    if steps > cardinality:
        warnings.warn(
            f"`steps={steps}` exceeds the dataset's {cardinality} elements: "
            f"counting all {cardinality}.",
            UserWarning,
            stacklevel=3,
        )
        return cardinality
    if steps < cardinality:
        warnings.warn(
            f"`steps={steps}` stops before the end of the dataset: the "
            f"counts cover only {steps} of its {cardinality} elements "
            "(batches), a sample of the training set rather than all of it. "
            "Leave `steps=None` to count the whole dataset.",
            UserWarning,
            stacklevel=3,
        )
    return steps


def _labels_dataset(dataset, label_fn, sample_weighted):
    """Projects the elements to labels (and weights): `(dataset, features)`.

    `features` is whether the elements carry more than the labels, i.e.
    whether the count also runs the pipeline's feature work.
    """
    spec = dataset.element_spec
    if label_fn is not None:
        labels = dataset.map(label_fn)
        _check_projected(labels.element_spec, sample_weighted)
        return labels, True
    if isinstance(spec, dict):
        raise ValueError(
            "Cannot find the labels in the dataset's elements: they are "
            f"dicts (keys {sorted(spec)}), which `fit` reads as inputs "
            "without labels. Yield `(x, y)` elements, or pass `label_fn`, "
            f"e.g. `label_fn=lambda e: e[{sorted(spec)[0]!r}]`."
        )
    if not isinstance(spec, tuple):  # labels only
        if sample_weighted:
            raise ValueError(
                "`sample_weighted=True` needs sample weights, but the dataset "
                "holds labels only. Use elements `(x, y, sample_weight)`, or "
                "a `label_fn` returning `(labels, sample_weight)`."
            )
        check_label_spec(spec, "the dataset's elements")
        return dataset, False
    if len(spec) not in (2, 3):
        raise ValueError(
            "Cannot find the labels in the dataset's elements. Expected "
            "`(x, y)`, `(x, y, sample_weight)` or labels only, as `fit` "
            f"accepts. Received: element_spec={spec}. Pass `label_fn`, a "
            "function that returns the labels of an element."
        )
    check_label_spec(spec[1], "`y` in the dataset's `(x, y, ...)`")
    if not sample_weighted:
        return dataset.map(lambda *element: element[1]), True
    if len(spec) != 3:
        raise ValueError(
            "`sample_weighted=True` needs sample weights, but the "
            "dataset's elements are `(x, y)`. Use elements "
            "`(x, y, sample_weight)`, or a `label_fn` returning "
            "`(labels, sample_weight)`."
        )
    check_weight_spec(spec[2], "the dataset's `sample_weight`")
    return dataset.map(lambda *element: (element[1], element[2])), True


def _check_projected(out, sample_weighted):
    """Checks what `label_fn` returns."""
    if not sample_weighted:
        check_label_spec(out, "the output of `label_fn`")
        return
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ValueError(
            "With `sample_weighted=True`, `label_fn` must return "
            "`(labels, sample_weight)`. Received a `label_fn` "
            f"returning elements of spec {out}"
        )
    check_label_spec(out[0], "the labels returned by `label_fn`")
    check_weight_spec(out[1], "the weights returned by `label_fn`")


def _label_spec(dataset, label_fn=None, sample_weighted=False):
    """The `tf.TensorSpec` of the labels `count_classes` would count.

    For `ClassCounter`, which compares the labels' rank with the model's
    output rank to decide the label form. Raises as `count_classes` does
    when the labels cannot be found.
    """
    labels, _ = _labels_dataset(dataset, label_fn, sample_weighted)
    spec = labels.element_spec
    return spec[0] if sample_weighted else spec


# The plan: sparse or dense, batched or not, from the static spec.


def _plan(spec, num_classes, sparse, weighted, ignore_class):
    shape, dtype = spec.shape, spec.dtype
    if sparse is None:
        sparse, batched = _infer_form(shape, dtype, num_classes)
        ambiguous = sparse and shape.rank == 1 and (shape[0] or 1) > 2
    elif sparse:
        batched, ambiguous = shape.rank != 0, False
    else:
        batched, ambiguous = _dense_batched(shape), False
    if not sparse:
        width = int(shape[-1])
        if num_classes is not None and num_classes != width:
            raise ValueError(
                f"Invalid value for argument `num_classes`: the labels are "
                f"one-hot / multi-hot rows of shape {shape}, with {width} "
                f"classes. Received: num_classes={num_classes}. If the "
                "labels are class ids (e.g. per-token ids [B, T]), pass "
                "`sparse=True`."
            )
        num_classes = width
    return _Plan(
        sparse, shape, dtype, num_classes, batched, weighted, ignore_class,
        ambiguous,
    )


def _dense_batched(shape):
    """`sparse=False`: rows `[..., C]` with a static `C`."""
    if shape.rank == 0:
        raise ValueError(
            f"Cannot count scalar labels (shape {shape}) as one-hot rows "
            "(`sparse=False`): one-hot rows have a last dimension C. For "
            "class ids, pass `sparse=True` or leave `sparse=None`."
        )
    if shape.rank is None or shape[-1] is None:
        raise ValueError(_unknown_width_message(shape))
    return shape.rank >= 2


def _unknown_width_message(shape):
    return (
        f"Cannot count labels of shape {shape}: the last dimension (1 for "
        "class ids, C for one-hot rows) is unknown. If the labels are class "
        "ids (e.g. per-token ids from `padded_batch`, with dynamic length), "
        "pass `sparse=True`. If they are one-hot rows, give the last "
        "dimension a static size, e.g. `label_fn=lambda x, y: "
        "tf.ensure_shape(y, [None, num_classes])` (one `None` per leading "
        "dimension)."
    )


def _infer_form(shape, dtype, num_classes):
    """`sparse=None`: `(sparse, batched)` from the shape and dtype."""
    rank = shape.rank
    if rank is None:
        raise ValueError(
            "Cannot count labels of unknown rank. " + _SHAPE_HELP + " Or "
            "give them a static shape with `tf.ensure_shape` in `label_fn`."
        )
    if rank == 0:
        return True, False
    if rank == 1:
        width = shape[0]
        dense_dtype = dtype.is_floating or dtype.is_bool
        if (
            width is not None
            and width > 1
            and dense_dtype
            and num_classes in (None, width)
        ):
            return False, False
        return True, True
    if rank == 2:
        if shape[1] is None:
            raise ValueError(_unknown_width_message(shape))
        return shape[1] == 1, True
    raise ValueError(f"Cannot count labels of shape {shape}. " + _SHAPE_HELP)


def _group(labels, plan, show_bar, total):
    """Regroups the labels stream: `(dataset, steps_mode, chunk)`.

    `steps_mode` says how the loop counts dataset elements (for the progress
    bar): "leading" (each group stacks elements along axis 0), "one" (one
    element per group), or "none" (not tracked). `chunk` is the number of
    groups per call of the loop when progress is reported, 0 for one call.
    """
    per_row = 1 if plan.sparse else plan.num_classes
    values = _GROUP_VALUES if plan.sparse else _DENSE_GROUP_VALUES
    fixed = plan.shape.is_fully_defined()
    if not plan.batched:
        size = max(1, values // per_row)
        grouped, steps_mode = labels.batch(size), "leading"
        groups = None if total is None else -(-total // size)
    elif show_bar or plan.weighted or (
        not fixed and plan.shape.rank != (1 if plan.sparse else 2)
    ):
        # With weights or a progress bar, keep the batches (exact sizes and
        # element counts); batches of ids [B, T] (rows [B, T, C]) with a
        # dynamic T cannot be concatenated.
        grouped, steps_mode, groups = labels, "one", total
    elif fixed:
        # Batches of one static size (`drop_remainder=True`, or pre-sliced
        # arrays) stack; `rebatch` would log "Tensor RefCount not reliable"
        # errors on slices of a `from_tensor_slices` array.
        size = max(1, values // max(1, plan.shape.num_elements()))
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
            (i < max_groups)
            & tf.equal(state.code, _Code.OK)
            & ~state.exhausted
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

    Each value is read once by the sums and once by the check `y * y != y`
    (true exactly when y is neither 0 nor 1, NaN included, for floats and
    for wrapping integers alike); an infinite label, which passes that test,
    makes the sums non-finite. Only when either flags the group is the
    offending value looked for.
    """
    lead = _leading(y)
    y = tf.reshape(y, [-1, key.num_classes])
    rows = tf.shape(y, out_type=tf.int64)[0]
    if w is not None:
        w64 = _expand_weights(w, rows, lead)
        sums = tf.linalg.matvec(tf.cast(y, tf.float64), w64, transpose_a=True)
        new_counts = counts + sums
    else:
        # Column sums as a [1, n] x [n, C] product: on CPU as fast as or
        # faster than reduce_sum over axis 0, and exact in float32: a batch
        # has far fewer than 2**24 rows.
        ones = tf.ones(tf.stack([1, tf.shape(y)[0]]), tf.float32)
        sums = tf.reshape(tf.matmul(ones, tf.cast(y, tf.float32)), [-1])
        new_counts = counts + tf.cast(sums, tf.int64)
    code, bad = tf.constant(int(_Code.OK)), tf.zeros([2], tf.float64)
    if not y.dtype.is_bool:
        suspect = tf.reduce_any(tf.not_equal(y * y, y)) | ~tf.reduce_all(
            tf.math.is_finite(sums)
        )
        code, bad = tf.cond(
            suspect,
            lambda: _first_invalid(
                tf.not_equal(y, 0) & tf.not_equal(y, 1), y, _Code.BAD_DENSE
            ),
            lambda: (code, bad),
        )
    if w is not None:
        code, bad = _check_weights(w, rows, lead, code, bad)
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
        tf.logical_not(w64 >= 0) | ~tf.math.is_finite(w64), w,
        _Code.BAD_WEIGHT,
    )
    ok = tf.equal(code, _Code.OK)
    new_code = tf.where(
        ok, tf.where(sizes_bad, int(_Code.BAD_SIZES), w_code), code
    )
    new_bad = tf.where(ok, tf.where(sizes_bad, sizes, w_bad), bad)
    return new_code, new_bad


# Errors found by the loop.


def _format_number(value):
    if np.isfinite(value) and value == np.floor(value) and abs(value) < 2**63:
        return str(int(value))
    # Labels are often float32: 7 significant digits show 0.9, not 0.8999...
    return format(float(value), ".7g")


def _invalid_error(plan, code, bad):
    value = _format_number(bad[0])
    if code == _Code.BAD_SPARSE:
        return _bad_sparse_error(plan, value, float(bad[0]))
    if code == _Code.BAD_DENSE:
        return ValueError(
            "Invalid label in the dataset. Expected one-hot or multi-hot "
            f"rows of 0s and 1s (labels of shape {plan.shape}, read as "
            f"{plan.num_classes} classes). Received a value of {value}. Soft "
            "labels (label smoothing, mixup) have no class counts: count "
            "the labels before they are mixed, e.g. from a labels-only "
            "dataset. If these are class ids (e.g. per-token ids [B, T]), "
            "pass `sparse=True`."
        )
    if code == _Code.BAD_WEIGHT:
        return ValueError(
            "Invalid sample weight in the dataset. Expected finite, "
            f"non-negative weights. Received a sample weight of {value}."
        )
    return ValueError(
        "The sample weights do not match the labels: "
        f"{_format_number(bad[1])} weights for {_format_number(bad[0])} "
        "labelled samples in one element. Expected one weight per sample "
        "(shape [B] or [B, 1] for batched labels, [] for unbatched ones), "
        "or one per label."
    )


class _InvalidLabelError(ValueError):
    """An invalid class id; `label` holds it (`ClassCounter` reads it)."""

    def __init__(self, message, label):
        super().__init__(message)
        self.label = label


def _bad_sparse_error(plan, value, label):
    if plan.num_classes is None:
        expected = (
            "non-negative integer class ids (below "
            f"{_MAX_INFERRED_CLASSES} when `num_classes` is inferred)"
        )
    else:
        expected = (
            f"integer class ids in [0, {plan.num_classes}) "
            f"(`num_classes={plan.num_classes}`)"
        )
    if plan.ignore_class is None:
        ignore = (
            " If such labels mark void or padding positions (e.g. 255 in "
            "segmentation masks, -1 in padded sequences), pass "
            "`ignore_class` (as to the losses) so that they are skipped."
        )
    else:
        ignore = f" (Labels equal to `ignore_class={plan.ignore_class}` "
        ignore += "are skipped.)"
    return _InvalidLabelError(
        f"Invalid label in the dataset. Expected {expected}. Received a "
        f"label of {value} (labels of shape {plan.shape}). Fix the "
        "labels or pass the right `num_classes`: `tf.math.bincount` "
        "would silently drop labels >= num_classes, and a loss cannot "
        f"weight them.{ignore}",
        label,
    )
