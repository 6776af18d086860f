"""Speed of the class-balanced losses next to the Keras losses they extend.

Three measurements, printed as Markdown tables, written to
`benchmarks/results/cpu_BACKEND.md` (the full report) and
`cpu_BACKEND_summary.md` (the tables `docs/performance.md` includes, which
the script then refreshes), and with `--json PATH` as JSON:

1. The loss alone: a compiled forward + backward pass (the loss value and its
   gradient with respect to the logits, as a training step computes them) of
   each CB loss and its Keras counterpart with `sample_weight = w[y]` (the
   class-balanced weight of the true class, computed inside the compiled
   function):

   - `CBSoftmaxLoss` vs `SparseCategoricalCrossentropy` (sparse labels) or
     `CategoricalCrossentropy` (one-hot labels),
   - `CBSigmoidLoss` vs `BinaryCrossentropy`,
   - `CBFocalLoss` vs `BinaryFocalCrossentropy` (and, with `--extra`,
     `CategoricalFocalCrossentropy`), for each gamma of `--gammas`.

   Shapes (1024, 1000), (256, 8142) and per-pixel (8, 128, 128, 19); sparse
   and one-hot labels; float32 logits, and bfloat16 logits with
   `dtype="mixed_bfloat16"` losses (Keras then computes in bfloat16, the CB
   losses in float32 by design). TensorFlow runs `tf.function`, a
   `MirroredStrategy` step over two logical CPUs (what Keras runs under
   `tf.distribute`: no XLA) and `tf.function(jit_compile=True)`; JAX
   `jax.jit`; PyTorch eager (what Keras' PyTorch trainer runs), with the CB
   kernel eager and compiled (`torch.compile`, which it switches to after
   `TORCH_COMPILE_AFTER` calls). Keras' sigmoid and focal losses take dense
   labels only: with sparse labels their input is `one_hot(y)`, built inside
   the compiled function.

2. A whole training step: a small MLP trained with `fit` for a fixed number
   of steps with plain cross-entropy, with each CB loss and with its Keras
   counterpart (given `sample_weight=w[y]`); the ratio of step times.

3. TensorFlow: how often XLA compiles the kernel while a token tagger trains
   on `padded_batch` data of varying lengths (counted from XLA's dump).

All functions of one row are timed in turns (A, B, C, A, B, C, ...) after a
warm-up, so that load from other processes hits them alike; ratios are
medians over turns of the paired ratio. The load average is printed at the
start and the end. Keras picks its backend from `KERAS_BACKEND` when it is
imported, so run one process per backend (about 10 minutes each on an idle
2-core machine):

    python benchmarks/bench_losses.py --backend tensorflow
    python benchmarks/bench_losses.py --backend jax
    python benchmarks/bench_losses.py --backend torch

(`--backend NAME` restarts the script with `KERAS_BACKEND=NAME`.) `--quick`
is a smoke run, not a measurement (seconds; the suite runs it): tiny shapes,
each Keras pair once per mode, one repeat, a linear model fitted for two
steps, and the compile count in this process rather than a fresh one.
"""

import argparse
import atexit
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import sys
import time

import keras
import numpy as np
from keras import ops

import keras_cbloss
from keras_cbloss import _kernels

BACKENDS = ("tensorflow", "jax", "torch")
SHAPES = ((1024, 1000), (256, 8142), (8, 128, 128, 19))
MIRRORED = "MirroredStrategy"
TORCH_COMPILED = "eager, kernel compiled"
DEFAULT_TORCH_COMPILE_AFTER = _kernels.TORCH_COMPILE_AFTER
QUICK_SHAPES = ((8, 10), (2, 4, 4, 3))
# --quick: each Keras pair once per mode; between them both label forms,
# both dtypes and both ranks (and every branch of `keras_fn`).
QUICK_GRID = (
    ("softmax", "sparse", "float32", QUICK_SHAPES[0]),
    ("softmax", "onehot", "mixed_bfloat16", QUICK_SHAPES[1]),
    ("sigmoid", "sparse", "mixed_bfloat16", QUICK_SHAPES[1]),
    ("focal", "onehot", "float32", QUICK_SHAPES[0]),
)
DTYPES = ("float32", "mixed_bfloat16")
LABELS = ("sparse", "onehot")
KINDS = ("softmax", "sigmoid", "focal")
BETA = 0.999
FIT_GAMMA = 2.0  # Keras' default for its focal losses
CB_NAMES = {
    "softmax": "CBSoftmaxLoss",
    "sigmoid": "CBSigmoidLoss",
    "focal": "CBFocalLoss",
}
CB_KEY = "CB"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="restart with KERAS_BACKEND set to this (default: as imported)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny shapes, one case per Keras pair and mode, "
        "1 repeat, a linear model fitted for 2 steps: checks that it "
        "runs (not a measurement)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed samples per function (default 9)",
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="seconds each timed sample lasts at least (default 0.02)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="intra-op threads for TensorFlow and PyTorch (default: all cores)",
    )
    parser.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="statistic over the repeats (default median)",
    )
    parser.add_argument(
        "--filter",
        default="",
        help="only loss-alone cases whose key contains all these "
        "comma-separated words, e.g. 'focal,1024x1000,XLA,g=2'",
    )
    parser.add_argument(
        "--gammas",
        default="0.5,1,2",
        help="comma-separated focal gammas (default 0.5,1,2)",
    )
    parser.add_argument(
        "--extra",
        action="store_true",
        help="also time the unweighted Keras losses and "
        "CategoricalFocalCrossentropy",
    )
    parser.add_argument(
        "--skip-loss", action="store_true", help="skip the loss-alone table"
    )
    parser.add_argument(
        "--skip-fit", action="store_true", help="skip the training-step table"
    )
    parser.add_argument(
        "--fit-steps",
        type=int,
        default=None,
        help="training steps per timed fit (default 40)",
    )
    parser.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="also write every number as JSON to PATH",
    )
    parser.add_argument(
        "--markdown",
        default=None,
        metavar="PATH",
        help="write the report to PATH and its summary to PATH minus .md "
        "plus _summary.md (default: benchmarks/results/cpu_BACKEND.md; "
        "docs/performance.md includes the summaries; --quick writes "
        "nothing unless given)",
    )
    parser.add_argument(
        "--skip-compiles",
        action="store_true",
        help="skip the compile count (TensorFlow)",
    )
    parser.add_argument(
        "--sequence-child", type=int, default=None, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 9
    if args.min_time is None:
        args.min_time = 0.0 if args.quick else 0.02
    if args.fit_steps is None:
        args.fit_steps = 2 if args.quick else 40
    args.gammas = [float(g) for g in args.gammas.split(",") if g]
    return args


# --------------------------------------------------------------------------
# Backend plumbing: compiled value-and-gradient, synchronisation, memory.
# --------------------------------------------------------------------------


class Backend:
    """Compiles `loss_fn(y, z)` into `f(y, z) -> (loss, d loss / d z)`.

    Only the running backend's library is imported (each costs seconds).
    """

    def __init__(self, name, threads):
        self.name = name
        if name == "tensorflow":
            import tensorflow as tf

            # Two logical CPUs for the MirroredStrategy mode (set before
            # TensorFlow initialises; the other modes use the first).
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2
            )
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
            self.lib = tf
            self.modes = ("tf.function", MIRRORED, "tf.function+XLA")
            self.version = f"TensorFlow {tf.__version__}"
            self.strategy = None
        elif name == "jax":
            import jax

            self.lib = jax
            self.modes = ("jax.jit",)
            self.version = f"JAX {jax.__version__}, {jax.devices()[0]}"
        else:
            import torch

            torch.set_num_threads(threads)
            self.lib = torch
            self.modes = ("eager", TORCH_COMPILED)
            self.version = (
                f"PyTorch {torch.__version__}, {torch.get_num_threads()} "
                "threads"
            )

    def compile(self, loss_fn, mode):
        if mode == MIRRORED:
            if self.strategy is None:
                devices = self.lib.config.list_logical_devices("CPU")
                self.strategy = self.lib.distribute.MirroredStrategy(
                    [d.name for d in devices[:2]]
                )
            return TFMirroredStep(self.lib, self.strategy, loss_fn)
        if self.name == "tensorflow":
            return TFStep(self.lib, loss_fn, mode.endswith("XLA"))
        if self.name == "jax":
            return JaxStep(self.lib, loss_fn)
        return TorchStep(self.lib, loss_fn, mode == TORCH_COMPILED)

    def sync(self, out):
        if self.name == "jax":
            self.lib.block_until_ready(out)
        # TensorFlow and PyTorch return finished tensors on the CPU.


class TFStep:
    def __init__(self, tf, loss_fn, jit_compile):
        def step(y, z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = loss_fn(y, z)
            return value, tape.gradient(value, z)

        self.function = tf.function(step, jit_compile=jit_compile)

    def __call__(self, y, z):
        return self.function(y, z)

    def memory(self, y, z):
        """Graph tensors with at least z.size elements; no XLA analysis."""
        graph = self.function.get_concrete_function(y, z).graph
        size = math.prod(z.shape)
        count = 0
        for op in graph.get_operations():
            if op.type in ("Const", "Placeholder", "Identity"):
                continue
            for out in op.outputs:
                n = out.shape.num_elements()
                count += int(n is not None and n >= size)
        return {"graph_tensors": count, "temp_bytes": None}


class TFMirroredStep:
    """One replica step per device of a two-CPU `MirroredStrategy`, each on
    half of the batch, in a `tf.function` (what Keras runs under
    `tf.distribute`: no XLA)."""

    def __init__(self, tf, strategy, loss_fn):
        def replica_step(y, z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = loss_fn(y, z)
            return value, tape.gradient(value, z)

        def step(y, z):
            return strategy.run(replica_step, args=(y, z))

        self.tf, self.strategy = tf, strategy
        self.function = tf.function(step)
        self.inputs = None

    def __call__(self, y, z):
        if self.inputs is None or self.inputs[0] is not z:
            self.inputs = (z, self._split(y), self._split(z))
        return self.function(self.inputs[1], self.inputs[2])

    def _split(self, x):
        halves = self.tf.split(x, 2, axis=0)
        return self.strategy.experimental_distribute_values_from_function(
            lambda context: halves[context.replica_id_in_sync_group]
        )


class JaxStep:
    def __init__(self, jax, loss_fn):
        self.jax = jax
        self.function = jax.jit(jax.value_and_grad(lambda z, y: loss_fn(y, z)))

    def __call__(self, y, z):
        return self.function(z, y)

    def memory(self, y, z):
        """jaxpr values of z's size, and XLA's temporary allocation."""
        size = math.prod(z.shape)
        jaxpr = self.jax.make_jaxpr(self.function)(z, y)
        count = 0
        for eqn in _all_eqns(jaxpr.jaxpr):
            for var in eqn.outvars:
                shape = getattr(var.aval, "shape", ())
                count += int(math.prod(shape) >= size)
        analysis = self.function.lower(z, y).compile().memory_analysis()
        temp = None if analysis is None else analysis.temp_size_in_bytes
        return {"graph_tensors": count, "temp_bytes": temp}


class TorchStep:
    """Eager value and gradient; with `compiled`, the CB kernel's
    `torch.compile` path from the first call (it otherwise starts after
    `_kernels.TORCH_COMPILE_AFTER` calls). Keras' losses run eager, as
    Keras' PyTorch trainer runs them."""

    def __init__(self, torch, loss_fn, compiled):
        self.torch = torch
        self.loss_fn = loss_fn
        self.compile_after = 0 if compiled else None

    def __call__(self, y, z):
        _kernels.TORCH_COMPILE_AFTER = self.compile_after
        z = z.detach().requires_grad_(True)
        value = self.loss_fn(y, z)
        (grad,) = self.torch.autograd.grad(value, z)
        return value, grad

    def memory(self, y, z):
        return {"graph_tensors": None, "temp_bytes": None}


def _all_eqns(jaxpr):
    """Equations of a jaxpr, entering nested jit calls and custom rules."""
    for eqn in jaxpr.eqns:
        inner = [
            value
            for value in eqn.params.values()
            if hasattr(value, "jaxpr") or hasattr(value, "eqns")
        ]
        if not inner:
            yield eqn
        for value in inner:
            yield from _all_eqns(getattr(value, "jaxpr", value))


# --------------------------------------------------------------------------
# Timing.
# --------------------------------------------------------------------------


def time_interleaved(functions, backend, repeats, min_time):
    """Seconds per call of each function in every turn, timed in turns.

    Args:
        functions: list of zero-argument callables returning backend values.
        backend: the `Backend`, to wait for results.
        repeats: timed samples (turns) per function.
        min_time: each sample calls its function enough times to last at
            least this long (the count is the same for every function).

    Returns:
        One list of `repeats` samples (seconds per call) per function;
        sample r of every function comes from the same turn.
    """
    single = []
    for fn in functions:  # warm-up: tracing/compilation, then one run
        backend.sync(fn())
        start = time.perf_counter()
        backend.sync(fn())
        single.append(time.perf_counter() - start)
    number = max(1, int(min_time / max(min(single), 1e-6) + 0.5))
    samples = [[] for _ in functions]
    for r in range(repeats):
        # rotate the starting function so none always runs first
        order = [(r + i) % len(functions) for i in range(len(functions))]
        for i in order:
            fn = functions[i]
            start = time.perf_counter()
            for _ in range(number):
                out = fn()
            backend.sync(out)
            samples[i].append((time.perf_counter() - start) / number)
    return samples


def summarize(samples, stat):
    """Median (or min) of samples."""
    return min(samples) if stat == "min" else statistics.median(samples)


def paired_ratio(numerator, denominator, stat):
    """Median (or min) over turns of the ratio of two functions' samples.

    The two samples of one turn ran back to back, so load from other
    processes mostly cancels in their ratio.
    """
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return summarize(ratios, stat)


# --------------------------------------------------------------------------
# The losses compared.
# --------------------------------------------------------------------------


def long_tail_counts(num_classes, imbalance=100.0, n_max=1000):
    """n_c = n_max * (1 / imbalance) ** (c / (C - 1)), as for CIFAR-LT."""
    c = np.arange(num_classes)
    return np.maximum(
        1, np.round(n_max * imbalance ** (-c / max(num_classes - 1, 1)))
    )


def make_labels(shape, num_classes, rng, mixed):
    """Sparse class ids; with bfloat16 losses, ids that Keras keeps valid.

    Keras' `Loss.__call__` casts sparse ids to the loss dtype; in bfloat16
    ids near C round to C (999 -> 1000), which TensorFlow's sparse
    cross-entropy kernel rejects. Such ids are replaced by class 0 so that
    the Keras side runs at all (the CB losses take the ids uncast).
    """
    ids = rng.integers(0, num_classes, shape)
    if mixed:
        # float32 -> bfloat16 with round-to-nearest-even, on the bits
        bits = ids.astype(np.float32).view(np.uint32)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        rounded = bits.astype(np.uint32).view(np.float32)
        ids = np.where(rounded < num_classes, ids, 0)
    return ids.astype("int32")


def cb_loss(kind, counts, gamma, loss_dtype):
    """The public CB loss object timed for `kind`."""
    common = {"from_logits": True, "dtype": loss_dtype}
    if kind == "softmax":
        return keras_cbloss.CBSoftmaxLoss(counts, BETA, **common)
    if kind == "sigmoid":
        return keras_cbloss.CBSigmoidLoss(counts, BETA, **common)
    return keras_cbloss.CBFocalLoss(counts, BETA, gamma, **common)


def keras_counterparts(kind, labels, gamma, loss_dtype, extra):
    """[(name, Keras loss, takes dense labels only)] for `kind`."""
    common = {"from_logits": True, "dtype": loss_dtype}
    losses = keras.losses
    if kind == "softmax" and labels == "sparse":
        found = [
            (
                "SparseCategoricalCrossentropy",
                losses.SparseCategoricalCrossentropy(**common),
                False,
            )
        ]
    elif kind == "softmax":
        found = [
            (
                "CategoricalCrossentropy",
                losses.CategoricalCrossentropy(**common),
                False,
            )
        ]
    elif kind == "sigmoid":
        found = [
            ("BinaryCrossentropy", losses.BinaryCrossentropy(**common), True)
        ]
    else:
        found = [
            (
                "BinaryFocalCrossentropy",
                losses.BinaryFocalCrossentropy(gamma=gamma, **common),
                True,
            )
        ]
        if extra:
            found.append(
                (
                    "CategoricalFocalCrossentropy",
                    losses.CategoricalFocalCrossentropy(gamma=gamma, **common),
                    True,
                )
            )
    return found


def keras_fn(loss, labels, num_classes, weights, dense_only, loss_dtype):
    """Keras loss of (y, z), with `sample_weight = w[y]` if `weights`."""
    compute = "bfloat16" if loss_dtype == "mixed_bfloat16" else "float32"

    def fn(y, z):
        y_keras = y
        if dense_only and labels == "sparse":
            y_keras = ops.one_hot(y, num_classes, dtype=compute)
        sample_weight = None
        if weights is not None and labels == "sparse":
            sample_weight = ops.take(weights, y)
        elif weights is not None:
            sample_weight = ops.matmul(y, weights)
        return loss(y_keras, z, sample_weight=sample_weight)

    return fn


def timed_functions(case, args, weights):
    """{name: loss_fn(y, z)} of one loss-alone case, CB first."""
    kind, labels, dtype, shape, gamma = (
        case["kind"],
        case["labels"],
        case["dtype"],
        case["shape"],
        case["gamma"],
    )
    functions = {CB_KEY: cb_loss(kind, weights["counts"], gamma, dtype)}
    w = ops.convert_to_tensor(weights["w"].astype("float32"))
    for name, loss, dense_only in keras_counterparts(
        kind, labels, gamma, dtype, args.extra
    ):
        functions[name + "+sw"] = keras_fn(
            loss, labels, shape[-1], w, dense_only, dtype
        )
        if args.extra:
            functions[name] = keras_fn(
                loss, labels, shape[-1], None, dense_only, dtype
            )
    return functions


# --------------------------------------------------------------------------
# Loss-alone benchmark.
# --------------------------------------------------------------------------


def loss_cases(args, backend):
    """Every loss-alone case selected by `--quick` and `--filter`."""
    if args.quick:
        grid = QUICK_GRID
    else:
        grid = [
            (kind, labels, dtype, shape)
            for kind in KINDS
            for labels in LABELS
            for dtype in DTYPES
            for shape in SHAPES
        ]
    words = [w for w in args.filter.split(",") if w]
    for mode in backend.modes:
        for kind, labels, dtype, shape in grid:
            gammas = args.gammas if kind == "focal" else [None]
            for gamma in gammas:
                parts = [kind, labels, dtype, "x".join(map(str, shape)), mode]
                if gamma is not None:
                    parts.append(f"g={gamma:g}")
                key = ",".join(parts)
                if all(w in key for w in words):
                    yield {
                        "key": key,
                        "kind": kind,
                        "labels": labels,
                        "dtype": dtype,
                        "shape": shape,
                        "mode": mode,
                        "gamma": gamma,
                    }


def case_inputs(case, rng):
    """Labels y and logits z of one case, as backend tensors."""
    shape, num_classes = case["shape"], case["shape"][-1]
    mixed = case["dtype"] == "mixed_bfloat16"
    ids = make_labels(shape[:-1], num_classes, rng, mixed)
    logits = rng.normal(0.0, 3.0, shape).astype("float32")
    z = ops.convert_to_tensor(logits, "bfloat16" if mixed else "float32")
    if case["labels"] == "sparse":
        return ops.convert_to_tensor(ids), z
    return ops.convert_to_tensor(np.eye(num_classes, dtype="float32")[ids]), z


def bench_losses(args, backend):
    """Times every case; returns one row per case."""
    rows = []
    rng = np.random.default_rng(0)
    memory_shapes = ((1024, 1000), QUICK_SHAPES[0])
    for case in loss_cases(args, backend):
        counts = long_tail_counts(case["shape"][-1])
        weights = {
            "counts": counts,
            "w": keras_cbloss.class_balanced_weights(counts, BETA),
        }
        y, z = case_inputs(case, rng)
        functions = timed_functions(case, args, weights)
        steps = {
            name: backend.compile(fn, case["mode"])
            for name, fn in functions.items()
        }
        calls = [lambda f=f: f(y, z) for f in steps.values()]
        samples = time_interleaved(calls, backend, args.repeats, args.min_time)
        memory = {}
        if case["mode"] == backend.modes[0] and case["shape"] in memory_shapes:
            memory = {name: step.memory(y, z) for name, step in steps.items()}
        row = dict(case, shape=list(case["shape"]))
        row["ms"] = {
            name: summarize(s, args.stat) * 1e3
            for name, s in zip(steps, samples)
        }
        row["samples"] = dict(zip(steps, samples))
        row["stat"] = args.stat
        row["memory"] = memory
        rows.append(row)
        print(
            f"  {case['key']}: "
            + ", ".join(
                f"{name} {ms:.3f} ms" for name, ms in row["ms"].items()
            ),
            file=sys.stderr,
            flush=True,
        )
        # its garbage collection takes a quarter second: not in smoke runs
        keras.backend.clear_session(free_memory=not args.quick)
    return rows


def ratio_rows(rows):
    """One entry per (case, Keras counterpart): the CB / Keras+sw ratio."""
    out = []
    for row in rows:
        times, samples = row["ms"], row["samples"]
        for name in times:
            if not name.endswith("+sw"):
                continue
            counterpart = name[: -len("+sw")]
            entry = {
                key: row[key]
                for key in ("mode", "kind", "labels", "dtype", "shape", "gamma")
            }
            entry.update(
                {
                    "cb_loss": CB_NAMES[row["kind"]],
                    "counterpart": counterpart,
                    "cb_ms": times[CB_KEY],
                    "keras_sw_ms": times[name],
                    "ratio": paired_ratio(
                        samples[CB_KEY], samples[name], row["stat"]
                    ),
                    "turn_ratios": [
                        a / b for a, b in zip(samples[CB_KEY], samples[name])
                    ],
                }
            )
            if counterpart in times:
                entry["ratio_unweighted"] = paired_ratio(
                    samples[CB_KEY], samples[counterpart], row["stat"]
                )
            out.append(entry)
    return out


TIGHT_MODES = ("tf.function", MIRRORED)
XLA_MODES = ("tf.function+XLA", "jax.jit")


def target_limit(entry):
    """The issue's target for a CB / Keras+sw ratio (None: reported only).

    Sigmoid and focal: 0.6 under `tf.function` (also in a MirroredStrategy
    step), 0.9 under XLA (TensorFlow's `jit_compile=True`, JAX `jit`);
    softmax: 1.0. PyTorch is reported as measured.
    """
    if entry["mode"] not in TIGHT_MODES + XLA_MODES:
        return None
    if entry["kind"] == "softmax":
        return 1.0
    return 0.6 if entry["mode"] in TIGHT_MODES else 0.9


def worst_ratios(entries):
    """Median and worst ratio per (mode, CB loss, counterpart, gamma)."""
    groups = {}
    for entry in entries:
        key = (
            entry["mode"],
            entry["cb_loss"],
            entry["counterpart"],
            entry["gamma"],
        )
        groups.setdefault(key, []).append(entry)
    out = []
    for (mode, cb_loss, counterpart, gamma), group in groups.items():
        worst = max(group, key=lambda e: e["ratio"])
        limit = target_limit(worst)
        out.append(
            {
                "mode": mode,
                "cb_loss": cb_loss,
                "counterpart": counterpart,
                "gamma": gamma,
                "cases": len(group),
                "median": statistics.median(e["ratio"] for e in group),
                "ratio": worst["ratio"],
                "case": _case_name(worst),
                "limit": limit,
                "met": None if limit is None else worst["ratio"] <= limit,
            }
        )
    return out


def _case_name(entry):
    shape = "x".join(map(str, entry["shape"]))
    return f"{entry['labels']}, {entry['dtype']}, {shape}"


def _met(flag):
    return {None: "-", True: "yes", False: "NO"}[flag]


def loss_markdown(entries, worst):
    lines = [
        "| mode | CB loss | Keras counterpart | labels | dtype "
        "| shape | gamma | CB ms | Keras+sw ms | CB / Keras+sw |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for e in entries:
        gamma = "" if e["gamma"] is None else f"{e['gamma']:g}"
        lines.append(
            f"| {e['mode']} | {e['cb_loss']} "
            f"| {e['counterpart']} | {e['labels']} | {e['dtype']} "
            f"| {'x'.join(map(str, e['shape']))} | {gamma} "
            f"| {e['cb_ms']:.3f} | {e['keras_sw_ms']:.3f} "
            f"| {e['ratio']:.2f} |"
        )
    return "\n".join(lines)


def summary_markdown(worst):
    lines = [
        "| mode | CB loss | Keras counterpart | gamma | cases "
        "| median ratio | worst ratio | worst at | target | met |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for w in worst:
        gamma = "" if w["gamma"] is None else f"{w['gamma']:g}"
        limit = "-" if w["limit"] is None else f"{w['limit']:.2f}"
        lines.append(
            f"| {w['mode']} | {w['cb_loss']} | {w['counterpart']} "
            f"| {gamma} | {w['cases']} | {w['median']:.2f} "
            f"| {w['ratio']:.2f} | {w['case']} | {limit} "
            f"| {_met(w['met'])} |"
        )
    return "\n".join(lines)


LOSS_NOTES = """\
Keras+sw: the Keras loss with `sample_weight = w[y]` (for one-hot labels
`y @ w`), computed inside the compiled function. CB / Keras+sw: the median
over turns of the ratio of the two samples timed back to back in that turn
(ms columns: medians of each function's own samples). beta = {beta}. Keras'
sigmoid and focal losses need dense labels: with sparse labels they get
`one_hot(y)` built in the function. mixed_bfloat16: bfloat16 logits and
`dtype="mixed_bfloat16"` losses, so Keras computes in bfloat16 while the
CB losses compute in float32 by design. MirroredStrategy: a `tf.function`
step of a two-replica strategy over two logical CPUs, each replica on half
the batch (what Keras runs under `tf.distribute`). PyTorch "eager, kernel
compiled": the CB kernel's `torch.compile` path, which it takes after
`TORCH_COMPILE_AFTER` calls of one configuration; Keras' losses run eager in
both PyTorch modes, as Keras' PyTorch trainer runs them. Targets (issue 17):
sigmoid and focal <= 0.6 under `tf.function` and MirroredStrategy, <= 0.9
under XLA and JAX; softmax <= 1.0; PyTorch reported as measured."""


def memory_entries(rows):
    out = []
    for row in rows:
        full = 4 * math.prod(row["shape"])
        for name, mem in row["memory"].items():
            temp = mem["temp_bytes"]
            out.append(
                {
                    "kind": row["kind"],
                    "labels": row["labels"],
                    "dtype": row["dtype"],
                    "shape": row["shape"],
                    "gamma": row["gamma"],
                    "loss": name,
                    "graph_tensors": mem["graph_tensors"],
                    "temp_bytes": temp,
                    "temp_full_buffers": None if temp is None else temp / full,
                }
            )
    return out


def memory_markdown(entries):
    lines = [
        "| CB loss | labels | dtype | shape | gamma | loss "
        "| graph tensors >= [B, C] | XLA temp MiB | temp in [B, C] f32 |",
        "|---|---|---|---|---:|---|---:|---:|---:|",
    ]
    for e in entries:
        temp, units = "n/a", "n/a"
        if e["temp_bytes"] is not None:
            temp = f"{e['temp_bytes'] / 2**20:.2f}"
            units = f"{e['temp_full_buffers']:.2f}"
        count = "n/a" if e["graph_tensors"] is None else e["graph_tensors"]
        gamma = "" if e["gamma"] is None else f"{e['gamma']:g}"
        lines.append(
            f"| {CB_NAMES[e['kind']]} | {e['labels']} | {e['dtype']} "
            f"| {'x'.join(map(str, e['shape']))} | {gamma} | {e['loss']} "
            f"| {count} | {temp} | {units} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


# --------------------------------------------------------------------------
# Whole-training-step benchmark.
# --------------------------------------------------------------------------


class StepTimer(keras.callbacks.Callback):
    """Times the steps of one `fit` from the end of its first batch."""

    def on_train_begin(self, logs=None):
        self.stamps = []

    def on_train_batch_end(self, batch, logs=None):
        self.stamps.append(time.perf_counter())

    def seconds_per_step(self):
        stamps = self.stamps
        return (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)


PLAIN_CE = "SparseCategoricalCrossentropy (plain CE)"
SCCE_SW = "SparseCategoricalCrossentropy, sample_weight=w[y]"
BCE_SW = "BinaryCrossentropy (one-hot labels), sample_weight=w[y]"
BFCE_SW = "BinaryFocalCrossentropy (one-hot labels), sample_weight=w[y]"
FIT_COUNTERPARTS = {
    "CBSoftmaxLoss": SCCE_SW,
    "CBSigmoidLoss": BCE_SW,
    "CBFocalLoss": BFCE_SW,
}
FIT_LIMIT = 1.0


def fit_setups(args, counts):
    """(name, loss, label form, weighted) of every timed `fit`."""
    losses = keras.losses
    setups = [
        (
            PLAIN_CE,
            losses.SparseCategoricalCrossentropy(from_logits=True),
            "sparse",
            False,
        ),
        (
            SCCE_SW,
            losses.SparseCategoricalCrossentropy(from_logits=True),
            "sparse",
            True,
        ),
        (BCE_SW, losses.BinaryCrossentropy(from_logits=True), "onehot", True),
        (
            BFCE_SW,
            losses.BinaryFocalCrossentropy(gamma=FIT_GAMMA, from_logits=True),
            "onehot",
            True,
        ),
    ]
    for kind in KINDS:
        loss = cb_loss(kind, counts, FIT_GAMMA, None)
        setups.append((CB_NAMES[kind], loss, "sparse", False))
    return setups


def bench_fit(args):
    """Seconds per training step of each setup, timed in turns."""
    quick = args.quick
    num_classes, features, hidden, batch = (
        (10, 8, 16, 16) if quick else (1000, 64, 256, 256)
    )
    # a smoke run fits a linear model (less to trace)
    widths = [features] + [hidden] * (0 if quick else 2) + [num_classes]
    rng = np.random.default_rng(1)
    counts = long_tail_counts(num_classes)
    y = rng.choice(
        num_classes, size=(args.fit_steps + 1) * batch, p=counts / counts.sum()
    ).astype("int32")
    x = rng.normal(0.0, 1.0, (len(y), features)).astype("float32")
    x += 0.1 * np.eye(num_classes, features, dtype="float32")[y]
    onehot = np.eye(num_classes, dtype="float32")[y]
    w = keras_cbloss.class_balanced_weights(counts, BETA)

    def mlp():
        # Seeded initializers and a new model per setup, not
        # keras.utils.set_random_seed and clone_model: both import
        # TensorFlow under every backend (seconds for JAX and PyTorch).
        return keras.Sequential(
            [keras.Input((features,))]
            + [
                keras.layers.Dense(
                    width,
                    activation="relu" if i < len(widths) - 2 else None,
                    kernel_initializer=keras.initializers.GlorotUniform(seed=i),
                )
                for i, width in enumerate(widths[1:])
            ]
        )

    template = mlp()
    setups = fit_setups(args, counts)
    runs, jit = [], None
    for _, loss, labels, weighted in setups:
        model = mlp()
        model.set_weights(template.get_weights())
        model.compile(keras.optimizers.Adam(1e-3), loss=loss)
        jit = getattr(model, "jit_compile", None)
        runs.append(
            FitRun(
                model,
                x,
                y if labels == "sparse" else onehot,
                w[y].astype("float32") if weighted else None,
                batch,
            )
        )
    # the kernel's default compilation policy (the loss-alone cases set it)
    _kernels.TORCH_COMPILE_AFTER = DEFAULT_TORCH_COMPILE_AFTER
    # warm-up: tracing, compilation (PyTorch: 2 fits; a smoke run: 1)
    for _ in range(1 if quick else 2):
        for run in runs:
            run()
    samples = [[] for _ in runs]
    for r in range(args.repeats):
        for i in [(r + k) % len(runs) for k in range(len(runs))]:
            samples[i].append(runs[i]())
    names = [name for name, *_ in setups]
    ms = {name: statistics.median(s) * 1e3 for name, s in zip(names, samples)}
    return {
        "setup": f"MLP {'-'.join(map(str, widths))}, batch "
        f"{batch}, Adam, {args.fit_steps} timed steps per fit, median of "
        f"{args.repeats} fits, compile defaults (jit_compile='auto'), "
        f"focal gamma {FIT_GAMMA:g}",
        "jit_compile": jit,
        "ms_per_step": ms,
        "ratios": fit_ratios(dict(zip(names, samples))),
    }


class FitRun:
    """One model's `fit` over the data; returns seconds per step."""

    def __init__(self, model, x, targets, sample_weight, batch):
        self.model, self.x, self.targets = model, x, targets
        self.sample_weight, self.batch = sample_weight, batch
        self.timer = StepTimer()

    def __call__(self):
        self.model.fit(
            self.x,
            self.targets,
            sample_weight=self.sample_weight,
            batch_size=self.batch,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[self.timer],
        )
        return self.timer.seconds_per_step()


def fit_ratios(samples):
    """CB step time over its counterpart's (median of paired ratios)."""
    out = []
    for name, own in samples.items():
        cb_name = name.split(" ")[0]
        if cb_name not in FIT_COUNTERPARTS:
            continue
        counterpart = FIT_COUNTERPARTS[cb_name]
        ratio = paired_ratio(own, samples[counterpart], "median")
        # the target is for TensorFlow and JAX; PyTorch is reported
        limit = None if keras.backend.backend() == "torch" else FIT_LIMIT
        out.append(
            {
                "loss": name,
                "counterpart": counterpart,
                "ratio": ratio,
                "limit": limit,
                "met": None if limit is None else ratio <= limit,
            }
        )
    return out


def fit_markdown(fit):
    base = fit["ms_per_step"][PLAIN_CE]
    lines = [
        fit["setup"] + ".",
        "",
        "| loss | steps/s | ms/step | ratio to plain CE |",
        "|---|---:|---:|---:|",
    ]
    for name, ms in fit["ms_per_step"].items():
        lines.append(
            f"| {name} | {1e3 / ms:.1f} | {ms:.2f} | {ms / base:.3f} |"
        )
    lines += [
        "",
        "| CB loss | Keras counterpart | ratio | target | met |",
        "|---|---|---:|---:|---|",
    ]
    for r in fit["ratios"]:
        lines.append(
            f"| {r['loss']} | {r['counterpart']} | {r['ratio']:.3f} "
            f"| {'-' if r['limit'] is None else format(r['limit'], '.2f')} "
            f"| {_met(r['met'])} |"
        )
    lines += ["", f"(resolved jit_compile of the models: {fit['jit_compile']})"]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Compilations of the kernel's XLA cluster (TensorFlow).
# --------------------------------------------------------------------------


SEQUENCE_CLASSES, SEQUENCE_VOCABULARY, SEQUENCE_BATCH = 5, 30, 4


def sequence_lengths(batches):
    """Log-uniform lengths 2 to 300: nearly every batch has a new shape."""
    rng = np.random.default_rng(0)
    count = batches * SEQUENCE_BATCH
    return np.exp(rng.uniform(np.log(2), np.log(300), count)).astype(int)


def sequence_fit(batches):
    """Child process: fits a token tagger on `padded_batch` data twice."""
    import tensorflow as tf

    lengths = sequence_lengths(batches)
    rng = np.random.default_rng(1)
    tokens = [
        rng.integers(1, SEQUENCE_VOCABULARY, n).astype("int32") for n in lengths
    ]
    data = tf.data.Dataset.from_generator(
        lambda: ((x, x % SEQUENCE_CLASSES) for x in tokens),
        output_signature=(
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int32),
        ),
    ).padded_batch(SEQUENCE_BATCH, padding_values=(0, -1))
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(SEQUENCE_VOCABULARY, 8, mask_zero=True),
            keras.layers.Dense(SEQUENCE_CLASSES),
        ]
    )
    counts = long_tail_counts(SEQUENCE_CLASSES)
    model.compile(
        "adam",
        loss=keras_cbloss.CBFocalLoss(
            counts, BETA, 2.0, from_logits=True, ignore_class=-1
        ),
    )
    model.fit(data, epochs=2, verbose=0)


def bench_compiles(args):
    """XLA compilations of the kernel while a sequence model trains.

    The model trains in a fresh process, whose only XLA compilations are
    its own. A smoke run (`--quick`) trains it in this process instead,
    which saves starting TensorFlow again: `main` then calls this before
    anything else compiles with XLA, since XLA reads `XLA_FLAGS` once, at
    its first compilation (the dump folder stays until the process exits,
    as later compilations of the kernel land in it too).
    """
    import subprocess
    import tempfile

    batches = 12 if args.quick else 48
    flags = "--xla_dump_to={} --xla_dump_hlo_module_re=.*focal.*"
    if args.quick:
        dump = tempfile.mkdtemp()
        atexit.register(shutil.rmtree, dump, ignore_errors=True)
        os.environ["XLA_FLAGS"] = flags.format(dump)
        sequence_fit(batches)
        compiles = kernel_compiles(dump)
    else:
        with tempfile.TemporaryDirectory() as dump:
            env = dict(
                os.environ,
                KERAS_BACKEND="tensorflow",
                TF_CPP_MIN_LOG_LEVEL="3",
                XLA_FLAGS=flags.format(dump),
            )
            command = [
                sys.executable,
                os.path.abspath(__file__),
                "--sequence-child",
                str(batches),
            ]
            subprocess.run(command, env=env, check=True, timeout=900)
            compiles = kernel_compiles(dump)
    lengths = sequence_lengths(batches)
    shapes = {
        SEQUENCE_BATCH * int(lengths[i : i + SEQUENCE_BATCH].max())
        for i in range(0, len(lengths), SEQUENCE_BATCH)
    }
    buckets = {row_bucket(n) for n in shapes}
    return {
        "setup": f"Embedding(mask_zero=True) + Dense({SEQUENCE_CLASSES}) "
        f"token tagger, CBFocalLoss(ignore_class=-1), padded_batch("
        f"{SEQUENCE_BATCH}) of lengths 2 to 300, {batches} batches x 2 "
        "epochs, compile defaults",
        "steps": 2 * batches,
        "shapes": len(shapes),
        "buckets": len(buckets),
        "compiles": compiles,
    }


def kernel_compiles(dump):
    """The kernel's XLA compilations (modules dumped before optimization)."""
    return sum(
        "focal_sum" in name and name.endswith("before_optimizations.txt")
        for name in os.listdir(dump)
    )


def row_bucket(rows):
    """The kernel's row bucket: a multiple of 2**(bit_length - 3)."""
    step = 2 ** max(int(rows).bit_length() - 3, 0)
    return -(-int(rows) // step) * step


def compiles_markdown(c):
    return "\n".join(
        [
            c["setup"] + ".",
            "",
            "| training steps | distinct [rows, C] shapes | row buckets "
            "| XLA compilations of the kernel (forward + backward) |",
            "|---:|---:|---:|---:|",
            f"| {c['steps']} | {c['shapes']} | {c['buckets']} "
            f"| {c['compiles']} |",
            "",
            "Counted from XLA's own dump (`XLA_FLAGS=--xla_dump_to`). Without "
            "the row buckets XLA would compile forward and backward for every "
            f"shape ({2 * c['shapes']}).",
        ]
    )


# --------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------


def machine_note(args, backend):
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = [line for line in f if line.startswith("model name")]
        if names:
            cpu = names[0].split(":", 1)[1].strip()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {cpu}, "
        f"{os.cpu_count()} cores, {args.threads} threads; "
        f"load average {load}; Python {platform.python_version()}, "
        f"Keras {keras.__version__}, {backend.version}; "
        f"{args.repeats} repeats, samples >= {args.min_time * 1e3:.0f} ms"
        + ("; QUICK (tiny shapes, not a measurement)" if args.quick else "")
    )


def restart_with_backend(name, argv):
    """Runs this script again under KERAS_BACKEND=name (never returns)."""
    env = dict(os.environ, KERAS_BACKEND=name)
    command = [sys.executable, os.path.abspath(__file__)] + list(argv)
    os.execve(sys.executable, command, env)


HEADER = """\
Regenerated by `python benchmarks/bench_losses.py` (this file is its
output; docs/performance.md shows it). Every ratio is the median over turns
of the paired ratio (CB and Keras timed back to back in each turn), which
cancels most of the load from other processes; the load average is printed
at the start and the end. The CB losses are the public `CBSoftmaxLoss` /
`CBSigmoidLoss` / `CBFocalLoss`; their sigmoid and focal terms run through
the fused kernel `keras_cbloss._kernels.binary_focal_sum`."""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.sequence_child is not None:
        sequence_fit(args.sequence_child)
        return 0
    if args.backend is not None and args.backend != keras.backend.backend():
        restart_with_backend(args.backend, argv)
    backend = Backend(keras.backend.backend(), args.threads)
    report = {
        "backend": backend.name,
        "quick": args.quick,
        "machine": machine_note(args, backend),
        "gammas": args.gammas,
        "beta": BETA,
    }
    lines, summary = [], []
    count_compiles = backend.name == "tensorflow" and not args.skip_compiles
    compiles = None
    if count_compiles and args.quick:  # first: see bench_compiles
        compiles = bench_compiles(args)

    def emit(text="", short=False):
        """Prints `text` into the report (and, if `short`, the summary)."""
        print(text, flush=True)
        lines.append(text)
        if short:
            summary.append(text)

    emit(
        f"# bench_losses.py, KERAS_BACKEND={backend.name}"
        + (" --quick" if args.quick else "")
    )
    emit()
    emit("Machine: " + report["machine"], short=True)
    emit()
    emit(HEADER)
    if not args.skip_loss:
        rows = bench_losses(args, backend)
        report["loss"] = ratio_rows(rows)
        report["worst"] = worst_ratios(report["loss"])
        report["memory"] = memory_entries(rows)
        emit("\n## Summary: CB / Keras+sw, forward + backward\n")
        emit(
            f"\n#### {backend.version}: the loss alone, CB / Keras+sw\n",
            short=True,
        )
        emit(summary_markdown(report["worst"]), short=True)
        emit()
        emit(LOSS_NOTES.format(beta=BETA))
        emit(
            "\n## Loss alone: forward + backward w.r.t. the logits "
            "(median ms per call)\n"
        )
        emit(loss_markdown(report["loss"], report["worst"]))
        memory = memory_markdown(report["memory"])
        if memory:
            emit("\n## Memory of the compiled loss + gradient\n")
            emit(memory)
    if not args.skip_fit:
        report["fit"] = bench_fit(args)
        emit("\n## Whole training step (fit)\n")
        emit(f"\n#### {backend.version}: the whole `fit` step\n", short=True)
        emit(fit_markdown(report["fit"]), short=True)
    if count_compiles:
        report["compiles"] = compiles or bench_compiles(args)
        emit("\n## Compilations with dynamic shapes (padded_batch)\n")
        emit(
            "\n#### TensorFlow: compilations with dynamic shapes\n", short=True
        )
        emit(compiles_markdown(report["compiles"]), short=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report["load_at_end"] = load
    emit(f"\nLoad average at the end: {load}", short=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    path = args.markdown
    if path is None and not args.quick:
        path = os.path.join(
            os.path.dirname(os.path.abspath(__file__)),
            "results",
            f"cpu_{backend.name}.md",
        )
    if path:
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        # the tables docs/performance.md includes
        with open(path[: -len(".md")] + "_summary.md", "w") as f:
            f.write("\n".join(summary).strip() + "\n")
        if args.markdown is None:
            refresh_docs()
    return 0


def refresh_docs():
    """Copies the new summaries into docs/performance.md (its include
    blocks), with the docs' own tool."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tool = os.path.join(root, "docs", "tools", "include_results.py")
    if os.path.exists(tool):
        subprocess.run([sys.executable, tool], cwd=root, check=True)


if __name__ == "__main__":
    sys.exit(main())
