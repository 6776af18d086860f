"""Smoke tests of benchmarks/bench_losses.py and bench_counting.py: their
--quick runs print tables (and JSON) with the ratios.

Only that the script runs and reports ratios: timings on a shared machine are
not asserted.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "bench_losses.py")
RATIO = r"\d+\.\d\d"


def _table_rows(text, heading):
    """The data rows of the first Markdown table after `heading`."""
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|---"):
            continue
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[0], rows[1:]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_quick_run_prints_tables_with_ratios(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)  # the script picks it from --backend
    result = subprocess.run(
        [sys.executable, SCRIPT, "--backend", backend, "--quick"],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Machine: " in out and "load average" in out

    header, rows = _table_rows(out, "## Loss alone")
    assert header[-4:] == ["Keras+sw ms", "CB / Keras+sw", "Keras ms",
                           "CB / Keras"]
    modes = {"tensorflow": {"tf.function", "tf.function+XLA"},
             "jax": {"jax.jit"}}[backend]
    assert {row[0] for row in rows} == modes
    pairs = {(row[1], row[2]) for row in rows}
    assert pairs == {
        ("CBSoftmaxLoss", "SparseCategoricalCrossentropy"),
        ("CBSoftmaxLoss", "CategoricalCrossentropy"),
        ("CBSigmoidLoss", "BinaryCrossentropy"),
        ("CBFocalLoss", "BinaryFocalCrossentropy"),
        ("CBFocalLoss", "CategoricalFocalCrossentropy"),
    }
    assert {row[4] for row in rows} == {"float32", "mixed_bfloat16"}
    for row in rows:
        assert re.fullmatch(RATIO, row[8]) and re.fullmatch(RATIO, row[10])
        assert float(row[8]) > 0 and float(row[10]) > 0

    assert "## Memory" in out
    header, rows = _table_rows(out, "## Whole training step")
    assert header == ["loss", "steps/s", "ms/step", "ratio to plain CE",
                      "ratio to Keras counterpart"]
    names = [row[0] for row in rows]
    assert names[0].startswith("SparseCategoricalCrossentropy (plain CE)")
    assert {"CBSoftmaxLoss", "CBSigmoidLoss", "CBFocalLoss"} <= set(names)
    assert rows[0][3] == "1.000"
    assert all(float(row[3]) > 0 for row in rows)


# benchmarks/bench_counting.py


COUNTING_SCRIPT = os.path.join(ROOT, "benchmarks", "bench_counting.py")


@pytest.mark.slow
def test_counting_benchmark_quick_run_reports_ratios(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    path = tmp_path / "counting.json"
    result = subprocess.run(
        [sys.executable, COUNTING_SCRIPT, "--quick", "--json", str(path),
         "--import-repeats", "1"],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "count / best of the two (target <= 1.2)" in result.stdout
    report = json.loads(path.read_text())
    names = [row["pipeline"] for row in report["label_pipelines"]]
    for kind in ("`(x, y)` pairs", "sparse ids", "one-hot", "multi-hot"):
        assert any(name.startswith(kind) for name in names), kind
    for row in report["label_pipelines"]:
        seconds = row["seconds"]
        assert set(seconds) == {"bare", "count", "python"}
        best = min(seconds["bare"], seconds["python"])
        assert row["count_over_best"] == pytest.approx(seconds["count"] / best)
        assert row["rows"] > 0
    assert len(report["image_pipeline"]["seconds"]) == 4
    imports = report["import"]
    assert set(imports["seconds"]) == {"keras", "keras_cbloss"}
    assert imports["ratio"] == pytest.approx(
        imports["seconds"]["keras_cbloss"] / imports["seconds"]["keras"]
    )
