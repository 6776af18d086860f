"""The result tables of docs/results.md come from the examples' output.

`docs/tools/gen_results.py` writes each example's `results.md` (committed
with its `results.json` and `results.csv` under `examples/results/`) into the
page between markers; a table typed or edited by hand fails here.
"""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_results", ROOT / "docs" / "tools" / "gen_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _generator()


def test_the_page_matches_the_committed_outputs():
    assert gen.main(["--check"]) == 0


@pytest.mark.parametrize("example", gen.EXAMPLES)
def test_each_example_has_its_outputs_committed(example):
    folder = ROOT / "examples" / "results" / example
    assert (folder / "results.md").read_text().count("|---") >= 1
    results = json.loads((folder / "results.json").read_text())
    assert "settings" in results


def test_an_edited_table_is_put_back():
    page = gen.PAGE.read_text()
    tables = gen.tables()
    row = next(line for line in tables["long_tail_digits"].splitlines()
               if line.startswith("| CB focal |"))
    edited = page.replace(row, row.replace("| CB focal |", "| CB focal* |"))
    assert edited != page
    rendered, found = gen.render(edited, tables)
    assert rendered == page
    assert found == set(gen.EXAMPLES)


def test_a_region_without_outputs_is_an_error():
    page = "<!-- results: nowhere -->\n| typed |\n<!-- end results: nowhere -->"
    with pytest.raises(KeyError, match="nowhere"):
        gen.render(page, gen.tables())
