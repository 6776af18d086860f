"""Per-class label counts from any data that `fit` trains from, in one pass.

The class-balanced weights need the number of training samples of each
class over the whole training set (not per batch: Cui et al. compute them
once, from the data set). `count_classes` reads every label once:

- a `tf.data.Dataset` in graph (`_count_tf.py`: a `tf.while_loop` over the
  dataset's iterator with `DenseBincount` and column sums), at the
  pipeline's own speed;
- every other source `fit` takes (NumPy arrays or tensors, `(x, y)` and
  `(x, y, sample_weight)` arrays, a `keras.utils.PyDataset`, a PyTorch
  `DataLoader`, a grain dataset or loader, a list of batches, a function
  returning a fresh iterator of batches) batch by batch (`_sources.py`), its
  labels counted on the host with NumPy (`np.bincount`, column sums), so
  that a JAX or PyTorch user needs no TensorFlow.

Every source shares one label plan and one set of checks and messages: the
labels are found in an element as `fit` finds them (`_locate_labels`),
described by a `LabelSpec` and checked by `check_label_spec`; `_plan`
decides from that spec, once, how to read them (class ids or one-hot /
multi-hot rows, batched or not); invalid values are reported by
`_invalid_error`, whichever loop found them.

Counting reads every element a source produces. A pipeline that decodes or
augments images spends nearly all its time on the images, which counting
does not need: count the labels alone (see the counting guide in `docs/`).
"""

import dataclasses
import enum
import itertools
import time
import typing
import warnings

import keras
import numpy as np

from keras_cbloss import _sources
from keras_cbloss._validation import _dtype_kind
from keras_cbloss._validation import check_bool
from keras_cbloss._validation import check_ignore_class
from keras_cbloss._validation import check_label_fn
from keras_cbloss._validation import check_label_spec
from keras_cbloss._validation import check_num_classes
from keras_cbloss._validation import check_source
from keras_cbloss._validation import check_sparse
from keras_cbloss._validation import check_steps
from keras_cbloss._validation import check_verbose
from keras_cbloss._validation import check_weight_spec

# Small batches are gathered into groups of about this many class ids (and
# one-hot rows into groups of about `_DENSE_GROUP_VALUES` values) before
# they are counted, so the per-group cost of the checks and the count is
# paid once per group, not once per batch. The in-graph loop regroups the
# same way.
_GROUP_VALUES = 2**16
_DENSE_GROUP_VALUES = 2**20
# Inferring `num_classes` from the largest sparse label: refuse labels that
# would allocate an absurd count vector (a garbage label such as 2**31).
_MAX_INFERRED_CLASSES = 2**24
# verbose="auto": show the progress bar once a count has run this long.
_AUTO_BAR_AFTER_S = 1.0

_SHAPE_HELP = (
    "Expected sparse class ids of shape [] (unbatched), [B] or [B, 1] "
    "(batched), or one-hot / multi-hot rows of shape [C] (unbatched) or "
    "[B, C] (batched). For class ids of any other shape (per-token ids "
    "[B, T], segmentation masks [B, H, W]), pass `sparse=True`; for one-hot "
    "rows [..., C], pass `sparse=False`."
)


class _Code(enum.IntEnum):
    """What a check found: OK, or the first invalid input."""

    OK = 0
    BAD_SPARSE = 1  # a class id out of range or not an integer
    BAD_DENSE = 2  # a dense label other than 0 or 1 (or the ignored value)
    BAD_WEIGHT = 3  # a negative or non-finite sample weight
    BAD_SIZES = 4  # not one sample weight per sample


class _Args(typing.NamedTuple):
    """The checked arguments of a count."""

    num_classes: typing.Optional[int]
    label_fn: typing.Optional[typing.Callable]
    steps: typing.Optional[int]
    weighted: bool
    # True, False, None, or (from `ClassCounter`) a function of the labels'
    # shape that returns one of them.
    sparse: typing.Any
    ignore_class: typing.Optional[int]
    verbose: typing.Any


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How to read the labels: the facts `_plan` derives once."""

    sparse: bool  # class ids (True) or one-hot / multi-hot rows (False)
    shape: typing.Optional[tuple]  # the labels' shape; None entries unknown
    dtype: str
    num_classes: typing.Optional[int]  # None: infer from sparse labels
    batched: bool  # the leading dimension is the batch
    weighted: bool
    ignore_class: typing.Optional[int]
    # Rank-1 labels read as class ids by inference that could be one
    # unbatched one-hot row instead.
    ambiguous: bool = False


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
    """Counts the samples of each class in the data `fit` trains from.

    Formula:

    ```
    n_c = sum over labels y of [y == c]            (class ids)
    n_c = sum over rows t of [t_c == 1]            (one-hot / multi-hot rows)
    n_c = sum over labels y of [y == c] * s        (sample_weighted=True)
    ```

    One pass over the data. A `tf.data.Dataset` is counted in graph (a
    `tf.function` loop over its iterator, with `DenseBincount` for class ids
    and column sums for rows), at the pipeline's own speed. Every other
    source `fit` takes is read batch by batch and its labels are counted
    with NumPy (`np.bincount`), without TensorFlow: NumPy labels, `(x, y)`
    or `(x, y, sample_weight)` arrays (or tensors of any backend), a
    `keras.utils.PyDataset`, a PyTorch `DataLoader`, a grain dataset or
    loader, a list of batches, or a function that returns a fresh iterator
    of batches. The result is what the class-balanced losses take as
    `class_counts`: counts over the whole training set, not per batch.

    The labels are found where `fit` finds them: the second item of an
    `(x, y)` or `(x, y, sample_weight)` element (a tuple or list), or the
    whole element when it is not one (labels only). Arrays are one batch:
    their leading dimension is the samples; elements of the other sources
    are batches, except for a `tf.data.Dataset`, which may be unbatched.
    Labels may be:

    - sparse class ids, shape `[B]` or `[B, 1]` (`[]` unbatched), or, with
      `sparse=True`, of any shape (per-token ids `[B, T]`, per-pixel masks
      `[B, H, W]`): each entry is one label;
    - dense one-hot or multi-hot rows of 0s and 1s, shape `[B, C]` (`[C]`
      unbatched, `[..., C]` with `sparse=False`); a class's count is the
      number of rows with a 1 in its column (a multi-label sample counts
      once for each of its classes). With `ignore_class`, entries equal to
      it are unknown (multi-task targets marked -1) and not counted: a
      class's count is its known positives.

    A binary model with one sigmoid unit and 0/1 labels (int or float,
    `[B]` or `[B, 1]`) is the two-class problem {0: negative, 1: positive}:
    pass `num_classes=2` to get `[n_neg, n_pos]`.

    A `tf.data` label of static shape `[d]` is ambiguous when
    `sparse=None`: a batch of `d` class ids or one unbatched one-hot row of
    `d` classes. Integer labels are read as class ids; floating-point (or
    boolean) labels as a one-hot row, unless `num_classes` is given and
    differs from `d`. Pass `sparse` if that guess is wrong for your data.

    Counting reads every element the source produces, features included:
    a pipeline whose `map` (or `__getitem__`) decodes or augments images
    runs at that speed. Count the labels alone where you have them (e.g.
    `count_classes(y_train)`, or a labels-only dataset built from the same
    file list); in the package benchmark a labels-only `tf.data` pipeline
    was over 30 times faster. `label_fn` selects the labels but does not
    skip the work that produced the rest of the element.

    Args:
        dataset: The training data: NumPy labels; `(x, y)` or
            `(x, y, sample_weight)` arrays; a `tf.data.Dataset`; a
            `keras.utils.PyDataset`; a PyTorch `DataLoader`; a grain
            `MapDataset`, `IterDataset` or `DataLoader`; a list (or other
            re-iterable) of batches; or a function that returns a fresh
            iterator of batches (a one-shot generator is refused, since
            counting would use up what `fit` needs). Tensors of any backend
            are converted to NumPy. Must be finite, or `steps` must be
            given.
        num_classes: Positive int, or `None` (default) to infer it: the
            last dimension of dense labels, or the largest sparse label
            plus one. Inference from sparse labels cannot see classes above
            the largest label that occurs: pass `num_classes` (or let
            `ClassCounter` take it from the model's output) so that absent
            trailing classes get a count of 0.
        label_fn: Optional function mapping an element (a batch) to the
            labels to count; tuple and list elements are unpacked, so
            `(x, y)` calls `label_fn(x, y)`. For a `tf.data.Dataset` it runs
            as a `Dataset.map` function on tensors; for other sources on
            each batch as the source yields it (NumPy arrays, PyTorch
            tensors, ...), and its output is converted to NumPy. Use it
            for dict or multi-output labels (`lambda x, y: y["class"]`).
            With `sample_weighted=True` it must return
            `(labels, sample_weight)`. Defaults to `None`: the labels are
            found as described above.
        steps: Optional positive int: count only the first `steps`
            elements (batches), like `steps_per_epoch` in `fit`. Required
            for an infinite source (`.repeat()` without a count, a
            `PyDataset` whose `num_batches` is `None`); on a finite source
            of known length that has more elements, a warning says that the
            counts cover only part of it. Not for arrays (slice them).
            Defaults to `None`: the whole source.
        sample_weighted: Bool. If `True`, each sample counts with its
            sample weight (the third item of `(x, y, sample_weight)`, or the
            second output of `label_fn`), and the counts are floats. The
            weights hold one value per label, or one per sample (`[B]`,
            `[B, 1]`) for per-token or per-pixel labels. Defaults to `False`.
        sparse: `True` (labels are class ids of any shape, each entry one
            label), `False` (one-hot / multi-hot rows `[..., C]`), or `None`
            (default) to infer the form from the shape and dtype, as
            described above.
        ignore_class: Optional int. Class ids equal to it are skipped (void
            pixels marked 255, sequence padding marked -1), as Keras'
            `SparseCategoricalCrossentropy(ignore_class=...)` skips them;
            entries of one-hot / multi-hot rows equal to it are unknown and
            not counted. Defaults to `None`.
        verbose: `"auto"` (default), 0, 1 or 2. 0 is silent; 1 shows a
            Keras progress bar (in elements, i.e. batches); 2 prints one
            line when done. `"auto"` shows a bar only when the elements
            carry features beside the labels, their number is known, and
            the count has been running for more than a second.

    Returns:
        NumPy array of shape `[num_classes]`: int64 counts, or float64
        weighted counts when `sample_weighted=True`.

    Raises:
        TypeError: If `dataset` is none of the sources above (or a one-shot
            iterator), an argument has the wrong type, or the labels are
            not a dense numeric array (string labels: the message shows how
            to map them to ids).
        ValueError: If the source is infinite and `steps` is not given; if
            it is empty; if a label lies outside `[0, num_classes)`, is not
            an integer id, or a dense label is not 0 or 1 (nor
            `ignore_class`; the message shows the offending value); if a
            sample weight is negative or not finite; if the labels have a
            shape that is neither form above (the message shows it), or
            change layout between batches; or if the elements hold no
            labels.

    Examples:
        >>> import numpy as np
        >>> from keras_cbloss import count_classes
        >>> y = np.array([0, 2, 2, 1, 2, 0, 2])
        >>> count_classes(y, num_classes=4)
        array([2, 1, 4, 0])
        >>> x = np.zeros((7, 4), "float32")
        >>> batches = [(x[:4], y[:4]), (x[4:], y[4:])]  # e.g. a DataLoader
        >>> count_classes(batches, verbose=0)
        array([2, 1, 4])
        >>> targets = np.array([[1, 0, -1], [1, 1, 0], [-1, 1, 1]])
        >>> count_classes(targets, ignore_class=-1)  # -1: unknown entries
        array([2, 2, 1])
        >>> import tensorflow as tf
        >>> masks = np.array([[[0, 1], [255, 2]], [[1, 1], [255, 255]]])
        >>> ds = tf.data.Dataset.from_tensor_slices(masks).batch(2)
        >>> count_classes(ds, 3, sparse=True, ignore_class=255, verbose=0)
        array([1, 3, 1])

    References:
        Cui et al., Class-Balanced Loss Based on Effective Number of
        Samples, CVPR 2019 (arXiv:1901.05555).
    """
    kind = check_source(dataset)
    args = _Args(
        num_classes=check_num_classes(num_classes),
        label_fn=check_label_fn(label_fn),
        steps=check_steps(steps),
        weighted=check_bool(sample_weighted, "sample_weighted"),
        sparse=check_sparse(sparse),
        ignore_class=check_ignore_class(ignore_class),
        verbose=check_verbose(verbose),
    )
    return _count(dataset, kind, args)


def _count(dataset, kind, args):
    """Counts a checked source of `kind`: the NumPy count vector."""
    if kind == _sources.TF_DATA:
        from keras_cbloss import _count_tf  # only tf.data needs TensorFlow

        counts, plan = _count_tf.count(dataset, args)
    else:
        counts, plan = _count_batches(_sources.batches(dataset, kind), args)
    _warn_if_ambiguous(plan, counts)
    return counts.astype(np.float64 if args.weighted else np.int64)


# Where the labels are, and what they are: shared by every source.


def _locate_labels(element, weighted, show):
    """Where `fit` finds the labels (and weights) of an element.

    `element` is an element, or its `tf.data` spec; `show(element)` shows it
    in messages. Returns `(label_index, weight_index)`: `(None, None)` when
    the element is the labels, `(1, None)` for `(x, y)`, `(1, 2)` for
    `(x, y, sample_weight)` with `weighted`.
    """
    if isinstance(element, dict):
        keys = sorted(element)
        raise ValueError(
            "Cannot find the labels in the dataset's elements: they are "
            f"dicts (keys {keys}), which `fit` reads as inputs without "
            "labels. Yield `(x, y)` elements, or pass `label_fn`, e.g. "
            f"`label_fn=lambda e: e[{keys[0]!r}]`."
        )
    if not isinstance(element, (tuple, list)) or _is_numbers(element):
        if weighted:
            raise ValueError(
                "`sample_weighted=True` needs sample weights, but the "
                "dataset holds labels only. Use elements "
                "`(x, y, sample_weight)`, or a `label_fn` returning "
                "`(labels, sample_weight)`."
            )
        return None, None
    if len(element) not in (2, 3):
        raise ValueError(
            "Cannot find the labels in the dataset's elements. Expected "
            "`(x, y)`, `(x, y, sample_weight)` or labels only, as `fit` "
            f"accepts. Received: {show(element)}. Pass `label_fn`, a "
            "function that returns the labels of an element."
        )
    if not weighted:
        return 1, None
    if len(element) != 3:
        raise ValueError(
            "`sample_weighted=True` needs sample weights, but the "
            "dataset's elements are `(x, y)`. Use elements "
            "`(x, y, sample_weight)`, or a `label_fn` returning "
            "`(labels, sample_weight)`."
        )
    return 1, 2


def _is_numbers(element):
    """A list of Python numbers: a batch of labels, not `(x, y, ...)`."""
    return (
        isinstance(element, list)
        and bool(element)
        and all(isinstance(v, (int, float, np.number)) for v in element)
    )


def _check_projected(out, weighted, spec_of, show):
    """Checks what `label_fn` returned (`spec_of` gives the `LabelSpec`)."""
    if not weighted:
        check_label_spec(
            spec_of(out), "the output of `label_fn`", received=show(out)
        )
        return
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ValueError(
            "With `sample_weighted=True`, `label_fn` must return "
            "`(labels, sample_weight)`. Received a `label_fn` returning "
            f"{show(out)}"
        )
    check_label_spec(
        spec_of(out[0]),
        "the labels returned by `label_fn`",
        received=show(out[0]),
    )
    check_weight_spec(
        spec_of(out[1]),
        "the weights returned by `label_fn`",
        received=show(out[1]),
    )


# The plan: sparse or dense, batched or not, from the labels' spec.


def _plan(spec, args, source="tf"):
    """The `_Plan` for labels described by `spec` (a `LabelSpec`).

    `source`: "tf" for a `tf.data` element spec (batched or not); "arrays"
    for whole arrays and "batches" for the elements of other sources, whose
    leading dimension is the batch, as `fit` reads them (rank-1 labels are
    class ids unless `sparse=False`, and for "batches" they could be
    misread unbatched rows: `ambiguous`).
    """
    shape, dtype = spec.shape, spec.dtype
    num_classes = args.num_classes
    sparse = args.sparse(shape) if callable(args.sparse) else args.sparse
    if sparse is None:
        sparse, batched = _infer_form(shape, dtype, num_classes, source)
        rank_one = sparse and len(shape) == 1
        if source == "tf":
            ambiguous = rank_one and (shape[0] or 1) > 2
        else:
            ambiguous = rank_one and source == "batches"
    elif sparse:
        batched, ambiguous = shape != (), False
    else:
        batched, ambiguous = _dense_batched(shape), False
    if not sparse:
        width = int(shape[-1])
        if num_classes is not None and num_classes != width:
            raise ValueError(
                f"Invalid value for argument `num_classes`: the labels are "
                f"one-hot / multi-hot rows of shape {_shape_text(shape)}, "
                f"with {width} classes. Received: num_classes={num_classes}. "
                "If the labels are class ids (e.g. per-token ids [B, T]), "
                "pass `sparse=True`."
            )
        num_classes = width
    return _Plan(
        sparse,
        shape,
        dtype,
        num_classes,
        batched,
        args.weighted,
        args.ignore_class,
        ambiguous,
    )


def _shape_text(shape):
    return "<unknown>" if shape is None else str(tuple(shape))


def _dense_batched(shape):
    """`sparse=False`: rows `[..., C]` with a known `C`."""
    if shape == ():
        raise ValueError(
            f"Cannot count scalar labels (shape {_shape_text(shape)}) as "
            "one-hot rows (`sparse=False`): one-hot rows have a last "
            "dimension C. For class ids, pass `sparse=True` or leave "
            "`sparse=None`."
        )
    if shape is None or shape[-1] is None:
        raise ValueError(_unknown_width_message(shape))
    return len(shape) >= 2


def _unknown_width_message(shape):
    return (
        f"Cannot count labels of shape {_shape_text(shape)}: the last "
        "dimension (1 for class ids, C for one-hot rows) is unknown. If the "
        "labels are class ids (e.g. per-token ids from `padded_batch`, with "
        "dynamic length), pass `sparse=True`. If they are one-hot rows, "
        "give the last dimension a static size, e.g. `label_fn=lambda x, "
        "y: tf.ensure_shape(y, [None, num_classes])` (one `None` per "
        "leading dimension)."
    )


def _infer_form(shape, dtype, num_classes, source="tf"):
    """`sparse=None`: `(sparse, batched)` from the shape and dtype."""
    if shape is None:
        raise ValueError(
            "Cannot count labels of unknown rank. " + _SHAPE_HELP + " Or "
            "give them a static shape with `tf.ensure_shape` in `label_fn`."
        )
    rank = len(shape)
    if rank == 0:
        return True, False
    if rank == 1:
        width = shape[0]
        if (
            source == "tf"
            and width is not None
            and width > 1
            and _dtype_kind(dtype) in ("float", "bool")
            and num_classes in (None, width)
        ):
            return False, False
        return True, True
    if rank == 2:
        if shape[1] is None:
            raise ValueError(_unknown_width_message(shape))
        return shape[1] == 1, True
    raise ValueError(
        f"Cannot count labels of shape {_shape_text(shape)}. " + _SHAPE_HELP
    )


def _representable(value, dtype):
    """`value` if a label of dtype `dtype` (a name) can equal it, else None."""
    if value is None:
        return None
    kind = _dtype_kind(dtype)
    if kind == "float":
        return value
    if kind == "bool":
        return value if value in (0, 1) else None
    info = np.iinfo(dtype)
    return value if info.min <= value <= info.max else None


# Sources of batches (everything but tf.data): counted with NumPy.

# How the messages name a source, and the unit of its elements.
_WORDS = {
    _sources.TF_DATA: ("dataset", "elements (batches)"),
    _sources.PY_DATASET: ("PyDataset", "batches"),
    _sources.TORCH: ("DataLoader", "batches"),
    _sources.GRAIN: ("grain dataset", "batches"),
}


def _total(length, steps, kind):
    """The number of elements a count reads, or None when unknown.

    `length` is the source's number of elements: an int, None (unknown) or
    `_sources.INFINITE`.
    """
    name, unit = _WORDS.get(kind, ("dataset", "batches"))
    if length == _sources.INFINITE and steps is None:
        why = (
            "its `num_batches` is None"
            if kind == _sources.PY_DATASET
            else "repeated without a count"
        )
        raise ValueError(
            f"The {name} is infinite ({why}), so counting its labels would "
            f"never end. Pass `steps`, the number of {unit} to count, e.g. "
            "`steps=steps_per_epoch`"
            + (
                ", or count the dataset before `.repeat()`."
                if kind != _sources.PY_DATASET
                else "."
            )
        )
    if length == 0:
        raise ValueError(
            f"The {name} is empty (it has no {unit.split()[0]}): there are "
            "no labels to count. Pass the training data that `fit` will "
            "read."
        )
    if length is None or length == _sources.INFINITE:
        return steps
    if steps is None:
        return length
    if steps > length:
        warnings.warn(
            f"`steps={steps}` exceeds the {name}'s {length} "
            f"{unit.split()[0]}: counting all {length}.",
            UserWarning,
            stacklevel=5,
        )
        return length
    if steps < length:
        warnings.warn(
            f"`steps={steps}` stops before the end of the {name}: the "
            f"counts cover only {steps} of its {length} {unit}, a sample of "
            "the training set rather than all of it. Leave `steps=None` to "
            f"count the whole {name}.",
            UserWarning,
            stacklevel=5,
        )
    return steps


def _count_batches(source, args):
    """Counts a `_sources.Batches` with NumPy: `(counts, plan)`."""
    arrays = source.kind == _sources.ARRAYS
    if arrays and args.steps is not None:
        raise ValueError(
            "Invalid value for argument `steps`: arrays are counted whole "
            "(`fit` slices them into batches itself). Slice them to count "
            f"part of them, e.g. `y[:n]`. Received: steps={args.steps}"
        )
    total = _total(source.length, args.steps, source.kind)
    iterator = source.iterate()
    if total is not None:
        iterator = itertools.islice(iterator, total)
    reader = _BatchReader(args)
    counter = progress = None
    read = 0
    for element in iterator:
        labels, weights = reader.read(element)
        if counter is None:
            plan = _plan(reader.spec, args, "arrays" if arrays else "batches")
            counter = _HostCounter(plan)
            progress = _Progress(
                args.verbose, total, auto=reader.features and bool(total)
            )
        counter.add(labels, weights, read)
        read += 1
        if progress.active:
            progress.update(read)
    if counter is None:
        raise _no_labels_error(args.ignore_class)
    counter.flush()
    progress.finish(read)
    if counter.rows == 0:
        raise _no_labels_error(args.ignore_class)
    return counter.counts, counter.plan


class _BatchReader:
    """Finds the labels (and weights) of each batch, as NumPy arrays.

    Each batch is found as `fit` finds it (or by `label_fn`) and its labels
    pass the shared checks; `spec` describes the first batch's labels, for
    the plan. Batches laid out like the previous one, with NumPy labels of
    the same dtype, take a short path with the same outcome: a cheap
    source (slices of arrays in memory) costs well under a microsecond a
    batch, so the checks must not cost more than they need to.
    """

    def __init__(self, args):
        self._label_fn = args.label_fn
        self._weighted = args.weighted
        self._layout = None  # (element type, length, index, weights, dtype)
        self.spec = None
        self.features = args.label_fn is not None

    def read(self, element):
        if self._layout is not None:
            found = self._read_like_before(element)
            if found is not None:
                return found
        return self._read(element)

    def _read_like_before(self, element):
        kind, length, index, weight_index, label_type, dtype = self._layout
        if type(element) is not kind:
            return None
        weights = None
        if index is None:
            labels = element
        else:
            if len(element) != length:
                return None
            labels = element[index]
            if weight_index is not None:
                weights = element[weight_index]
                if type(weights) is not label_type:
                    return None
                weights = _sources.to_numpy(weights)
                if weights.dtype.kind not in "iuf":
                    return None
        if type(labels) is not label_type:
            return None
        labels = _sources.to_numpy(labels)
        if labels.dtype != dtype:
            return None
        return labels, weights

    def _read(self, element):
        weights = index = weight_index = None
        if self._label_fn is not None:
            if isinstance(element, (tuple, list)):
                out = self._label_fn(*element)
            else:
                out = self._label_fn(element)
            _check_projected(
                out,
                self._weighted,
                lambda v: _batch_spec(v)[0],
                _sources.describe,
            )
            labels, weights = out if self._weighted else (out, None)
            where = "the labels returned by `label_fn`"
        else:
            index, weight_index = _locate_labels(
                element, self._weighted, _show_batch
            )
            labels = element if index is None else element[index]
            if weight_index is not None:
                weights = element[weight_index]
            self.features |= index is not None
            where = (
                "the labels"
                if index is None
                else "`y` in the batches' `(x, y, ...)`"
            )
        spec, array = _batch_spec(labels)
        structure = isinstance(spec, (dict, tuple, list))
        check_label_spec(
            spec,
            where,
            received=_sources.describe(labels) if structure else None,
        )
        if weights is not None:
            weight_spec, weights = _batch_spec(weights)
            check_weight_spec(weight_spec, "the batches' `sample_weight`")
        if self.spec is None:
            self.spec = spec
        if self._label_fn is None:
            length = len(element) if index is not None else None
            self._layout = (
                type(element),
                length,
                index,
                weight_index,
                type(labels),
                array.dtype,
            )
        return array, weights


def _batch_spec(value):
    """`(LabelSpec, array)` of a batch's labels or weights; a structure of
    several (a dict, a tuple, a list of arrays) is returned as the spec,
    for the checks to refuse."""
    if isinstance(value, (dict, tuple)) or (
        isinstance(value, list)
        and any(isinstance(v, dict) or _sources.is_array_like(v) for v in value)
    ):
        return value, None
    array = _sources.to_numpy(value)
    return _sources.label_spec(value, array), array


def _show_batch(element):
    return "a batch " + _sources.describe(element)


def _no_labels_error(ignore_class):
    ignored = (
        f" (labels equal to `ignore_class={ignore_class}` are skipped)"
        if ignore_class is not None
        else ""
    )
    return ValueError(
        "The dataset yielded no labels to count: it is empty, or all its "
        f"batches are empty{ignored}. Pass the training dataset (or its "
        "labels) that `fit` will read."
    )


class _HostCounter:
    """Counts batches of labels with NumPy, in groups (see `_GROUP_VALUES`).

    A batch is copied when it is held for a group (a source may reuse its
    buffers); a batch large enough to be a group on its own, such as a
    whole label array, is counted where it lies.
    """

    def __init__(self, plan):
        self.plan = plan
        dtype = np.float64 if plan.weighted else np.int64
        self.counts = np.zeros(plan.num_classes or 0, dtype)
        self.rows = 0  # labels counted (known entries of rows): 0 is an error
        self._labels, self._weights, self._held = [], [], 0
        self._group = _GROUP_VALUES if plan.sparse else _DENSE_GROUP_VALUES

    def add(self, y, w, index):
        plan = self.plan
        if y.ndim != len(plan.shape) or (
            y.ndim
            and y.shape[-1] != plan.shape[-1]
            and not (plan.sparse and plan.shape[-1] != 1)
        ):
            _check_layout(plan, y.shape, index)
        lead = y.shape[0] if y.ndim else 1
        y = y.reshape(-1) if plan.sparse else y.reshape(-1, plan.num_classes)
        if w is not None:
            w = _per_label_weights(plan, w, len(y), lead)
        if not self._labels and y.size >= self._group:
            self._count(y, w)
            return
        self._labels.append(np.array(y))
        if w is not None:
            self._weights.append(np.array(w))
        self._held += y.size
        if self._held >= self._group:
            self.flush()

    def flush(self):
        if not self._labels:
            return
        y = _concatenate(self._labels)
        w = _concatenate(self._weights) if self._weights else None
        self._labels, self._weights, self._held = [], [], 0
        self._count(y, w)

    def _count(self, y, w):
        plan = self.plan
        step = _sparse_counts if plan.sparse else _dense_counts
        code, bad, rows, counts = step(plan, y, w)
        if code == _Code.OK and w is not None:
            # Every weight reached the counts unless ignored ids were left out.
            complete = not plan.sparse or rows == len(y)
            code, bad = _check_host_weights(w, counts, complete)
        if code != _Code.OK:
            raise _invalid_error(plan, code, bad)
        if counts.size > self.counts.size:
            self.counts = np.pad(
                self.counts, (0, counts.size - self.counts.size)
            )
        self.counts[: counts.size] += counts
        self.rows += int(rows)


def _concatenate(arrays):
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _check_layout(plan, shape, index):
    """Every batch's labels must have the first batch's layout."""
    expected = plan.shape
    same = len(shape) == len(expected)
    if same and not plan.sparse:
        same = shape[-1] == plan.num_classes
    elif same and expected and expected[-1] == 1 and len(expected) >= 2:
        same = shape[-1] == 1  # ids [B, 1]
    if not same:
        raise ValueError(
            f"The labels of batch {index} have shape {tuple(shape)}, but "
            f"those of the first batch have shape {_shape_text(expected)} "
            f"(read as {_form_text(plan)}). Expected every batch's labels "
            "in the same layout: pass labels of one form, or a `label_fn` "
            "that returns them so."
        )


def _form_text(plan):
    if plan.sparse:
        return "class ids"
    return f"one-hot / multi-hot rows of {plan.num_classes} classes"


def _per_label_weights(plan, w, n, lead):
    """One float64 weight per label: per-sample weights are repeated."""
    w = w.reshape(-1)
    m = w.size
    if m == n:
        return w
    if m == lead and lead and n % lead == 0:
        return np.repeat(w, n // lead)
    raise _invalid_error(plan, _Code.BAD_SIZES, np.array([n, m], float))


def _check_host_weights(w, counts, complete):
    """Finite, non-negative weights. `w.min() >= 0` fails for NaN too; a
    `+inf` weight that reached the counts (`complete`) made them infinite
    or NaN (0 * inf), which a look at the C counts shows, instead of a
    second pass over the weights."""
    if not w.size:
        return _Code.OK, None
    if w.min() >= 0 and (
        np.isfinite(counts).all() if complete else w.max() < np.inf
    ):
        return _Code.OK, None
    w64 = w.astype(np.float64)
    bad = ~(w64 >= 0) | ~np.isfinite(w64)
    return _Code.BAD_WEIGHT, np.array([w64[bad][0], 0.0])


def _sparse_counts(plan, y, w):
    """Class ids `[n]`: `(code, bad, rows, counts)` by `np.bincount`."""
    limit = plan.num_classes or _MAX_INFERRED_CLASSES
    ignore = _representable(plan.ignore_class, _sources.dtype_name(y))
    keep = None if ignore is None else y != ignore
    if keep is not None and keep.all():
        keep = None
    kept = y if keep is None else y[keep]
    if w is not None and keep is not None:
        w = w[keep]
    counts = _bincount(kept, w, plan.num_classes, limit)
    if counts is None:
        invalid = _invalid_ids(y, limit)
        if keep is not None:
            invalid &= keep
        return _Code.BAD_SPARSE, np.array([float(y[invalid][0]), 0.0]), 0, None
    return _Code.OK, None, kept.size, counts


def _bincount(y, w, num_classes, limit):
    """`np.bincount` of `y` if all are integer ids in [0, limit), else None.

    `np.bincount` refuses negative ids itself (a ValueError), so only the
    largest id is looked at before it (and, for floats, that they are whole
    numbers: NaN is not, an infinity is too large once cast).
    """
    high = 0
    if y.dtype == bool:
        y = y.astype(np.intp)
    elif y.size:
        if y.dtype.kind == "f" or _sources.dtype_name(y) == "bfloat16":
            if not (np.floor(y) == y).all():
                return None
        high = y.max()
        if not high < limit:
            return None
    if y.dtype.kind not in "biu" or y.dtype == np.uint64:
        with np.errstate(invalid="ignore"):  # -inf: negative once cast
            y = y.astype(np.int64)
    size = num_classes or (int(high) + 1 if y.size else 0)
    try:
        return np.bincount(y, weights=w, minlength=max(size, 0))
    except ValueError:  # a negative id
        return None


def _invalid_ids(y, limit):
    if y.dtype.kind in "iu":
        return (y < 0) | (y >= limit)
    y = y.astype(np.float64)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(y) | (y != np.floor(y)) | (y < 0) | (y >= limit)


def _dense_counts(plan, y, w):
    """Rows `[n, C]`: `(code, bad, rows, counts)`, the known positives.

    Every entry must be 0, 1 or the ignored value: as these are disjoint,
    that holds exactly when their numbers add up to the number of entries
    (three comparisons and three counts, no mask combined), and only then
    is the offending value looked for. NaN and infinities equal none.
    """
    ignore = _representable(plan.ignore_class, _sources.dtype_name(y))
    if ignore in (0, 1):  # a 0 or a 1 marked unknown: the general masks
        return _dense_counts_masked(y, w, ignore)
    ones = y if y.dtype == bool else y == 1
    unknown = None if ignore is None else y == ignore
    unknowns = 0 if unknown is None else np.count_nonzero(unknown)
    if y.dtype != bool:
        valid = np.count_nonzero(ones) + np.count_nonzero(y == 0) + unknowns
        if valid != y.size:
            return _first_bad_entry(y, unknown)
    # "rows" only tells whether anything was counted: the known entries.
    return _Code.OK, None, y.size - unknowns, _column_counts(ones, w)


def _dense_counts_masked(y, w, ignore):
    keep = y != ignore
    if y.dtype != bool:
        invalid = (y != 0) & (y != 1) & keep
        if invalid.any():
            return _first_bad_entry(y, ~keep)
    positives = (y == 1) & keep
    return _Code.OK, None, np.count_nonzero(keep), _column_counts(positives, w)


def _first_bad_entry(y, unknown):
    invalid = (y != 0) & (y != 1)
    if unknown is not None:
        invalid &= ~unknown
    value = float(y[invalid][0])
    return _Code.BAD_DENSE, np.array([value, 0.0]), 0, None


def _column_counts(positives, w):
    if w is None:
        return np.count_nonzero(positives, axis=0)
    with np.errstate(invalid="ignore"):  # 0 * inf: NaN, reported as such
        return w.astype(np.float64) @ positives.astype(np.float64)


# Progress, warnings and the errors that every loop reports.


class _Progress:
    """The optional Keras progress bar of a count, in elements (batches).

    `verbose=1` or `2` shows it from the start; `"auto"` once the count has
    run for `_AUTO_BAR_AFTER_S`, where `auto` allows it.
    """

    def __init__(self, verbose, total, auto=True):
        self._verbose = verbose if (verbose != "auto" or auto) else 0
        self._total = total
        self._start = time.perf_counter()
        self._bar = None
        if verbose in (1, 2):
            self._bar = keras.utils.Progbar(
                total, verbose=verbose, unit_name="step"
            )
        # Whether `update` can show anything (callers may skip it if not).
        self.active = self._verbose != 0

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
            f"Counted labels of shape {_shape_text(plan.shape)} as batches "
            "of class ids, and found only classes 0 and 1. If each element "
            "is one unbatched one-hot or multi-hot row, pass `sparse=False` "
            "(or batch the dataset first).",
            UserWarning,
            stacklevel=4,
        )


def _format_number(value):
    if np.isfinite(value) and value == np.floor(value) and abs(value) < 2**63:
        return str(int(value))
    # Labels are often float32: 7 significant digits show 0.9, not 0.8999...
    return format(float(value), ".7g")


def _invalid_error(plan, code, bad):
    """The error for what a check found (`bad`: the offending value(s))."""
    value = _format_number(bad[0])
    if code == _Code.BAD_SPARSE:
        return _bad_sparse_error(plan, value, float(bad[0]))
    if code == _Code.BAD_DENSE:
        return ValueError(_bad_dense_message(plan, value, float(bad[0])))
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


def _bad_dense_message(plan, value, number):
    ignored = ""
    if plan.ignore_class is not None:
        ignored = (
            f" (entries equal to `ignore_class={plan.ignore_class}` are "
            "unknown and skipped)"
        )
    ids = (
        " If these are class ids (e.g. per-token ids [B, T]), pass "
        "`sparse=True`."
    )
    soft = (
        " Soft labels (label smoothing, mixup) have no class counts: count "
        "the labels before they are mixed, e.g. from a labels-only dataset."
    )
    whole = np.isfinite(number) and number == np.floor(number)
    if whole and number >= 2:
        # Most likely class ids: the advice that fits comes first.
        advice = ids
    elif whole and plan.ignore_class is None:
        # Multi-hot rows with unknown entries and padded class ids look
        # alike: each gets its complete fix (ignore_class alone would count
        # padded ids as rows).
        advice = (
            " If such entries mark unknown labels in multi-hot rows (e.g. -1 "
            f"in multi-task targets), pass `ignore_class={value}` (as to the "
            "losses) so that they are skipped. If these are class ids padded "
            f"with {value} (e.g. per-token ids [B, T]), pass `sparse=True, "
            f"ignore_class={value}`."
        )
    else:
        advice = soft + ids
    return (
        "Invalid label in the dataset. Expected one-hot or multi-hot rows "
        f"of 0s and 1s (labels of shape {_shape_text(plan.shape)}, read as "
        f"{plan.num_classes} classes){ignored}. Received a value of "
        f"{value}.{advice}"
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
        f"label of {value} (labels of shape {_shape_text(plan.shape)}). Fix "
        "the labels or pass the right `num_classes`: `tf.math.bincount` "
        "would silently drop labels >= num_classes, and a loss cannot "
        f"weight them.{ignore}",
        label,
    )
