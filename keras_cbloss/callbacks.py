"""`ClassCounter`: counts the training labels when `fit` starts and hands
the counts to the model's class-balanced losses (and metrics).

The losses turn their counts into float64 class weights on the host and use
them inside `call()` as constants, so the weights are frozen into whatever
train or test function was traced with them (on every backend; a
`keras.Variable` would not help on JAX, whose jitted step sees variables
only through its explicit state). After setting new counts the callback
therefore rebuilds the model's train and test functions with
`model.make_train_function(force=True)` and
`model.make_test_function(force=True)`: `fit` reads `model.train_function`
at every step, and validation and `evaluate` read `model.test_function`,
so the next step retraces with the new weights on TensorFlow, JAX and
PyTorch, with or without `jit_compile`.

The callback keeps to its hooks; what it reads from the model (the objects
that take counts, the number of classes, the label form, `ignore_class`)
comes from the small functions below it, each tested on its own. This
module does not import TensorFlow; counting imports it only for a
`tf.data.Dataset`.
"""

import functools
import logging
import typing
import warnings

import keras
import numpy as np

from keras_cbloss._base import _StaleTraceWarning
from keras_cbloss._compat import clear_jax_traces
from keras_cbloss._compat import compiled_metric_objects
from keras_cbloss._compat import get_keras_mask
from keras_cbloss._compat import rebuild_step_functions
from keras_cbloss._validation import check_beta
from keras_cbloss._validation import check_bool
from keras_cbloss._validation import check_ignore_class
from keras_cbloss._validation import check_label_fn
from keras_cbloss._validation import check_num_classes
from keras_cbloss._validation import check_outputs
from keras_cbloss._validation import check_recount
from keras_cbloss._validation import check_source
from keras_cbloss._validation import check_sparse
from keras_cbloss._validation import check_start_epoch
from keras_cbloss._validation import check_steps
from keras_cbloss._validation import check_verbose

_logger = logging.getLogger("keras_cbloss")


class ClassCounter(keras.callbacks.Callback):
    """Counts the labels at the start of `fit` and sets the CB losses' counts.

    Formula:

    ```
    counts = count_classes(dataset, ...)      # n_c over the whole data set
    loss.set_class_counts(counts)   # w_c = (1 - beta) / (1 - beta ** n_c)
    ```

    At `on_train_begin` the callback counts the classes of `dataset` with
    `count_classes` (one pass) and calls `set_class_counts` on
    every class-balanced loss of the model (a single loss, each loss of a
    list, or each loss of a dict keyed by output name: all of them, or the
    outputs named in `outputs`) and on every compiled metric that has
    `set_class_counts` (a CB loss passed in `metrics=[...]`, long-tail
    metrics). Plain Keras losses and metrics are left alone. It then
    rebuilds the model's train and test functions, so the very first train
    step, the validation at the end of each epoch, and later `evaluate`
    calls use the new class weights. The counts are kept in the losses'
    configs, so a model saved after training loads with them.

    With `recount="epoch"` it counts again at the start of every later epoch
    (for pipelines whose sampling changes from epoch to epoch) and rebuilds
    the functions when the counts changed.

    Build the losses with `class_counts=None` (their default): they wait
    for the callback, and raise a clear error if they are called for real
    before any counts are set.

    What the model implies fills in the counting arguments left at `None`:
    `num_classes` is the width of the targeted outputs (2 for a one-unit
    sigmoid head, whose 0/1 labels are the classes {0: negative,
    1: positive}), `sparse` follows from the labels' rank against the
    output's (class ids when the labels have one dimension fewer than the
    output, e.g. per-token ids `[B, T]` for outputs `[B, T, C]`, or a
    trailing 1), and `ignore_class` is the targeted losses' `ignore_class`.

    Counting reads labels, not the model's Keras mask: a tagger whose
    padding is masked by `Embedding(mask_zero=True)` gets the padding's
    labels counted too, unless they equal `ignore_class` or the count is
    weighted (`sample_weighted=True`, with the mask as the weight). Without
    either, the callback warns at the start of training when a targeted
    output carries a mask.

    Several outputs with different label sets need one `ClassCounter` each,
    with `label_fn` selecting the output's labels and `outputs` naming it.

    Args:
        dataset: The training data, as `count_classes` takes it: NumPy
            labels (`ClassCounter(y_train)`), `(x, y)` arrays, a
            `tf.data.Dataset`, a `keras.utils.PyDataset`, a PyTorch
            `DataLoader`, a grain dataset or loader, a list of batches, or a
            function returning a fresh iterator of batches. Usually what is
            passed to `fit`, or its labels alone (much faster when the
            training pipeline decodes images: see `count_classes`). Must be
            finite, or `steps` must be given.
        num_classes: Positive int, or `None` (default) to take it from the
            model's output width, else infer it from the labels.
        label_fn: As for `count_classes`. Defaults to `None`.
        steps: As for `count_classes`. Defaults to `None`.
        sample_weighted: As for `count_classes`. Defaults to `False`.
        sparse: As for `count_classes`, or `None` (default) to take the form
            from the model's output rank and the labels' rank.
        ignore_class: As for `count_classes`, or `None` (default) to take
            the `ignore_class` of the targeted losses.
        verbose: `"auto"` (default), 0, 1 or 2. 0 is silent. Otherwise the
            callback prints the counts and the resulting class weights of
            each loss after counting, and `count_classes` shows its progress
            bar (1), one line (2), or a bar only for long counts (`"auto"`).
            `"auto"` is silent when `fit` runs with `verbose=0`.
        recount: `"never"` (default) counts once per `fit`; `"epoch"` counts
            again at the start of every epoch after the first.
        outputs: Optional output name or list of output names whose losses
            get the counts (keys of the model's loss dict, or
            `model.output_names` for a list of losses). Defaults to `None`:
            every output with a class-balanced loss.

    Attributes:
        counts: The last counts, a NumPy array (int64, or float64 when
            `sample_weighted=True`), or `None` before the first count.

    Raises:
        TypeError: If `dataset` is not a source `count_classes` reads, or an
            argument has the wrong type.
        ValueError: For invalid argument values; at the start of training,
            if the model has no class-balanced loss or metric (among
            `outputs`), if `outputs` names an unknown output, if
            `num_classes` differs from the width of the model's output, or
            if the targeted losses have different `ignore_class` values;
            plus the errors of `count_classes`.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> from keras_cbloss import CBSoftmaxLoss, ClassCounter
        >>> x = np.random.default_rng(0).normal(size=(60, 4)).astype("float32")
        >>> y = np.repeat([0, 1, 2], [40, 15, 5])
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> loss = CBSoftmaxLoss(beta=0.99, from_logits=True)
        >>> model.compile("sgd", loss=loss)
        >>> counter = ClassCounter(y, verbose=0)
        >>> _ = model.fit(x, y, callbacks=[counter], verbose=0)
        >>> counter.counts
        array([40, 15,  5])
        >>> np.round(loss.class_weights, 3)
        array([0.296, 0.701, 2.002])

    References:
        Cui et al., Class-Balanced Loss Based on Effective Number of
        Samples, CVPR 2019 (arXiv:1901.05555).
    """

    def __init__(
        self,
        dataset,
        num_classes=None,
        *,
        label_fn=None,
        steps=None,
        sample_weighted=False,
        sparse=None,
        ignore_class=None,
        verbose="auto",
        recount="never",
        outputs=None,
    ):
        super().__init__()
        self._kind = check_source(dataset)
        self.dataset = dataset
        self.num_classes = check_num_classes(num_classes)
        self.label_fn = check_label_fn(label_fn)
        self.steps = check_steps(steps)
        self.sample_weighted = check_bool(sample_weighted, "sample_weighted")
        self.sparse = check_sparse(sparse)
        self.ignore_class = check_ignore_class(ignore_class)
        self.verbose = check_verbose(verbose)
        self.recount = check_recount(recount)
        self.outputs = check_outputs(outputs)
        self.counts = None
        self._made = (None, None)  # the functions this callback last made

    def on_train_begin(self, logs=None):
        self._targets = _find_targets(self.model, self.outputs)
        self._count_args = self._resolve_count_args()
        self._warn_if_masked()
        self._one_unit = _all_one_unit(self._target_shapes())
        self._epochs_begun = 0
        self._count_and_apply()

    def on_epoch_begin(self, epoch, logs=None):
        self._epochs_begun += 1
        # The first epoch of this fit uses the count of on_train_begin.
        if self.recount == "epoch" and self._epochs_begun > 1:
            self._count_and_apply()

    def _warn_if_masked(self):
        """Warns when a Keras mask hides positions that counting reads.

        The losses and metrics leave the positions masked by the model
        (`Embedding(mask_zero=True)`) out; counting sees labels only, and
        would count the padding's labels, unless they carry `ignore_class`
        or the count is weighted.
        """
        if self._count_args.ignore_class is not None or self.sample_weighted:
            return
        names = {t.name for t in self._targets}
        masked = [
            name
            for name, tensor in _output_tensors(self.model).items()
            if name in names and get_keras_mask(tensor) is not None
        ]
        if masked:
            warnings.warn(_MASKED_OUTPUT_MESSAGE, UserWarning, stacklevel=3)

    def _target_shapes(self):
        """The static shapes of the outputs that take the counts."""
        return [
            shape
            for name, shape in _output_shapes(self.model).items()
            if name in {t.name for t in self._targets}
        ]

    def _resolve_count_args(self):
        """The counting arguments, with the model's implied values."""
        from keras_cbloss.counting import _Args

        losses = [t.obj for t in self._targets if t.is_loss]
        shapes = self._target_shapes()
        sparse = self.sparse
        if sparse is None:
            # Decided from the labels' shape when the count finds them.
            sparse = functools.partial(_implied_label_form, shapes)
        return _Args(
            num_classes=_implied_num_classes(shapes, self.num_classes),
            label_fn=self.label_fn,
            steps=self.steps,
            weighted=self.sample_weighted,
            sparse=sparse,
            ignore_class=_implied_ignore_class(losses, self.ignore_class),
            verbose=self.verbose,
        )

    def _count(self):
        from keras_cbloss.counting import _count
        from keras_cbloss.counting import _InvalidLabelError

        args = self._count_args._replace(verbose=self._count_verbose())
        try:
            return _count(self.dataset, self._kind, args)
        except _InvalidLabelError as error:
            if self._one_unit and error.label >= 2:
                raise ValueError(_one_unit_label_message(error.label)) from (
                    error
                )
            raise

    def _count_and_apply(self):
        counts = self._count()
        current = _functions_are_current(
            self.model, self._made, self.counts, counts, self._targets
        )
        had_counts = any(
            getattr(t.obj, "class_counts", None) is not None
            for t in self._targets
        )
        with warnings.catch_warnings():
            # The step functions are rebuilt just below.
            warnings.simplefilter("ignore", _StaleTraceWarning)
            for target in self._targets:
                target.obj.set_class_counts(counts)
        self.counts = counts
        if not current:
            if had_counts:
                clear_jax_traces(self.model)
            self._made = rebuild_step_functions(self.model)
        if self._logs_enabled():
            _log(counts, self._targets)

    def _fit_verbose(self):
        return (self.params or {}).get("verbose", 1)

    def _logs_enabled(self):
        if self.verbose == "auto":
            return self._fit_verbose() != 0
        return self.verbose != 0

    def _count_verbose(self):
        if self.verbose == "auto" and self._fit_verbose() == 0:
            return 0
        return self.verbose


# What the callback reads from the model: small pure functions.


class _Target(typing.NamedTuple):
    """An object that takes the counts: a CB loss or a compiled metric."""

    name: typing.Optional[str]  # the output name, None when unknown
    obj: typing.Any
    is_loss: bool


def _is_class_balanced(loss):
    """Duck typing: a CB loss has `set_class_counts` and `class_weights`."""
    return callable(getattr(loss, "set_class_counts", None)) and hasattr(
        loss, "class_weights"
    )


def _takes_counts(obj):
    """A compiled metric (or a CB loss used as one) with `set_class_counts`."""
    return callable(getattr(obj, "set_class_counts", None))


def _named_losses(model):
    """`[(output name, loss)]` of a compiled model (`name` None if unnamed)."""
    loss = getattr(model, "loss", None)
    if loss is None:
        raise ValueError(
            "`ClassCounter` needs a compiled model with a class-balanced "
            "loss. Call `model.compile(loss=CBSoftmaxLoss(), ...)` (or "
            "`CBSigmoidLoss`, `CBFocalLoss`, `LogitAdjustedLoss`) before "
            "`fit`."
        )
    output_names = list(getattr(model, "output_names", None) or [])
    if isinstance(loss, dict):
        return list(loss.items())
    if isinstance(loss, (list, tuple)):
        names = (
            output_names
            if len(output_names) == len(loss)
            else [f"output_{i}" for i in range(len(loss))]
        )
        return list(zip(names, loss))
    # One loss for every output: the same object serves them all.
    return [(name, loss) for name in output_names] or [(None, loss)]


def _named_metrics(model):
    """`[(output name, metric)]` of the compiled metrics, as Keras applies
    them: a dict by output name, a list with one entry per output, or (one
    output) all of them on that output."""
    output_names = list(getattr(model, "output_names", None) or []) or [None]
    pairs = []
    for structure in compiled_metric_objects(model):
        if not structure:
            continue
        if isinstance(structure, dict):
            items = structure.items()
        elif len(output_names) > 1 and len(structure) == len(output_names):
            items = zip(output_names, structure)
        else:
            name = output_names[0] if len(output_names) == 1 else None
            items = [(name, structure)]
        for name, metrics in items:
            pairs.extend((name, m) for m in keras.tree.flatten(metrics))
    return pairs


def _find_targets(model, outputs=None):
    """The `_Target`s that get the counts (among `outputs`, if given)."""
    losses = _named_losses(model)
    available = [name for name, _ in losses]
    if outputs is not None:
        _check_outputs_exist(outputs, available)
        plain = [
            n for n, fn in losses if n in outputs and not _is_class_balanced(fn)
        ]
        if plain:
            raise ValueError(
                f"`ClassCounter(outputs={list(outputs)})`: the losses of "
                f"outputs {plain} are not class-balanced losses (they have "
                "no `set_class_counts`). Name only outputs compiled with "
                "CBSoftmaxLoss, CBSigmoidLoss, CBFocalLoss or "
                "LogitAdjustedLoss."
            )
    targets = [
        _Target(name, loss, True)
        for name, loss in losses
        if _is_class_balanced(loss)
    ]
    targets += [
        _Target(name, metric, False)
        for name, metric in _named_metrics(model)
        if _takes_counts(metric)
    ]
    if outputs is not None:
        targets = [t for t in targets if t.name in outputs]
    if not targets:
        raise ValueError(
            "`ClassCounter` found no class-balanced loss in the model "
            f"(losses: {_describe(model.loss)}). Compile the model with "
            "CBSoftmaxLoss, CBSigmoidLoss, CBFocalLoss or LogitAdjustedLoss, "
            "built with `class_counts=None` so that they wait for the counts."
        )
    return targets


def _check_outputs_exist(outputs, available):
    if available == [None]:
        raise ValueError(
            "Invalid value for argument `outputs` of `ClassCounter`: "
            "the model has a single unnamed output (e.g. a "
            "`keras.Sequential` model), whose loss gets the counts. "
            f"Leave `outputs=None`. Received: outputs={list(outputs)}"
        )
    unknown = [n for n in outputs if n not in available]
    if unknown:
        raise ValueError(
            "Invalid value for argument `outputs` of `ClassCounter`: "
            f"the model has no loss for outputs {unknown}. Expected "
            f"names among {available}. Received: outputs={list(outputs)}"
        )


def _output_tensors(model):
    """`{output name: symbolic output}` of a functional or Sequential model.

    A `keras.Sequential` model has `outputs` but no `output_names`: its one
    output is keyed `None`, like its loss in `_named_losses`. Empty for
    subclassed or unbuilt models.
    """
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):  # subclassed, or not built
        return {}
    outputs = keras.tree.flatten(outputs) if outputs is not None else []
    names = list(getattr(model, "output_names", None) or [])
    if not names and len(outputs) == 1:
        names = [None]
    if len(outputs) != len(names):
        return {}
    return dict(zip(names, outputs))


def _output_shapes(model):
    """`{output name: static shape}` for models with static outputs."""
    return {
        name: tuple(getattr(tensor, "shape", None) or ())
        for name, tensor in _output_tensors(model).items()
    }


_MASKED_OUTPUT_MESSAGE = (
    "`ClassCounter`: the model's output carries a Keras mask (e.g. from "
    "`Embedding(mask_zero=True)`). The losses and metrics leave the masked "
    "positions out, but counting reads the labels alone and counts every "
    "position, the padding included (a padding label of 0 counts as class "
    "0). Give the padding a label of its own (e.g. -1, with "
    "`padded_batch(padding_values=...)`) and pass it as `ignore_class` (to "
    "the loss, or to `ClassCounter`), or count with the mask as a sample "
    "weight: `ClassCounter(data, label_fn=lambda x, y: (y, mask of x as "
    'floats), sample_weighted=True)`, e.g. `(x != 0).astype("float32")` '
    "for NumPy token ids. (If the data hold no padded positions, the counts "
    "are right and this warning can be ignored.)"
)


def _implied_num_classes(shapes, num_classes=None):
    """`num_classes`, else the outputs' common width, else None.

    A one-unit output (width 1, a sigmoid binary head) has 2 classes.
    """
    widths = {shape[-1] for shape in shapes if shape and shape[-1]}
    classes = {2 if width == 1 else width for width in widths}
    if num_classes is not None:
        if classes - {num_classes}:
            raise ValueError(
                "Invalid value for argument `num_classes` of "
                f"`ClassCounter`: the model's outputs of widths "
                f"{sorted(widths)} have {sorted(classes)} classes (a "
                "one-unit output has 2). "
                + (
                    _ONE_UNIT_ADVICE + " "
                    if widths == {1} and num_classes > 2
                    else ""
                )
                + f"Received: num_classes={num_classes}"
            )
        return num_classes
    if len(classes) > 1:
        raise ValueError(
            "`ClassCounter` would give one count vector to outputs of "
            f"different widths {sorted(widths)}. Use one `ClassCounter` per "
            "output, with `outputs=` naming it and `label_fn` selecting its "
            "labels."
        )
    return next(iter(classes), None)


def _all_one_unit(shapes):
    """True when every output that takes the counts has one unit."""
    return bool(shapes) and all(shape and shape[-1] == 1 for shape in shapes)


_ONE_UNIT_ADVICE = (
    "For C > 2 classes, the model needs C output units (e.g. `Dense(C)`) "
    "and a loss built for C classes (e.g. `CBFocalLoss(from_logits=True)`, "
    "to which `ClassCounter` gives C counts)."
)


def _one_unit_label_message(label):
    from keras_cbloss.counting import _format_number

    return (
        "Invalid label in the dataset for a one-unit output. Expected 0/1 "
        "labels: a one-unit (sigmoid) output such as `Dense(1)` has 2 "
        "classes, {0: negative, 1: positive}. Received a label of "
        f"{_format_number(label)}. " + _ONE_UNIT_ADVICE
    )


def _implied_label_form(shapes, label_shape):
    """`sparse` for `count_classes`: True (ids), False (rows) or None.

    `label_shape` is a tuple (None entries unknown), or None for an unknown
    rank.

    Class ids when the labels have one dimension fewer than the output,
    even when a static batch size equals the width (ids `[8]` with
    `drop_remainder=True` for a `[None, 8]` output), or the output's rank
    (>= 2) with a trailing 1; one-hot rows when they have the output's rank
    and a wider last dimension. Always class ids (0/1) for a one-unit
    output. None (infer from the labels alone) when the ranks say nothing.
    """
    rank = None if label_shape is None else len(label_shape)
    forms = set()
    for shape in shapes:
        if shape and shape[-1] == 1:
            forms.add(True)
        elif rank is None or not shape:
            forms.add(None)
        elif rank == len(shape) - 1:
            forms.add(True)
        elif rank == len(shape) >= 2 and label_shape[-1] is not None:
            forms.add(label_shape[-1] == 1)
        else:
            forms.add(None)
    return forms.pop() if len(forms) == 1 else None


def _implied_ignore_class(losses, ignore_class=None):
    """`ignore_class`, else the losses' common `ignore_class` (or None)."""
    if ignore_class is not None:
        return ignore_class
    values = {getattr(loss, "ignore_class", None) for loss in losses}
    if len(values) > 1:
        names = {
            getattr(loss, "name", repr(loss)): getattr(
                loss, "ignore_class", None
            )
            for loss in losses
        }
        raise ValueError(
            "`ClassCounter` gives one count vector to losses with different "
            f"`ignore_class` values {names} (loss: ignore_class). Use the "
            "same `ignore_class` in these losses, or one `ClassCounter` per "
            "output (`outputs=`), or pass `ignore_class=` to `ClassCounter`."
        )
    return values.pop() if values else None


def _functions_are_current(model, made, old_counts, counts, targets):
    """Whether the model's train/test functions were made by the callback
    (`made`) with these very counts: then no rebuild (retrace) is needed."""
    if old_counts is None or not np.array_equal(counts, old_counts):
        return False
    made_train, made_test = made
    if (
        made_train is None
        or model.train_function is not made_train
        or model.test_function is not made_test
    ):
        return False
    # Counts set by hand since then (objects that expose their counts).
    return all(
        np.array_equal(target.obj.class_counts, counts)
        for target in targets
        if hasattr(target.obj, "class_counts")
    )


# Logging.


def _log(counts, targets):
    total = counts.sum()
    lines = [
        f"ClassCounter: {total:g} labels in {counts.size} classes, from "
        f"{counts.min():g} (class {int(np.argmin(counts))}) to "
        f"{counts.max():g} (class {int(np.argmax(counts))}); counts: "
        + _short(counts)
    ]
    for target in targets:
        where = f" (output '{target.name}')" if target.name is not None else ""
        name = getattr(target.obj, "name", target.obj)
        weights = getattr(target.obj, "class_weights", None)
        log_prior = getattr(target.obj, "log_prior", None)
        if log_prior is not None:  # LogitAdjustedLoss: a prior, no weights
            lines.append(
                f"ClassCounter: log prior of {name}{where}, "
                f"tau={getattr(target.obj, 'tau', '?')}: "
                + _short(log_prior, precision=4)
            )
            continue
        if weights is None:
            lines.append(f"ClassCounter: counts set on metric {name}{where}")
            continue
        kind = "" if target.is_loss else " (metric)"
        lines.append(
            f"ClassCounter: class weights of {name}{kind}{where}, "
            f"beta={getattr(target.obj, 'beta', '?')}: "
            + _short(weights, precision=4)
        )
    for line in lines:
        if keras.config.is_interactive_logging_enabled():
            print(line, flush=True)
        else:
            _logger.info(line)


def _describe(loss):
    if isinstance(loss, dict):
        return {k: _describe(v) for k, v in loss.items()}
    if isinstance(loss, (list, tuple)):
        return [_describe(v) for v in loss]
    return getattr(loss, "name", None) or repr(loss)


def _short(array, precision=None):
    return np.array2string(
        np.asarray(array),
        precision=precision,
        threshold=24,
        edgeitems=6,
        max_line_width=1000,
        suppress_small=True,
    )


class DeferredReweighting(keras.callbacks.Callback):
    """Deferred re-weighting (DRW): plain loss first, class-balanced later.

    The schedule of Cao et al. (2019): train with the unweighted loss, so
    that the features are learned from the natural class frequencies, and
    switch the class-balanced weights on for the last part of training
    (their CIFAR recipe: beta = 0.9999 from epoch 160 of 200).

    Formula:

    ```
    beta_e = 0      for epochs e < start_epoch   (w_c = 1: the plain loss)
    beta_e = beta   for epochs e >= start_epoch
    w_c    = (1 - beta_e) / (1 - beta_e ** n_c), scaled to sum to C
    ```

    At the start of every epoch the callback sets `beta_e` on every
    class-balanced loss of the model (a single loss, each loss of a list,
    or each loss of a dict; objects with a `set_beta` method; plain Keras
    losses on other outputs are left alone). When that changes the class
    weights, it rebuilds the model's train and test functions, so the
    epoch's train steps, its validation and later `evaluate` calls use the
    new weights on TensorFlow, JAX and PyTorch, with or without
    `jit_compile`; otherwise the traced functions are kept. This happens at
    the first epoch of `fit` if the losses' beta differs from the
    schedule's, and at `start_epoch`.

    Epochs are 0-based, as Keras' callbacks count them, and the schedule
    follows the epoch number: `fit(initial_epoch=k)` resumes with the beta
    of epoch `k`. Beta is kept in the losses' configs, so a model saved
    after the switch loads with `beta` (and one saved before it, with 0).

    Works with `ClassCounter` in the same `fit`, in either order: the
    losses' counts and beta are independent settings, and the weights
    derive from both (`set_beta` before the counts exist only stores beta).

    Args:
        start_epoch: Non-negative int, the first (0-based) epoch trained
            with the class-balanced weights. E.g. 80% of the epoch budget,
            as in Cao et al. (160 of 200).
        beta: Float in [0, 1), the losses' beta from `start_epoch` on.
            Defaults to `0.9999` (Cao et al.).

    Attributes:
        losses: The losses whose beta the callback sets, found at the start
            of each `fit` (an empty list before).

    Raises:
        TypeError: If `start_epoch` is not an integer or `beta` not a
            float.
        ValueError: If `start_epoch < 0` or `beta` is outside [0, 1); at
            the start of training, if the model has no loss with a
            `set_beta` method (`CBSoftmaxLoss`, `CBSigmoidLoss`,
            `CBFocalLoss`).

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> from keras_cbloss import CBSoftmaxLoss, DeferredReweighting
        >>> x = np.random.default_rng(0).normal(size=(60, 4)).astype("float32")
        >>> y = np.repeat([0, 1, 2], [40, 15, 5])
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> loss = CBSoftmaxLoss([40, 15, 5], from_logits=True)
        >>> model.compile("sgd", loss=loss)
        >>> drw = DeferredReweighting(start_epoch=2, beta=0.99)
        >>> betas = []  # the loss's beta in each epoch
        >>> log = keras.callbacks.LambdaCallback(
        ...     on_epoch_end=lambda epoch, logs: betas.append(loss.beta))
        >>> _ = model.fit(x, y, epochs=3, callbacks=[drw, log], verbose=0)
        >>> betas
        [0.0, 0.0, 0.99]
        >>> np.round(loss.class_weights, 3)
        array([0.296, 0.701, 2.002])

    References:
        Cao et al., "Learning Imbalanced Datasets with Label-Distribution-
        Aware Margin Loss", NeurIPS 2019, arXiv:1906.07413 (the DRW
        schedule, Section 3.3).
        Cui et al., "Class-Balanced Loss Based on Effective Number of
        Samples", CVPR 2019, arXiv:1901.05555.
    """

    def __init__(self, start_epoch, beta=0.9999):
        super().__init__()
        self.start_epoch = check_start_epoch(start_epoch)
        self.beta = check_beta(beta)
        self.losses = []

    def on_train_begin(self, logs=None):
        self.losses = _losses_with_beta(self.model)
        epochs = (self.params or {}).get("epochs")
        if epochs is not None and self.start_epoch >= epochs:
            warnings.warn(
                f"`DeferredReweighting(start_epoch={self.start_epoch})` "
                "will not re-weight in this `fit`, which ends after epoch "
                f"{epochs - 1} (epochs are 0-based). Expected if a later "
                "`fit(initial_epoch=...)` resumes the schedule; otherwise "
                f"pass a `start_epoch` below `epochs={epochs}`, e.g. "
                f"{int(0.8 * epochs)} (80% of the epochs, as Cao et al. do).",
                stacklevel=2,
            )

    def on_epoch_begin(self, epoch, logs=None):
        beta = _beta_for_epoch(epoch, self.start_epoch, self.beta)
        if _set_betas(self.losses, beta):
            # Old traces hold the old weights as constants (see ClassCounter).
            clear_jax_traces(self.model)
            rebuild_step_functions(self.model)


def _beta_for_epoch(epoch, start_epoch, beta):
    """The DRW schedule: 0 before `start_epoch`, `beta` from it on."""
    return beta if epoch >= start_epoch else 0.0


def _losses_with_beta(model):
    """The distinct losses with a `set_beta` method of a compiled model.

    Raises:
        ValueError: If there is none.
    """
    loss = getattr(model, "loss", None)
    candidates = [] if loss is None else [fn for _, fn in _named_losses(model)]
    found = []
    for candidate in candidates:
        settable = callable(getattr(candidate, "set_beta", None))
        if settable and not any(candidate is f for f in found):
            found.append(candidate)
    if not found:
        raise ValueError(
            "`DeferredReweighting` found no class-balanced loss in the model "
            f"(losses: {_describe(loss)}). Compile the model with "
            "CBSoftmaxLoss, CBSigmoidLoss or CBFocalLoss (losses with "
            "`set_beta`)."
        )
    return found


def _set_betas(losses, beta):
    """Sets `beta` on every loss; returns whether any class weights changed.

    Losses without counts yet only store beta: nothing was traced with
    weights they do not have.
    """
    changed = False
    for loss in losses:
        before = loss.class_weights
        with warnings.catch_warnings():
            # The caller rebuilds the step functions after a change.
            warnings.simplefilter("ignore", _StaleTraceWarning)
            loss.set_beta(beta)
        after = loss.class_weights
        if before is not None and not np.array_equal(before, after):
            changed = True
    return changed
