"""Each private or backend-internal API that `keras_cbloss._compat` wraps.

When a Keras, TensorFlow, JAX or PyTorch upgrade moves one of them, the
test of that wrapper fails here and its message names what moved.
"""

import importlib.util

import keras
import numpy as np
import pytest

from keras_cbloss import _compat

BACKEND = keras.backend.backend()


def test_symbolic_scope_query_is_reachable():
    assert _compat.symbolic_scope_query_available(), (
        "Keras no longer defines `in_symbolic_scope` in the module of "
        f"`keras.SymbolicScope` ({keras.SymbolicScope.__module__}); update "
        "keras_cbloss._compat.in_symbolic_scope"
    )
    assert _compat.in_symbolic_scope() is False
    with keras.SymbolicScope():
        assert _compat.in_symbolic_scope() is True, (
            "keras_cbloss._compat.in_symbolic_scope does not see "
            "keras.SymbolicScope any more"
        )


def test_executing_eagerly_tells_concrete_from_traced_values():
    x = keras.ops.ones((2,))
    assert _compat.executing_eagerly(x) is True
    assert _compat.executing_eagerly(keras.KerasTensor((2,))) is False
    if BACKEND == "tensorflow":
        import tensorflow as tf

        seen = []
        tf.function(lambda t: seen.append(_compat.executing_eagerly(t)))(x)
        assert seen == [False]
    elif BACKEND == "jax":
        import jax

        assert hasattr(jax.core, "Tracer"), "jax.core.Tracer has moved"
        seen = []
        jax.jit(lambda t: seen.append(_compat.executing_eagerly(t)) or t)(x)
        assert seen == [False]
    elif BACKEND == "torch":
        import torch

        assert callable(getattr(torch.compiler, "is_compiling", None)), (
            "torch.compiler.is_compiling has moved"
        )


def test_rebuild_step_functions_makes_new_functions():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    model.make_train_function()
    model.make_test_function()
    old = (model.train_function, model.test_function)
    new = _compat.rebuild_step_functions(model)
    assert new == (model.train_function, model.test_function)
    assert new[0] is not old[0] and new[1] is not old[1], (
        "Model.make_train_function(force=True) no longer rebuilds the step"
    )


@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="JAX is not installed"
)
def test_jax_clear_caches_exists():
    import jax

    assert callable(getattr(jax, "clear_caches", None)), (
        "jax.clear_caches has moved: update keras_cbloss._compat"
    )


def test_clear_jax_traces_is_a_no_op_off_jax_jit():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse", jit_compile=False)
    assert _compat.clear_jax_traces(model) is None


def test_dense_bincount_counts_int64_ids():
    tf = pytest.importorskip("tensorflow")
    ids = tf.constant([0, 2, 2, 1, 2], tf.int64)
    counts = _compat.dense_bincount(
        ids, tf.constant(4, tf.int64), tf.zeros([0], tf.int64)
    )
    np.testing.assert_array_equal(
        counts.numpy(), np.bincount([0, 2, 2, 1, 2], minlength=4)
    )
    weighted = _compat.dense_bincount(
        ids,
        tf.constant(3, tf.int64),
        tf.constant([1.0, 0.5, 0.5, 2.0, 1.0], tf.float64),
    )
    np.testing.assert_allclose(weighted.numpy(), [1.0, 2.0, 2.0])


def test_keras_mask_reaches_loss_reduction():
    # Keras' Loss.__call__ averages over the positions that the mask of
    # call()'s output keeps; keras_cbloss's ignore_class relies on it.
    values = keras.ops.convert_to_tensor(np.array([1.0, 2.0, 6.0], "f4"))
    mask = keras.ops.convert_to_tensor(np.array([True, True, False]))
    _compat.set_keras_mask(values, mask)
    got = _compat.get_keras_mask(values)
    assert got is not None, (
        "keras.src.backend.set_keras_mask no longer attaches a mask; update "
        "keras_cbloss._compat.set_keras_mask"
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(got), [True, True, False]
    )

    class Masked(keras.losses.Loss):
        def call(self, y_true, y_pred):
            out = y_pred * 1.0
            _compat.set_keras_mask(out, mask)
            return out

    mean = keras.ops.convert_to_numpy(Masked()(values, values))
    assert float(mean) == 1.5, (
        "keras.losses.Loss.__call__ no longer reduces over the mask set by "
        "keras_cbloss._compat.set_keras_mask (expected the mean of the "
        f"unmasked values, 1.5; got {float(mean)})"
    )


def test_compiled_metric_objects_are_the_objects_given_to_compile():
    class Probe(keras.metrics.Mean):
        pass

    first, second, weighted = Probe(), Probe(), Probe()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    model.compile(
        "sgd",
        "mse",
        metrics=[first, [second]],
        weighted_metrics={"dense": weighted},
    )
    metrics, weighted_metrics = _compat.compiled_metric_objects(model)
    message = (
        "Keras no longer keeps the metrics passed to `compile` as "
        "`model._compile_metrics._user_metrics` / `._user_weighted_metrics`; "
        "update keras_cbloss._compat.compiled_metric_objects"
    )
    assert metrics is not None and weighted_metrics is not None, message
    assert metrics[0] is first and metrics[1][0] is second, message
    assert weighted_metrics["dense"] is weighted, message
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    plain.compile("sgd", "mse")
    assert _compat.compiled_metric_objects(plain) == (None, None)


def test_torch_records_gradient_follows_autograd_recording():
    if BACKEND != "torch":
        assert _compat.torch_records_gradient() is False
        return
    import torch

    assert _compat.torch_records_gradient() is True
    with torch.no_grad():
        assert _compat.torch_records_gradient() is False, (
            "torch.is_grad_enabled no longer reports torch.no_grad()"
        )
    # Inside a backward pass: recording only with create_graph=True.
    seen = []

    class Probe(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, grad):
            seen.append(_compat.torch_records_gradient())
            return grad

    x = torch.ones(2, requires_grad=True)
    torch.autograd.grad(Probe.apply(x).sum(), x)
    torch.autograd.grad(Probe.apply(x).sum(), x, create_graph=True)
    assert seen == [False, True], (
        "PyTorch's backward no longer records exactly under "
        f"create_graph=True (seen {seen}); update "
        "keras_cbloss._compat.torch_records_gradient"
    )


def test_replica_helpers_outside_and_inside_a_strategy():
    from keras_cbloss._compat import num_replicas_in_sync
    from keras_cbloss._compat import replica_id_in_sync_group

    assert num_replicas_in_sync() == 1
    assert int(replica_id_in_sync_group()) == 0
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    # One device here; tests/test_metrics.py runs two replicas, where the
    # ids keep their average-precision rows apart.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        assert num_replicas_in_sync() == 1
    ids = strategy.run(lambda: tf.constant(replica_id_in_sync_group()))
    assert int(ids) == 0


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow only")
def test_tf_in_xla_context_sees_jit_compile():
    import tensorflow as tf

    seen = []

    def probe(x):
        seen.append(_compat.tf_in_xla_context())
        return x

    assert _compat.tf_in_xla_context() is False
    tf.function(probe)(tf.ones(2))
    tf.function(probe, jit_compile=True)(tf.ones(2))
    # nested: a plain tf.function called from an XLA-compiled one
    inner = tf.function(probe)
    tf.function(lambda x: inner(x), jit_compile=True)(tf.ones(3))
    assert seen == [False, True, True], (
        "keras_cbloss._compat.tf_in_xla_context no longer sees "
        "tf.function(jit_compile=True): TensorFlow moved "
        "control_flow_util.GraphOrParentsInXlaContext"
    )
