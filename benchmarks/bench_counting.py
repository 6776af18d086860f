"""Speed of `count_classes` next to bare iteration and a Python loop.

Counting must read every label, so the limit is the input pipeline's own
speed. Two tables, printed in Markdown:

1. Label pipelines: 1,000,000 labels, C = 1000 classes, batch 256 (by
   default), as

   - sparse ids, sliced and batched in the pipeline
     (`from_tensor_slices(y).batch(256)`, what most code does);
   - sparse ids, pre-batched (`from_tensor_slices` over [N/256, 256] blocks):
     the pipeline itself is nearly free, so this row shows the counting's
     own cost;
   - one-hot rows (`.batch(256).map(tf.one_hot)`; 4 GB if materialized);
   - multi-hot rows (three ids per row, `.map(one_hot + reduce_max)`).

   - `(x, y)` pairs, `from_tensor_slices((x, y)).batch(B)` with 32 float
     features a row (300,000 rows by default): the pipeline-bound stream of
     the speed issue.

   Each is timed with bare in-graph iteration
   (`ds.reduce(0, lambda a, _: a + 1)`), `count_classes(ds, C)`, and a plain
   Python loop (`for y in ds.as_numpy_iterator(): np.bincount(...)`, or
   NumPy column sums for dense rows). Target: `count_classes` within 1.2x
   of the faster of bare iteration and the Python loop (the column
   "count / best"); the table also shows the ratios to each.

2. An image pipeline: JPEG decoding and augmentation in a parallel `map`
   (decode 128x128, random crop 112, flip, resize to 96, scale), batch 256.
   Counted as is, with `label_fn=lambda x, y: y`, and from a labels-only
   dataset built from the same source (`from_tensor_slices(y).batch(256)`),
   next to bare iteration of the image pipeline.

3. Import time under `KERAS_BACKEND=jax` (skipped by `--quick`): fresh
   interpreters running `import keras` and `import keras_cbloss`, in turns;
   target: `import keras_cbloss` <= 1.15x `import keras` (TensorFlow is not
   imported until a `tf.data.Dataset` is counted).

4. Sources other than `tf.data`, counted with NumPy:

   - NumPy labels (1,000,000 by default, C classes): `count_classes(y, C)`
     next to `np.bincount(y, minlength=C)` (int64 and int32 ids, float ids
     `[N, 1]`, sample-weighted `(x, y, w)` next to `np.bincount(y, w)`),
     and multi-hot rows with unknown entries (`ignore_class=-1`) next to
     `np.count_nonzero(t == 1, axis=0)`. Target: within 1.5x of
     `np.bincount`.
   - Sources of `(x, y)` batches (100,000 rows by default, 256 uint8
     features, batch 256): a `keras.utils.PyDataset` that gathers shuffled
     batches and scales them (the usual `__getitem__`), a `PyDataset` of
     plain slices of arrays in memory (the cheapest possible), a PyTorch
     `DataLoader` over a `TensorDataset`, a grain `MapDataset.batch`, and a
     list of batches. `count_classes(source, C)` next to iterating the
     source once and doing nothing (`for batch in source: pass`). Target:
     within 1.2x. The table also shows what counting adds per batch.

   Each ratio is the median over turns of the paired ratio (the two
   methods run back to back in each turn).

All methods of one row are timed in turns (A, B, C, A, B, C, ...) so that
load from other processes hits them alike; tables show medians. The counts
of every method are checked to be equal. Usage:

    python benchmarks/bench_counting.py             # the full measurement
    python benchmarks/bench_counting.py --quick     # smoke run, tiny sizes
    python benchmarks/bench_counting.py --rows 200000 --image-rows 5000
    python benchmarks/bench_counting.py --json counting.json  # also JSON
    python benchmarks/bench_counting.py --sections sources  # section 4 only

Run it with the package importable (`pip install -e .`, or
`PYTHONPATH=.` from the repository root).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import typing

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cbloss import count_classes  # noqa: E402

SECTIONS = ("tf", "images", "imports", "sources")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and one repeat: a smoke run",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help="labels per label pipeline (default 1000000)",
    )
    parser.add_argument(
        "--classes",
        type=int,
        default=None,
        help="number of classes (default 1000)",
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="batch size (default 256)"
    )
    parser.add_argument(
        "--image-rows",
        type=int,
        default=None,
        help="images in the image pipeline (default 20000)",
    )
    parser.add_argument(
        "--pair-rows",
        type=int,
        default=None,
        help="rows of the (x, y) pipeline (default 300000)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed turns per method (default 5; 3 images)",
    )
    parser.add_argument(
        "--import-repeats",
        type=int,
        default=None,
        help="fresh interpreters per import (default 5; "
        "0 skips the import timing, as --quick does)",
    )
    parser.add_argument(
        "--source-rows",
        type=int,
        default=None,
        help="rows of the batch sources (default 100000)",
    )
    parser.add_argument(
        "--numpy-repeats",
        type=int,
        default=None,
        help="paired turns for the NumPy labels (default 41: "
        "a millisecond each)",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        default=list(SECTIONS),
        choices=list(SECTIONS),
        help="what to measure (default: all)",
    )
    parser.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="also write the results as JSON to PATH",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.source_rows = args.source_rows or (1_000 if quick else 100_000)
    args.numpy_repeats = args.numpy_repeats or (1 if quick else 41)
    args.rows = args.rows or (2_000 if quick else 1_000_000)
    args.pair_rows = args.pair_rows or (1_000 if quick else 300_000)
    if args.import_repeats is None:
        args.import_repeats = 0 if quick else 5
    args.classes = args.classes or (100 if quick else 1000)
    args.batch = args.batch or (64 if quick else 256)
    args.image_rows = args.image_rows or (128 if quick else 20_000)
    args.image_repeats = args.repeats or (1 if quick else 3)
    args.repeats = args.repeats or (1 if quick else 5)
    return args


def load():
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # pragma: no cover
        return "load average unknown"


def timed_in_turns(methods, repeats):
    """Runs each method once for warm-up, then `repeats` turns of all."""
    results = {name: fn() for name, fn in methods.items()}  # warm-up
    times = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, results


def bare(ds):
    return lambda: int(ds.reduce(np.int64(0), lambda count, _: count + 1))


def python_loop(ds, num_classes, dense):
    def run():
        counts = np.zeros(num_classes, np.int64)
        for element in ds.as_numpy_iterator():
            y = element[1] if isinstance(element, tuple) else element
            if dense:
                counts += y.sum(axis=0).astype(np.int64)
            else:
                counts += np.bincount(y.ravel(), minlength=num_classes)
        return counts

    return run


class Pipeline(typing.NamedTuple):
    name: str
    dataset: tf.data.Dataset
    dense: bool  # one-hot / multi-hot rows (else class ids)
    expected: np.ndarray  # the counts, from NumPy
    rows: int


def long_tailed_ids(rng, n, c):
    # Long-tailed ids, as in the paper's data sets (imbalance about 100).
    p = np.exp(-np.linspace(0, np.log(100), c))
    return rng.choice(c, size=n, p=p / p.sum()).astype(np.int64)


def label_pipelines(args):
    n, c, b = args.rows, args.classes, args.batch
    rng = np.random.default_rng(0)
    y = long_tailed_ids(rng, n, c)
    pairs_y = long_tailed_ids(rng, args.pair_rows, c)
    pairs_x = rng.normal(size=(args.pair_rows, 32)).astype(np.float32)
    ids3 = np.stack([y, rng.integers(0, c, n), rng.integers(0, c, n)], 1)
    full = n // b * b
    blocks = tf.data.Dataset.from_tensor_slices(y[:full].reshape(-1, b))
    if full < n:
        blocks = blocks.concatenate(tf.data.Dataset.from_tensors(y[full:]))
    # Column sums of the multi-hot rows: each row counts a class once.
    sorted_ids = np.sort(ids3, axis=1)
    first = np.ones_like(sorted_ids, bool)
    first[:, 1:] = sorted_ids[:, 1:] != sorted_ids[:, :-1]
    multi_hot = np.bincount(sorted_ids[first], minlength=c)
    return [
        Pipeline(
            "`(x, y)` pairs, `from_tensor_slices((x, y)).batch(B)`",
            tf.data.Dataset.from_tensor_slices((pairs_x, pairs_y)).batch(b),
            False,
            np.bincount(pairs_y, minlength=c),
            args.pair_rows,
        ),
        Pipeline(
            "sparse ids, `from_tensor_slices(y).batch(B)`",
            tf.data.Dataset.from_tensor_slices(y).batch(b),
            False,
            np.bincount(y, minlength=c),
            n,
        ),
        Pipeline(
            "sparse ids, pre-batched blocks",
            blocks,
            False,
            np.bincount(y, minlength=c),
            n,
        ),
        Pipeline(
            "one-hot rows, `.batch(B).map(tf.one_hot)`",
            tf.data.Dataset.from_tensor_slices(y)
            .batch(b)
            .map(lambda ids: tf.one_hot(ids, c)),
            True,
            np.bincount(y, minlength=c),
            n,
        ),
        Pipeline(
            "multi-hot rows (3 ids a row), `.map(one_hot + reduce_max)`",
            tf.data.Dataset.from_tensor_slices(ids3)
            .batch(b)
            .map(lambda ids: tf.reduce_max(tf.one_hot(ids, c), axis=1)),
            True,
            multi_hot,
            n,
        ),
    ]


def image_pipelines(args):
    n, c, b = args.image_rows, args.classes, args.batch
    rng = np.random.default_rng(1)
    y = rng.integers(0, c, n).astype(np.int64)
    grid = np.linspace(0, 255, 128, dtype=np.float32)
    jpegs = []
    for i in range(32):
        noise = rng.normal(0, 40, (128, 128, 3))
        image = grid[None, :, None] * (i % 3 == 0) + grid[:, None, None] + noise
        image = np.clip(image, 0, 255).astype(np.uint8)
        jpegs.append(tf.io.encode_jpeg(image, quality=90).numpy())
    jpegs = tf.constant(jpegs)

    def decode_and_augment(index, label):
        image = tf.io.decode_jpeg(jpegs[index % len(jpegs)], channels=3)
        image = tf.image.random_crop(image, [112, 112, 3])
        image = tf.image.random_flip_left_right(image)
        image = tf.image.resize(image, [96, 96])
        return image / 127.5 - 1.0, label

    source = tf.data.Dataset.from_tensor_slices((np.arange(n), y))
    images = source.map(
        decode_and_augment, num_parallel_calls=tf.data.AUTOTUNE
    ).batch(b)
    labels_only = tf.data.Dataset.from_tensor_slices(y).batch(b)
    return images, labels_only, np.bincount(y, minlength=c)


IMPORT_SNIPPET = (
    "import time; t = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - t)"
)


def import_times(repeats):
    """Median seconds of `import keras` and `import keras_cbloss` (JAX)."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    times = {"keras": [], "keras_cbloss": []}
    for _ in range(repeats):
        for module in times:
            out = subprocess.run(
                [sys.executable, "-c", IMPORT_SNIPPET.format(module=module)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            times[module].append(float(out.strip().splitlines()[-1]))
    return {module: statistics.median(t) for module, t in times.items()}


def fmt_rate(rows, seconds):
    rate = rows / seconds
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    return f"{rate / 1e3:.1f} k"


def main(argv=None):
    args = parse_args(argv)
    report = {
        "date": f"{datetime.datetime.now():%Y-%m-%d %H:%M}",
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
        "tensorflow": tf.__version__,
        "load_at_start": load(),
        "quick": args.quick,
        "label_pipelines": [],
    }
    print(
        f"# count_classes benchmark ({report['date']}; {report['machine']}; "
        f"TF {tf.__version__}; {report['load_at_start']} at start"
        + ("; QUICK (tiny sizes, not a measurement)" if args.quick else "")
        + ")"
    )
    if "tf" in args.sections:
        time_label_pipelines(args, report)
    if "images" in args.sections:
        report["image_pipeline"] = time_images(args)
    if args.import_repeats and "imports" in args.sections:
        report["import"] = time_imports(args.import_repeats)
    if "sources" in args.sections:
        report["numpy_labels"] = time_numpy_labels(args)
        report["batch_sources"] = time_batch_sources(args)
    report["load_at_end"] = load()
    print(
        f"\n{load()} at the end; command: python benchmarks/bench_counting.py"
        + (" --quick" if args.quick else "")
        + f" --rows {args.rows} --image-rows {args.image_rows}"
        + f" --source-rows {args.source_rows}"
        + f" --sections {' '.join(args.sections)}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


def time_label_pipelines(args, report):
    c = args.classes
    print(
        f"\n## Label pipelines: {args.rows:,} labels ({args.pair_rows:,} for "
        f"the (x, y) pairs), C = {c}, batch {args.batch}; medians of "
        f"{args.repeats} turns\n"
    )
    print(
        "| pipeline | bare iteration rows/s | count_classes rows/s | Python "
        "loop rows/s | count / bare time | count / Python loop time | "
        "count / best of the two (target <= 1.2) |"
    )
    print("|---|---|---|---|---|---|---|")
    for pipeline in label_pipelines(args):
        report["label_pipelines"].append(time_pipeline(pipeline, args))


def time_pipeline(pipeline, args):
    """Times one label pipeline, prints its row, returns it as a dict."""
    name, ds, n = pipeline.name, pipeline.dataset, pipeline.rows
    c = args.classes
    methods = {
        "bare": bare(ds),
        "count": lambda: count_classes(ds, c, verbose=0),
        "python": python_loop(ds, c, pipeline.dense),
    }
    times, results = timed_in_turns(methods, args.repeats)
    assert results["bare"] == int(ds.cardinality())
    np.testing.assert_array_equal(results["count"], pipeline.expected)
    np.testing.assert_array_equal(results["python"], pipeline.expected)
    row = {
        "pipeline": name,
        "rows": n,
        "seconds": times,
        "count_over_bare": times["count"] / times["bare"],
        "count_over_python": times["count"] / times["python"],
        "count_over_best": times["count"] / min(times["bare"], times["python"]),
    }
    print(
        f"| {name} | {fmt_rate(n, times['bare'])} | "
        f"{fmt_rate(n, times['count'])} | {fmt_rate(n, times['python'])} "
        f"| {row['count_over_bare']:.2f}x | {row['count_over_python']:.2f}x "
        f"| {row['count_over_best']:.2f}x |"
    )
    sys.stdout.flush()
    return row


def time_images(args):
    images, labels_only, expected = image_pipelines(args)
    c, n = args.classes, args.image_rows
    print(
        f"\n## Image pipeline: {n:,} JPEG images decoded and augmented in a "
        f"parallel map, C = {c}, batch {args.batch}; medians of "
        f"{args.image_repeats} turns\n"
    )
    methods = {
        "bare iteration of the image pipeline": bare(images),
        "count_classes(images) as is": lambda: count_classes(
            images, c, verbose=0
        ),
        "count_classes(images, label_fn=lambda x, y: y)": lambda: count_classes(
            images, c, label_fn=lambda x, y: y, verbose=0
        ),
        "count_classes(labels-only dataset from the same source)": lambda: (
            count_classes(labels_only, c, verbose=0)
        ),
    }
    times, results = timed_in_turns(methods, args.image_repeats)
    for key, value in results.items():
        if key.startswith("count_classes"):
            np.testing.assert_array_equal(value, expected)
    as_is = times["count_classes(images) as is"]
    print("| method | seconds | rows/s | speedup over counting as is |")
    print("|---|---|---|---|")
    for key, seconds in times.items():
        print(
            f"| {key} | {seconds:.3f} | {fmt_rate(n, seconds)} | "
            f"{as_is / seconds:.1f}x |"
        )
    return {"rows": n, "seconds": times}


def time_imports(repeats):
    times = import_times(repeats)
    ratio = times["keras_cbloss"] / times["keras"]
    print(
        f"\n## Import time, KERAS_BACKEND=jax: medians of {repeats} fresh "
        "interpreters each, in turns\n"
    )
    print("| import | seconds |\n|---|---|")
    for module, seconds in times.items():
        print(f"| `import {module}` | {seconds:.2f} |")
    print(
        f"\n`import keras_cbloss` / `import keras`: {ratio:.2f}x "
        "(target <= 1.15)"
    )
    return {"seconds": times, "ratio": ratio}


# Section 4: sources other than tf.data.


def paired_in_turns(methods, baseline, repeats):
    """Runs each method once for warm-up, then `repeats` turns of all.

    Returns `(times, ratios, fastest, results)`: median seconds per method;
    the median over turns of each method's time over the baseline's in the
    same turn; each method's fastest turn in seconds (the least disturbed
    by other processes on a shared machine); and each method's warm-up
    result.
    """
    results = {name: fn() for name, fn in methods.items()}
    times = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    ratios = {
        name: statistics.median(
            t / b for t, b in zip(times[name], times[baseline])
        )
        for name in methods
    }
    fastest = {name: min(t) for name, t in times.items()}
    medians = {name: statistics.median(t) for name, t in times.items()}
    return medians, ratios, fastest, results


def time_numpy_labels(args):
    n, c = args.rows, args.classes
    rng = np.random.default_rng(2)
    y = long_tailed_ids(rng, n, c)
    y32, yf = y.astype(np.int32), y.astype(np.float32)[:, None]
    x = np.zeros((n, 1), np.float32)
    w = rng.random(n)
    dense_rows, dense_classes = max(1, n // 10), max(2, c // 10)
    t = (rng.random((dense_rows, dense_classes)) < 0.3).astype(np.float32)
    t[rng.random(t.shape) < 0.1] = -1
    cases = [
        (
            "int64 ids `[N]`",
            lambda: count_classes(y, c),
            lambda: np.bincount(y, minlength=c),
            n,
        ),
        (
            "int32 ids `[N]`",
            lambda: count_classes(y32, c),
            lambda: np.bincount(y32, minlength=c),
            n,
        ),
        (
            "float32 ids `[N, 1]`",
            lambda: count_classes(yf, c),
            lambda: np.bincount(yf.ravel().astype(np.int64), minlength=c),
            n,
        ),
        (
            "sample-weighted `(x, y, w)`",
            lambda: count_classes((x, y, w), c, sample_weighted=True),
            lambda: np.bincount(y, w, c),
            n,
        ),
        (
            f"multi-hot rows `[{dense_rows:,}, {dense_classes}]` with unknown "
            "entries, `ignore_class=-1` (baseline: `count_nonzero(t == 1)`)",
            lambda: count_classes(t, ignore_class=-1),
            lambda: np.count_nonzero(t == 1, axis=0),
            dense_rows,
        ),
    ]
    repeats = args.numpy_repeats
    print(
        f"\n## NumPy labels, counted with NumPy: {n:,} labels, C = {c}; "
        f"{repeats} paired turns\n"
    )
    print(
        "| labels | NumPy baseline ms (median) | count_classes ms (median) "
        "| count / NumPy, median of paired turns (target <= 1.5) | "
        "fastest turns |"
    )
    print("|---|---|---|---|---|")
    rows = []
    for name, count, baseline, size in cases:
        times, ratios, fastest, results = paired_in_turns(
            {"numpy": baseline, "count": count}, "numpy", repeats
        )
        np.testing.assert_allclose(results["count"], results["numpy"])
        best = fastest["count"] / fastest["numpy"]
        print(
            f"| {name} | {times['numpy'] * 1e3:.2f} | "
            f"{times['count'] * 1e3:.2f} | {ratios['count']:.2f}x | "
            f"{best:.2f}x |"
        )
        sys.stdout.flush()
        rows.append(
            {
                "labels": name,
                "rows": size,
                "seconds": times,
                "count_over_numpy": ratios["count"],
                "count_over_numpy_fastest": best,
            }
        )
    return rows


class ShuffledBatches(keras.utils.PyDataset):
    """The usual `PyDataset`: shuffled batches, gathered and scaled."""

    def __init__(self, x, y, batch, seed=0):
        super().__init__()
        self.x, self.y, self.batch = x, y, batch
        self.order = np.random.default_rng(seed).permutation(len(y))

    def __len__(self):
        return -(-len(self.y) // self.batch)

    def __getitem__(self, i):
        index = self.order[i * self.batch : (i + 1) * self.batch]
        return self.x[index].astype(np.float32) / 255.0, self.y[index]


class SlicedBatches(keras.utils.PyDataset):
    """The cheapest `PyDataset`: views of arrays in memory."""

    def __init__(self, x, y, batch):
        super().__init__()
        self.x, self.y, self.batch = x, y, batch

    def __len__(self):
        return -(-len(self.y) // self.batch)

    def __getitem__(self, i):
        part = slice(i * self.batch, (i + 1) * self.batch)
        return self.x[part], self.y[part]


def batch_sources(args):
    n, b = args.source_rows, args.batch
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (n, 256)).astype(np.uint8)
    y = long_tailed_ids(rng, n, args.classes)
    sources = [
        (
            "`PyDataset`, shuffled batches gathered and scaled (the usual)",
            ShuffledBatches(x, y, b),
        ),
        (
            "`PyDataset` of slices of arrays in memory (the cheapest)",
            SlicedBatches(x, y, b),
        ),
        (
            "list of `(x, y)` batches",
            [(x[i : i + b], y[i : i + b]) for i in range(0, n, b)],
        ),
    ]
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None:
        data = torch.utils.data.TensorDataset(
            torch.from_numpy(x), torch.from_numpy(y)
        )
        sources.append(
            (
                "PyTorch `DataLoader(TensorDataset(x, y), batch_size=B)`",
                torch.utils.data.DataLoader(data, batch_size=b),
            )
        )
    try:
        import grain
    except ImportError:  # pragma: no cover
        grain = None
    if grain is not None:
        samples = [(x[i], y[i]) for i in range(n)]
        sources.append(
            (
                "grain `MapDataset.source(samples).batch(B)`",
                grain.MapDataset.source(samples).batch(b),
            )
        )
    return sources, np.bincount(y, minlength=args.classes)


def iterate(source):
    def run():
        batches = 0
        for _ in source:
            batches += 1
        return batches

    return run


def time_batch_sources(args):
    c = args.classes
    sources, expected = batch_sources(args)
    print(
        f"\n## Sources of batches, counted with NumPy: {args.source_rows:,} "
        f"rows of 256 uint8 features, C = {c}, batch {args.batch}; "
        f"{args.repeats} paired turns\n"
    )
    print(
        "| source | batches | iterate once ms (median) | count_classes ms "
        "(median) | count / iterate, median of paired turns (target <= "
        "1.2) | fastest turns | counting adds per batch (fastest turns) |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name, source in sources:
        times, ratios, fastest, results = paired_in_turns(
            {
                "iterate": iterate(source),
                "count": lambda: count_classes(source, c, verbose=0),
            },
            "iterate",
            args.repeats,
        )
        np.testing.assert_array_equal(results["count"], expected)
        batches = results["iterate"]
        best = fastest["count"] / fastest["iterate"]
        added = (fastest["count"] - fastest["iterate"]) / batches
        print(
            f"| {name} | {batches} | {times['iterate'] * 1e3:.1f} | "
            f"{times['count'] * 1e3:.1f} | {ratios['count']:.2f}x | "
            f"{best:.2f}x | {added * 1e6:.1f} us |"
        )
        sys.stdout.flush()
        rows.append(
            {
                "source": name,
                "batches": batches,
                "seconds": times,
                "count_over_iterate": ratios["count"],
                "count_over_iterate_fastest": best,
                "added_us_per_batch": added * 1e6,
            }
        )
    return rows


if __name__ == "__main__":
    main()
