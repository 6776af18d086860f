"""docs/results.md shows the examples' own output, never retyped tables.

Each example's committed run lives in `docs/outputs/<example>/`
(`results.md`, `results.json`, `results.csv`); `docs/tools/include_results.py`
copies `results.md` into the page (`tests/test_docs.py` checks it is up to
date). Here: the page includes every example's file, and the digits
tables are what the example's own reporting makes of the runs in
`results.json`.
"""

import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUTPUTS = ROOT / "docs" / "outputs"
EXAMPLES = ("long_tail_digits", "binary_breast_cancer", "beta_dial")


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_results_page_includes_the_committed_run(example):
    page = (ROOT / "docs" / "results.md").read_text()
    marker = f"<!-- include: docs/outputs/{example}/results.md -->"
    assert marker in page
    results = json.loads((OUTPUTS / example / "results.json").read_text())
    assert results["settings"]


def test_the_digits_tables_are_the_reporting_of_the_committed_runs():
    import _report
    import long_tail_digits as digits

    results = json.loads(
        (OUTPUTS / "long_tail_digits" / "results.json").read_text()
    )
    runs, settings = results["runs"], results["settings"]
    summary = _report.summarize(
        runs, digits.LOSSES, digits.PACKAGE_LOSSES, digits.DEFERRED
    )
    table = _report.results_table(
        summary,
        digits.PACKAGE_LOSSES,
        settings["seeds"],
        results["test_per_class"],
        len(results["tail_classes"]),
        digits.DEFERRED,
    )
    table += "\n\n" + _report.shot_table(summary, runs[0]["train_counts"])
    committed = (OUTPUTS / "long_tail_digits" / "results.md").read_text()
    assert committed == table + "\n"
