"""The data sources that counting reads, told apart as `fit` tells them apart.

`fit` trains from NumPy arrays (or tensors), a `tf.data.Dataset`, a
`keras.utils.PyDataset`, a PyTorch `DataLoader`, a grain dataset or loader,
and Python generators. Keras' data adapters
(`keras/src/trainers/data_adapters/__init__.py`) choose among them by type,
recognising TensorFlow, PyTorch and grain objects by the names of their
classes, so that none of those libraries is imported just to ask. This
module does the same for counting (private):

- `source_kind` names the kind of a source, or returns None;
- `batches` turns every kind but `tf.data` (which `counting.py` counts in
  graph) into a `Batches`: the number of batches, if known, and a function
  that returns a fresh iterator over them;
- `to_numpy` and `label_spec` turn one batch's labels into a NumPy array and
  the `LabelSpec` that the shared checks and the label plan read.

Nothing here imports TensorFlow, PyTorch or grain.
"""

import collections.abc
import dataclasses
import itertools
import numbers
import sys
import typing

import keras
import numpy as np

TF_DATA = "tf.data.Dataset"
ARRAYS = "arrays"
PY_DATASET = "keras.utils.PyDataset"
TORCH = "torch DataLoader"
GRAIN = "grain dataset"
ITERABLE = "iterable of batches"
CALLABLE = "callable returning batches"
ITERATOR = "one-shot iterator"  # refused: counting would consume it

# `Batches.length` of a source that never ends (grain's `repeat()` reports
# `sys.maxsize`; a `PyDataset` whose `num_batches` is None).
INFINITE = -1


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """What the checks and the plan need to know about the labels.

    Built from a `tf.data` element spec or from a batch's NumPy array, so
    that every source goes through the same checks and messages. (A
    dataclass, not a tuple: a tuple of labels is a structure to refuse.)
    """

    shape: typing.Optional[tuple]  # None: unknown rank; None entries: unknown
    dtype: str  # "int64", "float32", "bool", "string", "object", ...
    kind: str  # "dense", "ragged", "sparse" or "other"
    origin: str = "numpy"  # "tf" for a tf.data element spec
    text: typing.Optional[str] = None  # how messages show the labels

    def shown(self):
        if self.text is not None:
            return self.text
        return f"an array of shape {self.shape} and dtype {self.dtype}"


class Batches(typing.NamedTuple):
    """A source other than `tf.data`, as counting reads it."""

    kind: str
    length: typing.Optional[int]  # batches; None unknown; INFINITE
    iterate: typing.Callable  # () -> a fresh iterator over raw batches


# Recognising the kinds (by class names, as Keras' adapters do).


def _mro(x):
    return [(c.__name__, str(c.__module__)) for c in type(x).__mro__]


def is_tf_dataset(x):
    return any(
        name == "DatasetV2" and module.startswith("tensorflow.python.")
        for name, module in _mro(x)
    )


def _is_torch_dataloader(x):
    return any(
        name == "DataLoader" and module.startswith("torch.utils.data")
        for name, module in _mro(x)
    )


def _is_grain(x):
    return any(
        name in ("MapDataset", "IterDataset", "DataLoader")
        and module.split(".")[0] == "grain"
        for name, module in _mro(x)
    )


def _tf_composite(x):
    """ "ragged" / "sparse" for a TensorFlow RaggedTensor / SparseTensor."""
    cls = type(x)
    if str(cls.__module__).startswith("tensorflow.python."):
        return {"RaggedTensor": "ragged", "SparseTensor": "sparse"}.get(
            cls.__name__
        )
    return None


def is_array_like(x):
    return (
        isinstance(x, (np.ndarray, np.generic))
        or hasattr(x, "__array__")
        or _tf_composite(x) is not None
    )


def _is_number(x):
    return isinstance(x, (numbers.Number, np.generic)) and not isinstance(
        x, (str, bytes)
    )


def _leaves(structure):
    if isinstance(structure, dict):
        return [v for value in structure.values() for v in _leaves(value)]
    if isinstance(structure, (list, tuple)):
        return [v for value in structure for v in _leaves(value)]
    return [structure]


def source_kind(x):
    """The kind of source `x` is (one of the constants above), or None."""
    if x is None or isinstance(x, (str, bytes, dict)):
        return None
    if is_tf_dataset(x):
        return TF_DATA
    if isinstance(x, keras.utils.PyDataset):
        return PY_DATASET
    if _is_torch_dataloader(x):
        return TORCH
    if _is_grain(x):
        return GRAIN
    if is_array_like(x):
        return ARRAYS
    if isinstance(x, (list, tuple)) and x and all(map(_is_number, x)):
        return ARRAYS  # labels as a Python sequence of numbers
    if isinstance(x, tuple):
        # `(x, y)` / `(x, y, sample_weight)` arrays, as `fit(x, y)` takes.
        leaves = _leaves(x)
        if leaves and all(v is None or is_array_like(v) for v in leaves):
            return ARRAYS
        return None
    if isinstance(x, collections.abc.Iterator):
        return ITERATOR
    if isinstance(x, collections.abc.Iterable):
        return ITERABLE
    if callable(x) and not isinstance(x, type):
        return CALLABLE
    return None


# Iterating them.


def _length(x):
    try:
        length = len(x)
    except (TypeError, NotImplementedError):
        return None
    return INFINITE if length >= sys.maxsize else int(length)


def _py_dataset_length(dataset):
    try:
        length = dataset.num_batches
    except NotImplementedError:
        return INFINITE
    return INFINITE if length is None else int(length)


def _py_dataset_batches(dataset, length):
    """Reads `dataset[i]` in order, as `fit` does without workers."""

    def iterate():
        indices = range(length) if length != INFINITE else itertools.count()
        return (dataset[i] for i in indices)

    return iterate


def _call_for_iterator(make):
    def iterate():
        batches = make()
        if not isinstance(batches, collections.abc.Iterable) or isinstance(
            batches, (str, bytes, dict)
        ):
            raise TypeError(
                "Invalid type for argument `dataset`: the callable must "
                "return an iterator (or iterable) of batches, e.g. "
                "`lambda: make_batches()`. Received a callable returning "
                f"{type(batches).__name__}."
            )
        return iter(batches)

    return iterate


def batches(source, kind):
    """The `Batches` of a source of `kind` (not `TF_DATA` or `ITERATOR`).

    Arrays are one batch: `fit` slices them, but counting needs no batches.
    """
    if kind == ARRAYS:
        if isinstance(source, (list, tuple)) and all(map(_is_number, source)):
            source = np.asarray(source)
        return Batches(kind, 1, lambda: iter([source]))
    if kind == PY_DATASET:
        length = _py_dataset_length(source)
        return Batches(kind, length, _py_dataset_batches(source, length))
    if kind == CALLABLE:
        return Batches(kind, None, _call_for_iterator(source))
    # A torch DataLoader, a grain dataset or loader, any other re-iterable.
    return Batches(kind, _length(source), lambda: iter(source))


# One batch's labels, in NumPy.


def _is_torch_tensor(x):
    return any(
        name == "Tensor" and module.split(".")[0] == "torch"
        for name, module in _mro(x)
    )


def to_numpy(value):
    """`value` as a NumPy array, or None for ragged or sparse labels.

    Tensors of every backend are converted on the host: PyTorch tensors by
    `.detach().cpu().numpy()` (a view of CPU memory, no copy), the others
    by `np.asarray`. Python lists of unequal lengths are ragged. The way to
    convert is found once per type (finding it costs more than a batch of
    a cheap source).
    """
    convert = _CONVERTERS.get(type(value))
    if convert is None:
        convert = _converter(value)
        _CONVERTERS[type(value)] = convert
    return convert(value)


_CONVERTERS = {np.ndarray: lambda value: value}


def _converter(value):
    if _tf_composite(value) is not None:
        return lambda value: None
    if _is_torch_tensor(value):
        return _torch_to_numpy
    return _asarray


def _torch_to_numpy(value):
    tensor = value.detach().cpu()
    if str(tensor.dtype) == "torch.bfloat16":  # no NumPy equivalent
        tensor = tensor.float()
    return tensor.numpy()


def _asarray(value):
    try:
        return np.asarray(value)
    except ValueError:  # "inhomogeneous shape": lists of unequal lengths
        return None


_DTYPE_NAMES = {}


def dtype_name(array):
    """The name of `array`'s dtype ("string" for NumPy strings), cached:
    `np.dtype.name` costs microseconds, which count once per batch."""
    dtype = array.dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = "string" if dtype.kind in "US" else dtype.name
        _DTYPE_NAMES[dtype] = name
    return name


def label_spec(value, array):
    """The `LabelSpec` of one batch's labels; `array` is `to_numpy(value)`."""
    if array is None:
        kind = _tf_composite(value) or "ragged"
        text = f"{type(value).__name__} {value!r}"[:200]
        return LabelSpec(None, "", kind, text=text)
    return LabelSpec(array.shape, dtype_name(array), "dense")


def describe(element):
    """A short description of a batch for messages, e.g. `(array(shape=(8,
    3), dtype=float32), array(shape=(8,), dtype=int64))`."""
    if isinstance(element, dict):
        return (
            "{"
            + ", ".join(f"{k!r}: {describe(v)}" for k, v in element.items())
            + "}"
        )
    if isinstance(element, (list, tuple)):
        inner = ", ".join(describe(v) for v in element)
        return f"({inner})" if isinstance(element, tuple) else f"[{inner}]"
    shape, dtype = (
        getattr(element, "shape", None),
        getattr(element, "dtype", None),
    )
    if shape is not None and dtype is not None:
        return f"array(shape={tuple(shape)}, dtype={dtype})"
    return repr(element)[:60]
