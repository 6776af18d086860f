"""Writes the result tables of docs/results.md from the examples' own output.

Each example writes its tables to `<output dir>/results.md` and every number
to `results.json` (and `results.csv`). The outputs of the runs the docs
describe are committed under `examples/results/<example>/`; this script
copies a new run there (`--from`) and writes each example's `results.md`
into docs/results.md between the markers

    <!-- results: <example> -->
    ...
    <!-- end results: <example> -->

so that no table in the page is typed by hand. `--check` writes nothing and
exits 1 if the page differs from the committed outputs (the suite runs it).

    python examples/long_tail_digits.py          # writes outputs/long_tail_digits/
    python docs/tools/gen_results.py --from outputs
    python docs/tools/gen_results.py --check
"""

import argparse
import pathlib
import re
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "results.md"
COMMITTED = ROOT / "examples" / "results"
EXAMPLES = ("long_tail_digits", "binary_breast_cancer", "beta_dial")
FILES = ("results.md", "results.json", "results.csv")
_REGION = re.compile(
    r"(<!-- results: (?P<name>\w+) -->\n)(?P<body>.*?)"
    r"(<!-- end results: (?P=name) -->)",
    flags=re.S,
)


def copy_outputs(output_root, examples=EXAMPLES):
    """Copies each example's output files from `output_root/<example>/`."""
    for name in examples:
        source = pathlib.Path(output_root) / name
        if not (source / "results.md").exists():
            raise FileNotFoundError(
                f"{source / 'results.md'} not found: run "
                f"`python examples/{name}.py --output-dir {source}` first")
        target = COMMITTED / name
        target.mkdir(parents=True, exist_ok=True)
        for file in FILES:
            if (source / file).exists():
                shutil.copyfile(source / file, target / file)


def tables(committed=COMMITTED):
    """Example name -> the Markdown it wrote (its `results.md`)."""
    return {
        path.parent.name: path.read_text().strip() + "\n"
        for path in sorted(pathlib.Path(committed).glob("*/results.md"))
    }


def render(page_text, tables_by_name):
    """`page_text` with each marked region replaced by its example's
    tables. Raises for a marker without committed outputs."""
    found = set()

    def replace(match):
        name = match.group("name")
        if name not in tables_by_name:
            raise KeyError(f"docs/results.md marks {name!r}, but there is no "
                           f"examples/results/{name}/results.md")
        found.add(name)
        return match.group(1) + tables_by_name[name] + match.group(4)

    text = _REGION.sub(replace, page_text)
    return text, found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="output_root", type=pathlib.Path,
                        help="copy the examples' outputs from this folder "
                             "(one subfolder per example) first")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/results.md is not up to date")
    args = parser.parse_args(argv)
    if args.output_root is not None:
        copy_outputs(args.output_root)
    page = PAGE.read_text()
    text, found = render(page, tables())
    missing = set(EXAMPLES) - found
    if missing:
        print(f"docs/results.md has no region for {sorted(missing)}",
              file=sys.stderr)
        return 1
    if text == page:
        return 0
    if args.check:
        print("docs/results.md differs from examples/results/: run "
              "`python docs/tools/gen_results.py`", file=sys.stderr)
        return 1
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
