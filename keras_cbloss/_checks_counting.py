"""Argument checks for `count_classes` and `ClassCounter` (private).

Same conventions as `_validation.py`: Keras' wording, `ValueError` for bad
values, `TypeError` for bad types, run eagerly in constructors and public
functions.
"""

import numbers

import numpy as np
import tensorflow as tf

VERBOSE_VALUES = ("auto", 0, 1, 2)
RECOUNT_VALUES = ("never", "epoch")


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not (
        isinstance(value, (bool, np.bool_))
    )


def check_dataset(dataset, name="dataset"):
    """Returns `dataset` if it is a `tf.data.Dataset`, or raises."""
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected a "
            "`tf.data.Dataset` yielding `(x, y)`, `(x, y, sample_weight)` or "
            "labels only. For labels held in a NumPy array, pass "
            "`tf.data.Dataset.from_tensor_slices(y)` (or use "
            "`np.bincount(y, minlength=num_classes)` directly). "
            f"Received: {name}={dataset!r} of type {type(dataset).__name__}"
        )
    return dataset


def check_num_classes(num_classes):
    """Returns `num_classes` as an int >= 1 or None, or raises."""
    if num_classes is None:
        return None
    if not _is_int(num_classes):
        raise TypeError(
            "Invalid type for argument `num_classes`. Expected a positive "
            "integer or None (inferred from the labels). Received: "
            f"num_classes={num_classes!r} of type "
            f"{type(num_classes).__name__}"
        )
    if num_classes < 1:
        raise ValueError(
            "Invalid value for argument `num_classes`. Expected a positive "
            f"integer or None. Received: num_classes={num_classes}"
        )
    return int(num_classes)


def check_steps(steps):
    """Returns `steps` as an int >= 1 or None, or raises."""
    if steps is None:
        return None
    if not _is_int(steps):
        raise TypeError(
            "Invalid type for argument `steps`. Expected a positive integer "
            "(the number of dataset elements, i.e. batches, to read) or "
            f"None. Received: steps={steps!r} of type {type(steps).__name__}"
        )
    if steps < 1:
        raise ValueError(
            "Invalid value for argument `steps`. Expected a positive integer "
            f"or None. Received: steps={steps}"
        )
    return int(steps)


def check_verbose(verbose):
    """Returns `verbose` if it is "auto", 0, 1 or 2, or raises."""
    if isinstance(verbose, str):
        if verbose == "auto":
            return verbose
    elif _is_int(verbose) and int(verbose) in (0, 1, 2):
        return int(verbose)
    raise ValueError(
        "Invalid value for argument `verbose`. Expected one of "
        f"{list(VERBOSE_VALUES)}: 0 is silent, 1 shows a progress bar, 2 one "
        "line when done, 'auto' a bar only for long counts. Received: "
        f"verbose={verbose!r}"
    )


def check_label_fn(label_fn):
    """Returns `label_fn` if it is callable or None, or raises."""
    if label_fn is not None and not callable(label_fn):
        raise TypeError(
            "Invalid type for argument `label_fn`. Expected a function that "
            "maps a dataset element to its labels, called like a "
            "`Dataset.map` function (e.g. `lambda x, y: y['class']`), or "
            f"None. Received: label_fn={label_fn!r}"
        )
    return label_fn


def check_recount(recount):
    """Returns `recount` if it is "never" or "epoch", or raises."""
    if recount not in RECOUNT_VALUES:
        raise ValueError(
            "Invalid value for argument `recount`. Expected one of "
            f"{list(RECOUNT_VALUES)}: 'never' counts once at the start of "
            "`fit`, 'epoch' counts again at the start of every epoch. "
            f"Received: recount={recount!r}"
        )
    return recount


def check_outputs(outputs):
    """Returns `outputs` as a tuple of output names or None, or raises."""
    if outputs is None:
        return None
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, (list, tuple)) or not all(
        isinstance(name, str) for name in outputs
    ):
        raise TypeError(
            "Invalid type for argument `outputs`. Expected an output name or "
            "a list of output names (the keys of the model's loss dict, or "
            f"`model.output_names`). Received: outputs={outputs!r}"
        )
    if not outputs:
        raise ValueError(
            "Invalid value for argument `outputs`. Expected at least one "
            "output name, or None for every output with a class-balanced "
            f"loss. Received: outputs={outputs!r}"
        )
    return tuple(outputs)
