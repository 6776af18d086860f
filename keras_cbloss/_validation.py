"""Argument checks for the weights, losses, counting and callbacks (private).

Messages follow Keras' wording: ``Invalid value for argument `beta`.
Expected a float in [0, 1). Received: beta=1.5``. Bad values raise
`ValueError`, bad types raise `TypeError`; every check runs eagerly, in
constructors and public functions, never only inside traced code.
"""

import numbers

import numpy as np

WEIGHTINGS = ("sample", "class")
VERBOSE_VALUES = ("auto", 0, 1, 2)
RECOUNT_VALUES = ("never", "epoch")


def check_counts(counts, name="class_counts"):
    """Returns `counts` as a 1-D float64 NumPy array, or raises.

    Counts may be fractional (sample-weighted counting gives floats), but
    must be finite and non-negative, and at least one class must be given.
    """
    if isinstance(counts, (str, bytes)) or counts is None:
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected a 1-D sequence "
            f"of per-class sample counts. Received: {name}={counts!r}"
        )
    try:
        array = np.asarray(counts)
    except Exception as e:  # ragged lists and other oddities
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected a 1-D sequence "
            f"of per-class sample counts. Received: {name}={counts!r} ({e})"
        ) from e
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected numbers, one "
            f"count per class. Received: {name}={counts!r} "
            f"(dtype {array.dtype})"
        )
    if array.ndim != 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a 1-D array with "
            f"one count per class. Received an array of shape {array.shape}. "
            "For a [C] count vector stored as [1, C] or [C, 1], pass "
            "`np.ravel(counts)`."
        )
    if array.size == 0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected at least one "
            f"class. Received: {name}={counts!r}"
        )
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected finite counts. "
            f"Received non-finite values at classes "
            f"{np.flatnonzero(bad).tolist()}: {array[bad].tolist()}"
        )
    negative = array < 0
    if negative.any():
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected non-negative "
            f"counts. Received negative values at classes "
            f"{np.flatnonzero(negative).tolist()}: "
            f"{array[negative].tolist()}"
        )
    return array


def _check_real(value, name):
    if isinstance(value, bool) or not isinstance(
        value, (numbers.Real, np.floating, np.integer)
    ):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected a float. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if np.isnan(value):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a number, "
            f"not NaN. Received: {name}={value}"
        )
    return value


def check_beta(beta):
    """Returns `beta` as a float in [0, 1), or raises."""
    beta = _check_real(beta, "beta")
    if not 0.0 <= beta < 1.0:
        raise ValueError(
            "Invalid value for argument `beta`. Expected a float in [0, 1) "
            "(0 turns re-weighting off; values near 1, such as 0.999 or "
            f"0.9999, approach inverse class frequency). Received: "
            f"beta={beta}"
        )
    return beta


def _check_finite_non_negative(value, name, meaning):
    """Returns `value` as a finite float >= 0, or raises; `meaning` says
    what its values do, in the message."""
    value = _check_real(value, name)
    if not 0.0 <= value < np.inf:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a finite float "
            f">= 0 ({meaning}). Received: {name}={value}"
        )
    return value


def check_gamma(gamma):
    """Returns `gamma` as a finite float >= 0, or raises."""
    return _check_finite_non_negative(
        gamma, "gamma", "0 gives the plain sigmoid loss"
    )


def check_tau(tau):
    """Returns `tau` as a finite float >= 0, or raises."""
    return _check_finite_non_negative(
        tau, "tau", "0 gives plain cross-entropy, 1 the balanced softmax"
    )


def check_weighting(weighting):
    """Returns `weighting` if it is one of `WEIGHTINGS`, or raises."""
    if weighting not in WEIGHTINGS:
        raise ValueError(
            "Invalid value for argument `weighting`. Expected one of "
            f"{list(WEIGHTINGS)}: 'sample' weights every binary term of a "
            "sample by its label's class weight (the paper), 'class' weights "
            "the binary term of class c by w_c (multi-label data). "
            f"Received: weighting={weighting!r}"
        )
    return weighting


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected True or False. "
            f"Received: {name}={value!r}"
        )
    return bool(value)


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not (
        isinstance(value, (bool, np.bool_))
    )


def check_source(dataset, name="dataset"):
    """Returns the kind of data source `dataset` is, or raises.

    The kinds are those `fit` trains from (see `_sources.source_kind`); a
    one-shot iterator is refused, since counting would use up its batches.
    """
    from keras_cbloss import _sources

    kind = _sources.source_kind(dataset)
    if kind == _sources.ITERATOR:
        raise TypeError(
            f"Invalid type for argument `{name}`. Received a one-shot "
            f"iterator ({type(dataset).__name__}): counting would use up the "
            "batches that `fit` then needs, and a recount would find none. "
            f"Pass a function that returns a fresh iterator, e.g. `{name}="
            "lambda: make_batches()`, or a list of batches."
        )
    if kind is None:
        hint = ""
        if isinstance(dataset, dict):
            hint = (
                " A dict holds a model's inputs: pass `(x, y)`, or the "
                "labels alone."
            )
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected data as `fit` "
            "takes it: NumPy labels (or `(x, y)` / `(x, y, sample_weight)` "
            "arrays), a `tf.data.Dataset`, a `keras.utils.PyDataset`, a "
            "PyTorch `DataLoader`, a grain dataset or loader, a list of "
            "batches, or a function returning a fresh iterator of batches."
            f"{hint} Received: {name}={dataset!r:.200} of type "
            f"{type(dataset).__name__}"
        )
    return kind


def _check_int(value, name, minimum, type_expected, value_expected):
    """Returns `value` as an int >= `minimum`, or raises; the messages say
    "Expected `type_expected`" (TypeError) or "`value_expected`"."""
    if not _is_int(value):
        raise TypeError(
            f"Invalid type for argument `{name}`. Expected {type_expected}. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {value_expected}. "
            f"Received: {name}={value}"
        )
    return int(value)


def check_num_classes(num_classes):
    """Returns `num_classes` as an int >= 1 or None, or raises."""
    if num_classes is None:
        return None
    return _check_int(
        num_classes,
        "num_classes",
        1,
        "a positive integer or None (inferred from the labels)",
        "a positive integer or None",
    )


def check_steps(steps):
    """Returns `steps` as an int >= 1 or None, or raises."""
    if steps is None:
        return None
    return _check_int(
        steps,
        "steps",
        1,
        "a positive integer (the number of dataset elements, i.e. batches, "
        "to read) or None",
        "a positive integer or None",
    )


def check_start_epoch(start_epoch):
    """Returns `start_epoch` as an int >= 0, or raises."""
    return _check_int(
        start_epoch,
        "start_epoch",
        0,
        "a non-negative integer (the 0-based epoch from which the "
        "class-balanced weights apply)",
        "an integer >= 0 (0-based, as Keras counts epochs)",
    )


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
            "maps an element (a batch) to its labels, called with the "
            "element's parts as arguments (e.g. `lambda x, y: y['class']`), "
            f"or None. Received: label_fn={label_fn!r}"
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


def check_sparse(sparse):
    """Returns `sparse` if it is True, False or None, or raises."""
    if sparse is not None and not isinstance(sparse, (bool, np.bool_)):
        raise TypeError(
            "Invalid type for argument `sparse`. Expected True (class ids of "
            "any shape), False (one-hot / multi-hot rows [..., C]) or None "
            f"(inferred from the labels' shape). Received: sparse={sparse!r}"
        )
    return None if sparse is None else bool(sparse)


def check_ignore_class(ignore_class):
    """Returns `ignore_class` as an int or None, or raises."""
    if ignore_class is None:
        return None
    if not _is_int(ignore_class):
        raise TypeError(
            "Invalid type for argument `ignore_class`. Expected an integer "
            "label value to skip (e.g. 255 for void pixels, -1 for padding) "
            f"or None. Received: ignore_class={ignore_class!r} of type "
            f"{type(ignore_class).__name__}"
        )
    return int(ignore_class)


def check_label_spec(spec, where, received=None):
    """Raises unless `spec` describes one dense numeric label tensor.

    `spec` is a `_sources.LabelSpec` (of a `tf.data` element spec or of a
    batch's NumPy array), or a dict / tuple / list of several, which
    `received` (default: a short description) shows in the message.
    """
    if isinstance(spec, (dict, tuple, list)):
        if isinstance(spec, dict):
            names = f" (keys {sorted(spec)})"
            example = f"y[{sorted(spec)[0]!r}]"
        else:
            names, example = "", "y[0]"
        received = received or _structure_text(spec)
        raise ValueError(
            f"Cannot count {where}: they hold several label tensors{names}, "
            "as for a multi-output model. Pass `label_fn` selecting the one "
            f"to count, e.g. `label_fn=lambda x, y: {example}`. "
            f"Received: {received}"
        )
    if spec.kind != "dense":
        if spec.origin == "tf":
            advice = (
                "Convert ragged or sparse labels in `label_fn`: for batches "
                "of class-id lists, `label_fn=lambda y: y.flat_values` (or "
                "`lambda x, y: y.flat_values` for `(x, y)` elements); for "
                "unbatched ones, `label_fn=lambda y: y`, which `Dataset.map` "
                "hands a dense tensor; for sparse tensors, "
                "`tf.sparse.to_dense`."
            )
        else:
            advice = (
                "Return one array of class ids (or of one-hot rows) per "
                "batch, e.g. with `label_fn=lambda x, y: np.concatenate(y)` "
                "for a batch of class-id lists of unequal lengths."
            )
        raise TypeError(
            f"Cannot count {where}: expected a dense tensor of labels. "
            f"Received: {spec.shown()}. {advice}"
        )
    kind = _dtype_kind(spec.dtype)
    if kind not in ("int", "float", "bool"):
        raise TypeError(
            f"Cannot count {where}: expected integer class ids or numeric "
            f"one-hot rows. Received labels of dtype {spec.dtype}. "
            + STRING_LABEL_ADVICE
        )


# Recommended wherever string labels are refused; `num_oov_indices=0`
# matters: with the default of 1, id 0 is the out-of-vocabulary token and
# every class id shifts by one.
STRING_LABEL_ADVICE = (
    "Map string labels to class ids first, e.g. with "
    "`keras.layers.StringLookup(vocabulary=class_names, num_oov_indices=0)` "
    "(`num_oov_indices=0` keeps the ids in [0, C); with the default of 1 "
    "every id is shifted by one)."
)


def _structure_text(structure):
    from keras_cbloss import _sources

    return _sources.describe(structure)


def _dtype_kind(name):
    """ "bool", "int", "float" or "other" for a dtype name."""
    if name == "bool":
        return "bool"
    if name.startswith(("int", "uint")):
        return "int"
    if name.startswith(("float", "bfloat")):
        return "float"
    return "other"


def check_weight_spec(spec, where, received=None):
    """Raises unless `spec` describes a dense numeric tensor of weights."""
    if (
        isinstance(spec, (dict, tuple, list))
        or spec.kind != "dense"
        or _dtype_kind(spec.dtype) not in ("int", "float")
    ):
        if received is None:
            received = (
                _structure_text(spec)
                if isinstance(spec, (dict, tuple, list))
                else spec.shown()
            )
        raise TypeError(
            f"Cannot use {where} as sample weights: expected a numeric dense "
            f"tensor with one weight per sample. Received: {received}. For "
            "multi-output weights, pass a `label_fn` returning "
            "`(labels, sample_weight)`."
        )
