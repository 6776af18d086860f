"""Copies the examples' result files into the documentation pages.

A page marks where a file's text goes with two HTML comments (invisible in
the rendered page), the path relative to the repository root:

    <!-- include: docs/outputs/multilabel_digits/results.md -->
    ...the file's text, written by this script...
    <!-- end include -->

Everything between the two markers is replaced by the file's text, so a
table in the docs is the example's own output, never retyped. The script is
idempotent; `tests/test_docs.py` checks that every page is up to date.

Usage (from the repository root; prints the pages it changed):

    python docs/tools/include_results.py            # rewrites docs/**/*.md
    python docs/tools/include_results.py --check    # exit 1 if a page would
                                                    # change
"""

import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
_BLOCK = re.compile(
    r"(?P<open><!-- include: (?P<path>\S+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- end include -->)",
    re.S,
)


def included_paths(text):
    """The paths the include blocks of `text` name, in order."""
    return [match["path"] for match in _BLOCK.finditer(text)]


def rewrite(text, root=ROOT):
    """Returns `text` with every include block filled from its file.

    Raises:
        FileNotFoundError: If a block names a file that does not exist.
    """

    def fill(match):
        body = (root / match["path"]).read_text()
        if not body.endswith("\n"):
            body += "\n"
        return match["open"] + body + match["close"]

    return _BLOCK.sub(fill, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 if a page is stale",
    )
    args = parser.parse_args(argv)
    stale = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text()
        new = rewrite(text)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new)
    for page in stale:
        print(page)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
