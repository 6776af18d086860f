"""Rewrites docstrings' `Example:` sections into the `Examples:` form.

Before (the `>>>` lines at the heading's indentation, which Markdown renders
as nested block quotes):

    Example:

    >>> import numpy as np
    >>> np.round(np.array([0.08494, 2.32721]), 4)
    array([0.0849, 2.3272])

    References:

After (the form mkdocstrings' Google-style parser reads as an examples
section and renders as code; doctest runs both forms, as it runs the two
here):

    Examples:
        >>> import numpy as np
        >>> np.round(np.array([0.08494, 2.32721]), 4)
        array([0.0849, 2.3272])

    References:

The section's body runs from the first non-blank line after the heading to
the next section heading at the heading's indentation (`References:`) or the
docstring's closing quotes; its lines are indented by four spaces. A section
that is already in the new form is left alone, so the script is idempotent.

Usage (from the repository root; prints the files it changed):

    python docs/tools/fix_examples.py            # rewrites keras_cbloss/*.py
    python docs/tools/fix_examples.py --check    # exit 1 if a file would change
    python docs/tools/fix_examples.py path.py ...
"""

import argparse
import pathlib
import re
import sys

_HEADING = re.compile(r"^(?P<indent>[ \t]*)Examples?:[ \t]*$")
_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:[ \t]*$")
_QUOTES = ('"""', "'''")


def _indent_of(line):
    return len(line) - len(line.lstrip())


def _ends_section(line, indent):
    """Whether `line` closes an examples section opened at `indent`."""
    stripped = line.strip()
    if stripped.startswith(_QUOTES) or stripped.endswith(_QUOTES):
        return True
    return _indent_of(line) == indent and bool(_SECTION.match(stripped))


def rewrite(text):
    """Returns `text` with every old-form examples section rewritten."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        match = _HEADING.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = len(match.group("indent"))
        first = i + 1
        while first < len(lines) and not lines[first].strip():
            first += 1
        if (
            first >= len(lines)
            or not lines[first].lstrip().startswith(">>>")
            or _indent_of(lines[first]) != indent
        ):
            # Already indented under its heading, or not a doctest section.
            out.append(lines[i])
            i += 1
            continue
        end = first
        while end < len(lines) and not _ends_section(lines[end], indent):
            end += 1
        body = lines[first:end]
        while body and not body[-1].strip():
            body.pop()
        out.append(match.group("indent") + "Examples:")
        out.extend("    " + line if line.strip() else "" for line in body)
        if end < len(lines) and not lines[end].strip().startswith(_QUOTES):
            out.append("")  # a blank line before the next section
        i = end
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", type=pathlib.Path)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    root = pathlib.Path(__file__).resolve().parents[2]
    paths = args.paths or sorted((root / "keras_cbloss").glob("*.py"))
    changed = []
    for path in paths:
        text = path.read_text()
        new = rewrite(text)
        if new != text:
            changed.append(path)
            if not args.check:
                path.write_text(new)
    for path in changed:
        print(path)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
