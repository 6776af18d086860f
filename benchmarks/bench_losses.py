"""Speed of the class-balanced losses next to the Keras losses they extend.

Two measurements, each printed as a Markdown table of medians and ratios:

1. The loss alone: a compiled forward + backward pass (the loss value and its
   gradient with respect to the logits), for each pair

   - `CBSoftmaxLoss` vs `SparseCategoricalCrossentropy` (sparse labels) or
     `CategoricalCrossentropy` (one-hot labels),
   - `CBSigmoidLoss` vs `BinaryCrossentropy`,
   - `CBFocalLoss` vs `BinaryFocalCrossentropy` and
     `CategoricalFocalCrossentropy`,

   each Keras loss once with `sample_weight = w[y]` (the class-balanced
   weights of the true class, computed inside the compiled function, which
   makes it the mathematically equal formulation for softmax) and once
   without weights. Sparse and one-hot labels; float32 logits, and bfloat16
   logits with the losses' `dtype="mixed_bfloat16"` (Keras then computes in
   bfloat16, the CB losses in float32 by design); shapes (B, C) = (256, 10),
   (1024, 1000), (256, 8142) and a segmentation-like (8, 128, 128, 19).
   TensorFlow runs `tf.function` with and without `jit_compile=True`, JAX
   `jax.jit`, PyTorch eager (what Keras' PyTorch trainer runs).
   Keras' sigmoid and focal losses take dense labels only, so with sparse
   labels their input is `one_hot(y)`, built inside the compiled function.

2. A whole training step: a small MLP trained with `fit` for a fixed number of
   steps with plain cross-entropy and with each CB loss (and, for reference,
   the Keras counterparts of the sigmoid and focal losses); steps per second
   and the ratio of step times to plain cross-entropy.

All functions of one row are timed in turns (A, B, C, A, B, C, ...) after a
warm-up, so that load from other processes hits them alike; the tables show
medians over the repeats. Each sample runs the function enough times to last
`--min-time` seconds. Keras picks its backend once per process, so run one
process per backend:

    python benchmarks/bench_losses.py --backend tensorflow
    python benchmarks/bench_losses.py --backend jax
    python benchmarks/bench_losses.py --backend torch
    python benchmarks/bench_losses.py --backend jax --quick   # smoke run
"""

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
SHAPES = ((256, 10), (1024, 1000), (256, 8142), (8, 128, 128, 19))
QUICK_SHAPES = ((8, 10), (2, 4, 4, 3))
DTYPES = ("float32", "mixed_bfloat16")
LABELS = ("sparse", "onehot")
KINDS = ("softmax", "sigmoid", "focal")
BETA = 0.999
GAMMA = 2.0  # Keras' default for its focal losses


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", required=True, choices=BACKENDS)
    parser.add_argument(
        "--quick", action="store_true",
        help="tiny shapes, 2 repeats, 3 fit steps: checks that it runs",
    )
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed samples per function (default 9)")
    parser.add_argument(
        "--min-time", type=float, default=None,
        help="seconds each timed sample lasts at least (default 0.02)",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(),
        help="intra-op threads for every backend (default: all cores; "
        "JAX takes all cores or 1)",
    )
    parser.add_argument(
        "--stat", choices=("median", "min"), default="median",
        help="statistic over the repeats (default median)",
    )
    parser.add_argument(
        "--filter", default="",
        help="only loss-alone cases whose key contains all these "
        "comma-separated words, e.g. 'focal,1024x1000,xla'",
    )
    parser.add_argument(
        "--gamma", type=float, default=GAMMA,
        help="focal gamma for the CB and Keras focal losses (default 2.0, "
        "Keras' default; XLA turns Keras' pow(x, 2.0) into x * x)",
    )
    parser.add_argument("--skip-loss", action="store_true",
                        help="skip the loss-alone table")
    parser.add_argument("--skip-fit", action="store_true",
                        help="skip the training-step table")
    parser.add_argument("--fit-steps", type=int, default=None,
                        help="training steps per timed fit (default 40)")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 9
    if args.min_time is None:
        args.min_time = 0.0 if args.quick else 0.02
    if args.fit_steps is None:
        args.fit_steps = 3 if args.quick else 40
    return args


def configure_environment(args):
    """Sets the backend and thread counts; must run before importing keras."""
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    threads = str(args.threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "OPENBLAS_NUM_THREADS"):
        os.environ[name] = threads
    if args.backend == "jax" and args.threads == 1:
        # XLA:CPU sizes its thread pool from the visible cores; these flags
        # are its single-threaded setting (it has no other thread count).
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false "
            "intra_op_parallelism_threads=1"
        ).strip()
    if args.backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.backend == "torch":
        import torch

        torch.set_num_threads(args.threads)


# --------------------------------------------------------------------------
# Backend plumbing: compiled value-and-gradient, synchronisation, memory.
# --------------------------------------------------------------------------


class Backend:
    """Compiles `loss_fn(y, z)` into `f(y, z) -> (loss, d loss / d z)`."""

    def __init__(self, name):
        self.name = name
        if name == "tensorflow":
            import tensorflow as tf

            self.tf = tf
            self.modes = ("tf.function", "tf.function+XLA")
            self.version = f"TensorFlow {tf.__version__}"
        elif name == "jax":
            import jax

            self.jax = jax
            self.modes = ("jax.jit",)
            self.version = f"JAX {jax.__version__}, {jax.devices()[0]}"
        else:
            import torch

            self.torch = torch
            self.modes = ("eager",)
            self.version = (
                f"PyTorch {torch.__version__}, {torch.get_num_threads()} "
                "threads"
            )

    def compile(self, loss_fn, mode):
        if self.name == "tensorflow":
            tf = self.tf

            def step(y, z):
                with tf.GradientTape() as tape:
                    tape.watch(z)
                    value = loss_fn(y, z)
                return value, tape.gradient(value, z)

            return tf.function(step, jit_compile=mode.endswith("XLA"))
        if self.name == "jax":
            jax = self.jax
            value_and_grad = jax.jit(
                jax.value_and_grad(lambda z, y: loss_fn(y, z))
            )
            compiled = lambda y, z: value_and_grad(z, y)  # noqa: E731
            compiled.jitted = value_and_grad
            return compiled
        torch = self.torch

        def step(y, z):
            z = z.detach().requires_grad_(True)
            value = loss_fn(y, z)
            (grad,) = torch.autograd.grad(value, z)
            return value, grad

        return step

    def sync(self, out):
        if self.name == "jax":
            self.jax.block_until_ready(out)
        # TensorFlow and PyTorch return finished tensors on the CPU.

    def big_intermediates(self, compiled, y, z):
        """Tensors of at least z.size elements in the traced graph.

        Counts the outputs of every graph op (TF) or jaxpr equation (JAX)
        with as many elements as the logits: an upper bound on the full-size
        buffers a backend without fusion allocates; XLA fuses most of them.
        """
        size = math.prod(z.shape)
        if self.name == "tensorflow":
            graph = compiled.get_concrete_function(y, z).graph
            count = 0
            for op in graph.get_operations():
                if op.type in ("Const", "Placeholder", "Identity"):
                    continue
                for out in op.outputs:
                    n = out.shape.num_elements()
                    count += int(n is not None and n >= size)
            return count
        if self.name == "jax":
            jaxpr = self.jax.make_jaxpr(compiled.jitted)(z, y)
            count = 0
            for eqn in _all_eqns(jaxpr.jaxpr):
                for var in eqn.outvars:
                    shape = getattr(var.aval, "shape", ())
                    count += int(math.prod(shape) >= size)
            return count
        return None

    def temp_bytes(self, compiled, y, z):
        """XLA's temporary allocation for the compiled function (JAX only)."""
        if self.name != "jax":
            return None
        lowered = compiled.jitted.lower(z, y).compile()
        analysis = lowered.memory_analysis()
        return None if analysis is None else analysis.temp_size_in_bytes


def _all_eqns(jaxpr):
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("pjit", "jit"):
            yield from _all_eqns(eqn.params["jaxpr"].jaxpr)
        else:
            yield eqn


# --------------------------------------------------------------------------
# Timing.
# --------------------------------------------------------------------------


def time_interleaved(functions, backend, repeats, min_time, stat="median"):
    """Median (or min) seconds per call of each function, timed in turns.

    Args:
        functions: list of zero-argument callables returning backend values.
        backend: the `Backend`, to wait for results.
        repeats: timed samples per function.
        min_time: each sample calls its function enough times to last at
            least this long (the count is the same for every function).
        stat: `"median"` or `"min"` over the samples.

    Returns:
        A list of seconds per call, one per function.
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
    reduce = min if stat == "min" else statistics.median
    return [reduce(s) for s in samples]


# --------------------------------------------------------------------------
# Loss-alone benchmark.
# --------------------------------------------------------------------------


def long_tail_counts(num_classes, imbalance=100.0, n_max=1000):
    """n_c = n_max * (1 / imbalance) ** (c / (C - 1)), as for CIFAR-LT."""
    import numpy as np

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
    import numpy as np

    ids = rng.integers(0, num_classes, shape)
    if mixed:
        # float32 -> bfloat16 with round-to-nearest-even, on the bits
        bits = ids.astype(np.float32).view(np.uint32)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        rounded = bits.astype(np.uint32).view(np.float32)
        ids = np.where(rounded < num_classes, ids, 0)
    return ids.astype("int32")


def loss_pairs(kind, labels, num_classes, weights, loss_dtype):
    """(name, loss_fn(y, z)) for the CB loss and its Keras counterparts."""
    import keras
    from keras import ops

    import keras_cbloss

    counts = weights["counts"]
    compute = "bfloat16" if loss_dtype == "mixed_bfloat16" else "float32"
    w = ops.convert_to_tensor(weights["w"].astype("float32"))
    common = {"from_logits": True, "dtype": loss_dtype}
    if kind == "softmax":
        cb = keras_cbloss.CBSoftmaxLoss(counts, BETA, **common)
        if labels == "sparse":
            keras_losses = [(
                "SparseCategoricalCrossentropy",
                keras.losses.SparseCategoricalCrossentropy(**common),
                False,
            )]
        else:
            keras_losses = [(
                "CategoricalCrossentropy",
                keras.losses.CategoricalCrossentropy(**common),
                False,
            )]
    elif kind == "sigmoid":
        cb = keras_cbloss.CBSigmoidLoss(counts, BETA, **common)
        keras_losses = [(
            "BinaryCrossentropy",
            keras.losses.BinaryCrossentropy(**common),
            True,
        )]
    else:
        cb = keras_cbloss.CBFocalLoss(counts, BETA, GAMMA, **common)
        keras_losses = [
            (
                "BinaryFocalCrossentropy",
                keras.losses.BinaryFocalCrossentropy(gamma=GAMMA, **common),
                True,
            ),
            (
                "CategoricalFocalCrossentropy",
                keras.losses.CategoricalFocalCrossentropy(
                    gamma=GAMMA, **common
                ),
                True,
            ),
        ]

    def sample_weight(y):
        if labels == "sparse":
            return ops.take(w, y)
        return ops.matmul(y, w)

    def keras_fn(loss, dense_only, weighted):
        def fn(y, z):
            y_k = y
            if dense_only and labels == "sparse":
                y_k = ops.one_hot(y, num_classes, dtype=compute)
            sw = sample_weight(y) if weighted else None
            return loss(y_k, z, sample_weight=sw)

        return fn

    pairs = [("CB", lambda y, z: cb(y, z))]
    for name, loss, dense_only in keras_losses:
        pairs.append((name + "+sw", keras_fn(loss, dense_only, True)))
        pairs.append((name, keras_fn(loss, dense_only, False)))
    return pairs


def loss_cases(args, backend):
    """(key, kind, labels, dtype, shape, mode) of every loss-alone row."""
    if args.quick:
        # every pair, label form, dtype, rank and mode once, at tiny sizes
        grid = [
            (kind, labels, dtype, shape)
            for kind in KINDS
            for labels, dtype, shape in zip(LABELS, DTYPES, QUICK_SHAPES)
        ]
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
            key = ",".join(
                [kind, labels, dtype, "x".join(map(str, shape)), mode]
            )
            if all(w in key for w in words):
                yield key, kind, labels, dtype, shape, mode


def bench_losses(args, backend):
    import keras
    import numpy as np
    from keras import ops

    import keras_cbloss

    rows = []
    rng = np.random.default_rng(0)
    for key, kind, labels, dtype, shape, mode in loss_cases(args, backend):
        num_classes = shape[-1]
        counts = long_tail_counts(num_classes)
        weights = {
            "counts": counts,
            "w": keras_cbloss.class_balanced_weights(counts, BETA),
        }
        mixed = dtype == "mixed_bfloat16"
        ids = make_labels(shape[:-1], num_classes, rng, mixed)
        logits = rng.normal(0.0, 3.0, shape).astype("float32")
        z = ops.convert_to_tensor(logits, "bfloat16" if mixed else "float32")
        if labels == "sparse":
            y = ops.convert_to_tensor(ids)
        else:
            y = ops.convert_to_tensor(
                np.eye(num_classes, dtype="float32")[ids]
            )
        pairs = loss_pairs(kind, labels, num_classes, weights, dtype)
        compiled = [backend.compile(fn, mode) for _, fn in pairs]
        calls = [lambda f=f: f(y, z) for f in compiled]
        medians = time_interleaved(
            calls, backend, args.repeats, args.min_time, args.stat
        )
        memory = {}
        if mode == backend.modes[0] and shape in ((1024, 1000), (8, 10)):
            memory = {
                name: (
                    backend.big_intermediates(f, y, z),
                    backend.temp_bytes(f, y, z),
                )
                for (name, _), f in zip(pairs, compiled)
            }
        rows.append({
            "key": key, "kind": kind, "labels": labels, "dtype": dtype,
            "shape": shape, "mode": mode,
            "times": {name: t for (name, _), t in zip(pairs, medians)},
            "memory": memory,
        })
        print(f"  {key}: " + ", ".join(
            f"{name} {t * 1e3:.3f} ms" for (name, _), t in zip(pairs, medians)
        ), file=sys.stderr, flush=True)
        keras.backend.clear_session()
    return rows


LOSS_NOTES = """\
Keras+sw: the Keras loss with `sample_weight = w[y]` (for one-hot labels
`y @ w`), computed inside the compiled function; Keras: without weights, so
CB / Keras includes the cost of the weighting itself. beta = {beta},
gamma = {gamma}. Keras' sigmoid and focal losses need dense labels: with
sparse labels they get `one_hot(y)` built in the function. mixed_bfloat16:
bfloat16 logits and `dtype="mixed_bfloat16"` losses, so Keras computes in
bfloat16 while the CB losses compute in float32 by design (with Keras'
default loss dtype both would compute in float32)."""


CB_NAMES = {
    "softmax": "CBSoftmaxLoss",
    "sigmoid": "CBSigmoidLoss",
    "focal": "CBFocalLoss",
}


def loss_table(rows):
    lines = [
        "| mode | CB loss | Keras counterpart | labels | dtype | shape "
        "| CB ms | Keras+sw ms | CB / Keras+sw | Keras ms | CB / Keras |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    worst = {}
    for row in rows:
        times = row["times"]
        cb = times["CB"]
        for name in times:
            if name == "CB" or name.endswith("+sw"):
                continue
            weighted, plain = times[name + "+sw"], times[name]
            ratio_w, ratio = cb / weighted, cb / plain
            lines.append(
                f"| {row['mode']} | {CB_NAMES[row['kind']]} | {name} "
                f"| {row['labels']} | {row['dtype']} "
                f"| {'x'.join(map(str, row['shape']))} "
                f"| {cb * 1e3:.3f} | {weighted * 1e3:.3f} | {ratio_w:.2f} "
                f"| {plain * 1e3:.3f} | {ratio:.2f} |"
            )
            pair = (row["mode"], CB_NAMES[row["kind"]], name)
            worst[pair] = max(worst.get(pair, 0.0), ratio_w)
    summary = [
        "",
        "Worst CB / Keras+sw ratio per pair (target <= 1.10):",
        "",
        "| mode | CB loss | Keras counterpart | worst ratio |",
        "|---|---|---|---:|",
    ]
    for (mode, cb_name, name), ratio in worst.items():
        summary.append(f"| {mode} | {cb_name} | {name} | {ratio:.2f} |")
    return "\n".join(lines + summary)


def _size(shape):
    size = 1
    for dim in shape:
        size *= dim
    return size


def memory_table(rows):
    lines = [
        "| CB loss | labels | dtype | shape | loss "
        "| graph tensors >= [B, C] | XLA temp MiB | temp in [B, C] f32 |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        full = 4 * _size(row["shape"])
        for name, (count, temp) in row["memory"].items():
            label = CB_NAMES[row["kind"]] if name == "CB" else name
            units = "n/a" if temp is None else f"{temp / full:.2f}"
            temp = "n/a" if temp is None else f"{temp / 2**20:.2f}"
            count = "n/a" if count is None else str(count)
            lines.append(
                f"| {CB_NAMES[row['kind']]} "
                f"| {row['labels']} | {row['dtype']} "
                f"| {'x'.join(map(str, row['shape']))} | {label} "
                f"| {count} | {temp} | {units} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""


# --------------------------------------------------------------------------
# Whole-training-step benchmark.
# --------------------------------------------------------------------------


class StepTimer:
    """Times the steps of one `fit` from the end of its first batch."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.stamps = []

            def on_train_batch_end(self, batch, logs=None):
                self.stamps.append(time.perf_counter())

            def seconds_per_step(self):
                stamps = self.stamps
                return (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1)

        return _Timer()


FIT_COUNTERPARTS = {
    "CBSoftmaxLoss": "SparseCategoricalCrossentropy, sample_weight=w[y]",
    "CBSigmoidLoss": "BinaryCrossentropy (one-hot labels)",
    "CBFocalLoss": "BinaryFocalCrossentropy (one-hot labels)",
}


def bench_fit(args, backend):
    import keras
    import numpy as np

    import keras_cbloss

    quick = args.quick
    num_classes, features, hidden, batch = (
        (10, 8, 16, 16) if quick else (1000, 64, 256, 256)
    )
    steps = args.fit_steps
    rng = np.random.default_rng(1)
    counts = long_tail_counts(num_classes)
    prob = counts / counts.sum()
    y = rng.choice(num_classes, size=(steps + 1) * batch, p=prob)
    y = y.astype("int32")
    x = rng.normal(0.0, 1.0, (len(y), features)).astype("float32")
    x += 0.1 * np.eye(num_classes, features, dtype="float32")[y]
    onehot = np.eye(num_classes, dtype="float32")[y]
    w = keras_cbloss.class_balanced_weights(counts, BETA)

    keras.utils.set_random_seed(0)
    template = keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(num_classes),
    ])
    initial = template.get_weights()
    keras_losses = keras.losses
    setups = [
        ("SparseCategoricalCrossentropy (plain CE)",
         keras_losses.SparseCategoricalCrossentropy(from_logits=True),
         "sparse", False),
        ("SparseCategoricalCrossentropy, sample_weight=w[y]",
         keras_losses.SparseCategoricalCrossentropy(from_logits=True),
         "sparse", True),
        ("CBSoftmaxLoss",
         keras_cbloss.CBSoftmaxLoss(counts, BETA, from_logits=True),
         "sparse", False),
        ("CBSigmoidLoss",
         keras_cbloss.CBSigmoidLoss(counts, BETA, from_logits=True),
         "sparse", False),
        ("BinaryCrossentropy (one-hot labels)",
         keras_losses.BinaryCrossentropy(from_logits=True),
         "onehot", False),
        ("CBFocalLoss",
         keras_cbloss.CBFocalLoss(counts, BETA, GAMMA, from_logits=True),
         "sparse", False),
        ("BinaryFocalCrossentropy (one-hot labels)",
         keras_losses.BinaryFocalCrossentropy(gamma=GAMMA, from_logits=True),
         "onehot", False),
    ]
    models, timers, runs = [], [], []
    for name, loss, labels, weighted in setups:
        model = keras.models.clone_model(template)
        model.set_weights(initial)
        model.compile(keras.optimizers.Adam(1e-3), loss=loss)
        timer = StepTimer()
        targets = y if labels == "sparse" else onehot
        sample_weight = w[y].astype("float32") if weighted else None

        def run(model=model, timer=timer, targets=targets,
                sample_weight=sample_weight):
            model.fit(
                x, targets, sample_weight=sample_weight, batch_size=batch,
                epochs=1, shuffle=False, verbose=0, callbacks=[timer],
            )
            return timer.seconds_per_step()

        models.append(model)
        timers.append(timer)
        runs.append(run)
    for run in runs:  # warm-up: tracing and compilation
        run()
    samples = [[] for _ in runs]
    for r in range(args.repeats):
        for i in [(r + k) % len(runs) for k in range(len(runs))]:
            samples[i].append(runs[i]())
    step_times = [statistics.median(s) for s in samples]
    base = step_times[0]
    lines = [
        f"MLP {features}-{hidden}-{hidden}-{num_classes}, batch {batch}, "
        f"Adam, {steps} timed steps per fit, median of {args.repeats} fits, "
        f"compile defaults (jit_compile='auto').",
        "",
        "| loss | steps/s | ms/step | ratio to plain CE "
        "| ratio to Keras counterpart |",
        "|---|---:|---:|---:|---:|",
    ]
    times = {name: t for (name, *_), t in zip(setups, step_times)}
    for name, t in times.items():
        other = FIT_COUNTERPARTS.get(name)
        versus = f"{t / times[other]:.3f}" if other else ""
        lines.append(
            f"| {name} | {1 / t:.1f} | {t * 1e3:.2f} | {t / base:.3f} "
            f"| {versus} |"
        )
    jit = getattr(models[0], "jit_compile", "?")
    lines.append("")
    lines.append(f"(resolved jit_compile of the models: {jit})")
    return "\n".join(lines), dict(zip([s[0] for s in setups], step_times))


# --------------------------------------------------------------------------
# Main.
# --------------------------------------------------------------------------


def machine_note(args, backend):
    import keras

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}; {cpu}, "
        f"{os.cpu_count()} cores, {args.threads} threads; "
        f"load average {load}; Python {platform.python_version()}, "
        f"Keras {keras.__version__}, {backend.version}; "
        f"{args.repeats} repeats, samples >= {args.min_time * 1e3:.0f} ms"
        + ("; QUICK (tiny shapes, not a measurement)" if args.quick else "")
    )


def main(argv=None):
    global GAMMA
    args = parse_args(argv)
    GAMMA = args.gamma
    configure_environment(args)
    backend = Backend(args.backend)
    print(f"# bench_losses.py --backend {args.backend}"
          + (" --quick" if args.quick else ""))
    print()
    print("Machine: " + machine_note(args, backend))
    if not args.skip_loss:
        rows = bench_losses(args, backend)
        print()
        print("## Loss alone: forward + backward w.r.t. the logits "
              "(median ms per call)")
        print()
        print(loss_table(rows))
        print()
        print(LOSS_NOTES.format(gamma=GAMMA, beta=BETA))
        memory = memory_table(rows)
        if memory:
            print()
            print("## Memory of the compiled loss + gradient")
            print()
            print(memory)
    if not args.skip_fit:
        table, _ = bench_fit(args, backend)
        print()
        print("## Whole training step (fit)")
        print()
        print(table)
    print()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Load average at the end: {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
