"""`ClassCounter`: counts the training labels when `fit` starts and hands
the counts to the model's class-balanced losses.

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
"""

import logging
import warnings

import keras
import numpy as np

from keras_cbloss._compat import clear_jax_traces
from keras_cbloss._compat import rebuild_step_functions
from keras_cbloss._validation import check_dataset
from keras_cbloss._validation import check_label_fn
from keras_cbloss._validation import check_num_classes
from keras_cbloss._validation import check_outputs
from keras_cbloss._validation import check_recount
from keras_cbloss._validation import check_beta
from keras_cbloss._validation import check_start_epoch
from keras_cbloss._validation import check_steps
from keras_cbloss._validation import check_verbose
from keras_cbloss.counting import count_classes

_logger = logging.getLogger("keras_cbloss")


class ClassCounter(keras.callbacks.Callback):
    """Counts the labels at the start of `fit` and sets the CB losses' counts.

    At `on_train_begin` the callback counts the classes of `dataset` with
    `count_classes` (one in-graph pass) and calls `set_class_counts` on
    every class-balanced loss of the model: a single loss, each loss of a
    list, or each loss of a dict keyed by output name (all of them, or the
    outputs named in `outputs`). Losses without `set_class_counts` (plain
    Keras losses on other outputs) are left alone. It then rebuilds the
    model's train and test functions, so the very first train step, the
    validation at the end of each epoch, and later `evaluate` calls use
    the new class weights. The counts are kept in the losses' configs, so a
    model saved after training loads with them.

    With `recount="epoch"` it counts again at the start of every later epoch
    (for pipelines whose sampling changes from epoch to epoch) and rebuilds
    the functions when the counts changed.

    Build the losses with `class_counts=None` (their default): they wait
    for the callback, and raise a clear error if they are called for real
    before any counts are set.

    When `num_classes` is `None`, the number of classes is taken from the
    model's output (the last dimension of the outputs whose losses get the
    counts) when the model has static output shapes, so classes absent from
    the data still get a count of 0; otherwise `count_classes` infers it
    from the labels.

    Several outputs with different label sets need one `ClassCounter` each,
    with `label_fn` selecting the output's labels and `outputs` naming it.

    Args:
        dataset: A `tf.data.Dataset` of the training data (or of its labels
            only, which is much faster when the training pipeline decodes
            images: see `count_classes`). Usually the dataset passed to
            `fit`. Must be finite, or `steps` must be given.
        num_classes: Positive int, or `None` (default) to take it from the
            model's output width, else infer it from the labels.
        label_fn: Optional function mapping a dataset element to the labels
            to count, called like a `Dataset.map` function (e.g.
            `lambda x, y: y["class_output"]`). Defaults to `None` (the `y` of
            `(x, y)` or `(x, y, sample_weight)`, or the labels of a
            labels-only dataset).
        steps: Optional positive int, the number of dataset elements
            (batches) to count; required for an infinite dataset. Defaults
            to `None` (the whole dataset).
        recount: `"never"` (default) counts once per `fit`; `"epoch"` counts
            again at the start of every epoch after the first.
        verbose: `"auto"` (default), 0, 1 or 2. 0 is silent. Otherwise the
            callback prints the counts and the resulting class weights of
            each loss after counting, and `count_classes` shows its progress
            bar (1), one line (2), or a bar only for long counts (`"auto"`).
            `"auto"` is silent when `fit` runs with `verbose=0`.
        outputs: Optional output name or list of output names whose losses
            get the counts (keys of the model's loss dict, or
            `model.output_names` for a list of losses). Defaults to `None`:
            every output with a class-balanced loss.

    Attributes:
        counts: The last counts, a NumPy array (int64), or `None` before
            the first count.

    Raises:
        TypeError: If `dataset` is not a `tf.data.Dataset`, or an argument
            has the wrong type.
        ValueError: For invalid argument values; at the start of training,
            if the model has no class-balanced loss (among `outputs`), if
            `outputs` names an unknown output, or if `num_classes` differs
            from the width of the model's output; plus the errors of
            `count_classes`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from keras_cbloss import CBSoftmaxLoss, ClassCounter
    >>> x = np.random.default_rng(0).normal(size=(60, 4)).astype("float32")
    >>> y = np.repeat([0, 1, 2], [40, 15, 5])
    >>> train = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> loss = CBSoftmaxLoss(beta=0.99, from_logits=True)
    >>> model.compile("sgd", loss=loss)
    >>> counter = ClassCounter(train, verbose=0)
    >>> _ = model.fit(train, callbacks=[counter], verbose=0, shuffle=False)
    >>> counter.counts
    array([40, 15,  5])
    >>> np.round(loss.class_weights, 3)
    array([0.296, 0.701, 2.002])
    """

    def __init__(
        self,
        dataset,
        num_classes=None,
        *,
        label_fn=None,
        steps=None,
        recount="never",
        verbose="auto",
        outputs=None,
    ):
        super().__init__()
        self.dataset = check_dataset(dataset)
        self.num_classes = check_num_classes(num_classes)
        self.label_fn = check_label_fn(label_fn)
        self.steps = check_steps(steps)
        self.recount = check_recount(recount)
        self.verbose = check_verbose(verbose)
        self.outputs = check_outputs(outputs)
        self.counts = None
        self._targets = []
        self._skip_epoch_count = False
        self._made = (None, None)  # the functions this callback last made

    def on_train_begin(self, logs=None):
        self._targets = self._find_targets()
        num_classes = self._num_classes()
        counts = self._count(num_classes)
        self._apply(counts, force=not self._functions_are_current(counts))
        self._skip_epoch_count = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._skip_epoch_count:  # counted by on_train_begin just now
            self._skip_epoch_count = False
            return
        if self.recount != "epoch":
            return
        counts = self._count(self._num_classes())
        self._apply(counts, force=not self._functions_are_current(counts))

    # Steps of a count.

    def _count(self, num_classes):
        return count_classes(
            self.dataset,
            num_classes,
            label_fn=self.label_fn,
            steps=self.steps,
            verbose=self._count_verbose(),
        )

    def _apply(self, counts, force):
        had_counts = any(
            loss.class_counts is not None for _, loss in self._targets
        )
        for _, loss in self._targets:
            loss.set_class_counts(counts)
        self.counts = counts
        if force:
            if had_counts:
                clear_jax_traces(self.model)
            self._made = rebuild_step_functions(self.model)
        if self._logs_enabled():
            self._log_counts(counts)

    def _functions_are_current(self, counts):
        """Whether the model's functions were built by this callback with
        these very counts (then a rebuild, i.e. a retrace, is not needed)."""
        if self.counts is None or not np.array_equal(counts, self.counts):
            return False
        made_train, made_test = self._made
        if (
            self.model.train_function is not made_train
            or self.model.test_function is not made_test
            or made_train is None
        ):
            return False
        return all(
            loss.class_counts is not None
            and np.array_equal(loss.class_counts, counts)
            for _, loss in self._targets
        )

    # Finding the losses.

    def _find_targets(self):
        """The `(output name, loss)` pairs that get the counts."""
        model = self.model
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                "`ClassCounter` needs a compiled model with a class-balanced "
                "loss. Call `model.compile(loss=CBSoftmaxLoss(), ...)` (or "
                "`CBSigmoidLoss`, `CBFocalLoss`) before `fit`."
            )
        output_names = list(getattr(model, "output_names", None) or [])
        if isinstance(loss, dict):
            pairs = list(loss.items())
        elif isinstance(loss, (list, tuple)):
            names = (
                output_names
                if len(output_names) == len(loss)
                else [f"output_{i}" for i in range(len(loss))]
            )
            pairs = list(zip(names, loss))
        else:
            # One loss for every output: the same object serves them all.
            pairs = [(name, loss) for name in output_names] or [(None, loss)]
        available = [name for name, _ in pairs]
        if self.outputs is not None and available == [None]:
            raise ValueError(
                "Invalid value for argument `outputs` of `ClassCounter`: "
                "the model has a single unnamed output (e.g. a "
                "`keras.Sequential` model), whose loss gets the counts. "
                f"Leave `outputs=None`. Received: outputs={list(self.outputs)}"
            )
        if self.outputs is not None:
            unknown = [n for n in self.outputs if n not in available]
            if unknown:
                raise ValueError(
                    "Invalid value for argument `outputs` of `ClassCounter`: "
                    f"the model has no loss for outputs {unknown}. Expected "
                    f"names among {available}. Received: "
                    f"outputs={list(self.outputs)}"
                )
            pairs = [(n, l) for n, l in pairs if n in self.outputs]
            plain = [n for n, l in pairs if not _is_class_balanced(l)]
            if plain:
                raise ValueError(
                    f"`ClassCounter(outputs={list(self.outputs)})`: the "
                    f"losses of outputs {plain} are not class-balanced "
                    "losses (they have no `set_class_counts`). Name only "
                    "outputs compiled with CBSoftmaxLoss, CBSigmoidLoss, "
                    "CBFocalLoss or LogitAdjustedLoss."
                )
        pairs = [(n, l) for n, l in pairs if _is_class_balanced(l)]
        if not pairs:
            raise ValueError(
                "`ClassCounter` found no class-balanced loss in the model "
                f"(losses: {_describe(loss)}). Compile the model with "
                "CBSoftmaxLoss, CBSigmoidLoss, CBFocalLoss or "
                "LogitAdjustedLoss, built with "
                "`class_counts=None` so that they wait for the counts."
            )
        return pairs

    def _num_classes(self):
        """`num_classes`, else the targeted outputs' width, else None."""
        widths = _output_widths(self.model)
        known = {
            name: widths[name]
            for name, _ in self._targets
            if widths.get(name) is not None
        }
        if self.num_classes is not None:
            wrong = {n: w for n, w in known.items() if w != self.num_classes}
            if wrong:
                raise ValueError(
                    "Invalid value for argument `num_classes` of "
                    f"`ClassCounter`: the outputs {wrong} (name: width) "
                    "have a different number of classes. Received: "
                    f"num_classes={self.num_classes}"
                )
            return self.num_classes
        if len(set(known.values())) > 1:
            raise ValueError(
                "`ClassCounter` would give one count vector to outputs of "
                f"different widths {known} (name: width). Use one "
                "`ClassCounter` per output, with `outputs=` naming it and "
                "`label_fn` selecting its labels."
            )
        return next(iter(known.values()), None)

    # Logging.

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

    def _log_counts(self, counts):
        total = counts.sum()
        lines = [
            f"ClassCounter: {total:g} labels in {counts.size} classes, from "
            f"{counts.min():g} (class {int(np.argmin(counts))}) to "
            f"{counts.max():g} (class {int(np.argmax(counts))}); counts: "
            + _short(counts)
        ]
        for name, loss in self._targets:
            where = f" (output '{name}')" if name is not None else ""
            lines.append(f"ClassCounter: {_derived(loss)}{where}")
        for line in lines:
            if keras.config.is_interactive_logging_enabled():
                print(line, flush=True)
            else:
                _logger.info(line)


def _derived(loss):
    """What a loss made of the counts: class weights, or a log prior."""
    name = getattr(loss, "name", loss)
    log_prior = getattr(loss, "log_prior", None)
    if log_prior is not None:  # LogitAdjustedLoss: no weights
        return (
            f"log prior of {name}, tau={getattr(loss, 'tau', '?')}: "
            + _short(log_prior, precision=4)
        )
    return (
        f"class weights of {name}, beta={getattr(loss, 'beta', '?')}: "
        + _short(loss.class_weights, precision=4)
    )


def _is_class_balanced(loss):
    """Duck typing: a CB loss has `set_class_counts` and `class_weights`.

    `LogitAdjustedLoss` has both too (its `class_weights` is always None).
    """
    return callable(getattr(loss, "set_class_counts", None)) and hasattr(
        loss, "class_weights"
    )


def _describe(loss):
    if isinstance(loss, dict):
        return {k: _describe(v) for k, v in loss.items()}
    if isinstance(loss, (list, tuple)):
        return [_describe(v) for v in loss]
    return getattr(loss, "name", None) or repr(loss)


def _output_widths(model):
    """`{output name: last dimension}` for models with static outputs.

    A `keras.Sequential` model has `outputs` but no `output_names`: its one
    output is keyed `None`, like its loss in `_find_targets`.
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
    widths = {}
    for name, tensor in zip(names, outputs):
        shape = getattr(tensor, "shape", None)
        widths[name] = shape[-1] if shape else None
    return widths


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

    Example:

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
        self.losses = _losses_with_beta(getattr(self.model, "loss", None))
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


def _losses_with_beta(loss):
    """The distinct losses with a `set_beta` method, from a model's `loss`.

    Raises:
        ValueError: If there is none.
    """
    if isinstance(loss, dict):
        candidates = list(loss.values())
    elif isinstance(loss, (list, tuple)):
        candidates = list(loss)
    else:
        candidates = [loss]
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
        loss.set_beta(beta)
        after = loss.class_weights
        if before is not None and not np.array_equal(before, after):
            changed = True
    return changed
