"""Every use of a private or backend-internal API, in one place (private).

Each function wraps one thing that Keras, TensorFlow, JAX or PyTorch does
not promise to keep. `tests/test_compat.py` checks each of them, so an
upgrade that moves one fails there with a message naming it, instead of
deep inside a loss or a callback.
"""

import sys

import keras


def in_symbolic_scope():
    """Whether Keras is evaluating the loss for shapes only.

    Keras exports the `SymbolicScope` context manager but not its query
    (`keras.src.backend.common.symbolic_scope.in_symbolic_scope`). The JAX
    trainer runs the loss inside that scope before any callback runs, so a
    loss still waiting for `ClassCounter` must get through it.
    """
    scope_module = sys.modules.get(keras.SymbolicScope.__module__)
    query = getattr(scope_module, "in_symbolic_scope", None)
    return bool(query is not None and query())


def symbolic_scope_query_available():
    """Whether `in_symbolic_scope` can see Keras' scope (for the tests)."""
    scope_module = sys.modules.get(keras.SymbolicScope.__module__)
    return callable(getattr(scope_module, "in_symbolic_scope", None))


def executing_eagerly(x):
    """Whether `x` holds concrete values that can be inspected on the host.

    TensorFlow: `tf.executing_eagerly()`; JAX: `x` is not a `jax.core.Tracer`;
    PyTorch: not inside `torch.compile` (`torch.compiler.is_compiling`).
    """
    if isinstance(x, keras.KerasTensor):
        return False
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "torch":
        import torch

        return not torch.compiler.is_compiling()
    return backend == "numpy"


def rebuild_step_functions(model):
    """Makes the next train/test step retrace with the losses' new weights.

    `Model.make_train_function(force=True)` / `make_test_function(force=True)`
    are public methods, but `force` is an undocumented argument that `fit`
    relies on. Returns the new `(train_function, test_function)`.
    """
    model.make_train_function(force=True)
    model.make_test_function(force=True)
    return model.train_function, model.test_function


def clear_jax_traces(model):
    """Drops JAX's cached traces of the model's step (JAX + jit only).

    Keras' JAX trainer jits the bound method `model.train_step`; JAX caches
    traces in a weak-keyed cache where bound methods of the same model
    compare equal. While any reference to an old jitted step survives (a
    callback that stored `model.train_function`, a traceback), a new
    `jax.jit(model.train_step)` would hit the old trace, with the old class
    weights baked in as constants. `jax.clear_caches()` rules that out at
    the cost of one recompilation.
    """
    if keras.backend.backend() != "jax" or not getattr(
        model, "jit_compile", False
    ):
        return
    import jax

    jax.clear_caches()


def dense_bincount(ids, size, weights):
    """`tf.raw_ops.DenseBincount` of int64 `ids` into `size` bins.

    The raw op counts int64 ids into an int64 (or, with float64 `weights`,
    float64) vector without `tf.math.bincount`'s silent drop of ids >= size
    (the callers check the range first) and without its int32 casts.
    `weights` is an empty int64 tensor for unweighted counts.
    """
    import tensorflow as tf

    return tf.raw_ops.DenseBincount(
        input=ids, size=size, weights=weights, binary_output=False
    )


def set_keras_mask(x, mask):
    """Attaches `mask` to the per-position losses `x`, as Keras' losses do.

    `keras.losses.Loss.__call__` reads the mask of `call()`'s output and,
    with `sum_over_batch_size`, averages over the unmasked positions only;
    Keras' own `sparse_categorical_crossentropy(ignore_class=...)` sets it
    with `keras.src.backend.set_keras_mask`, which Keras does not export.
    """
    from keras.src.backend import set_keras_mask as keras_set_mask

    keras_set_mask(x, mask)


def get_keras_mask(x):
    """The mask that `set_keras_mask` attached to `x`, or `None`."""
    from keras.src.backend import get_keras_mask as keras_get_mask

    return keras_get_mask(x)


def compiled_metric_objects(model):
    """The `metrics` and `weighted_metrics` passed to `model.compile`.

    Returns `(metrics, weighted_metrics)`, each as the user passed it (a
    list, a dict by output name, a list per output, or `None`), holding the
    very objects given, e.g. a class-balanced loss used as a metric, which
    `ClassCounter` must reach. Keras keeps them on the private
    `CompileMetrics` object (`model._compile_metrics._user_metrics` and
    `._user_weighted_metrics`); its public `metrics` property is empty until
    the first train step builds it, which is after `on_train_begin`.
    """
    compiled = getattr(model, "_compile_metrics", None)
    if compiled is None:  # compiled without metrics
        return None, None
    return (
        getattr(compiled, "_user_metrics", None),
        getattr(compiled, "_user_weighted_metrics", None),
    )


def torch_records_gradient():
    """Whether PyTorch is recording operations for autograd (torch only).

    True inside a backward pass run with `create_graph=True` (and in any
    code outside `torch.no_grad()`), where the fused kernel's gradient must
    be built from recorded ops to be differentiable again. Autograd's
    backward runs its functions with recording off otherwise; that it
    switches recording on exactly for `create_graph=True` is PyTorch
    behaviour, not a promise of Keras' `custom_gradient`. False on other
    backends.
    """
    if keras.backend.backend() != "torch":
        return False
    import torch

    return torch.is_grad_enabled()


def num_replicas_in_sync():
    """Replicas of the `tf.distribute` strategy in scope (TensorFlow only).

    1 outside any strategy and on the other backends (JAX's
    `keras.distribution` runs one global program: a metric's update sees
    the whole batch there). Reads `tf.distribute.get_strategy()`.
    """
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def replica_id_in_sync_group():
    """The current replica's index under `tf.distribute` (TensorFlow only).

    Inside `strategy.run` each replica updates its own copy of a metric's
    `"sum"`-aggregated variables; the index (a scalar tensor or int) lets a
    replica write to its own rows of a buffer, so that the sum of the copies
    holds every replica's rows. 0 outside a replica context (no strategy,
    cross-replica code) and on the other backends.
    """
    if keras.backend.backend() != "tensorflow":
        return 0
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None:
        return 0
    return context.replica_id_in_sync_group


def tf_in_xla_context():
    """Whether TensorFlow is tracing code that XLA will compile.

    True inside a `tf.function(jit_compile=True)` (also a nested one, and
    Keras' step with `jit_compile=True`): TensorFlow marks such graphs with
    an `XLAControlFlowContext`, queried by the private
    `tensorflow.python.ops.control_flow_util.GraphOrParentsInXlaContext`
    (what `tf.function` itself asks). TensorFlow only.
    """
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph()
    )
