"""The documentation: the built site's links, the API pages' coverage, the
README as a PyPI page, and the docstring rewrite of docs/tools.

The Python blocks of README.md and docs/**/*.md run as tests of their own
(pytest-markdown-docs, configured in pyproject.toml)."""

import html.parser
import importlib.util
import pathlib
import posixpath
import re
import shutil
import subprocess
import sys
import textwrap
import urllib.parse

import pytest

import keras_cbloss

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE_URL = "https://keras-cbloss.github.io/keras-cbloss/"
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _readme_links():
    text = (ROOT / "README.md").read_text()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # not in code blocks
    return _LINK.findall(text)


def test_readme_links_work_outside_the_repository():
    # README.md is the PyPI page: a relative link there leads nowhere.
    links = _readme_links()
    assert links
    relative = [link for link in links if not link.startswith("https://")]
    assert not relative, relative


def test_every_public_name_is_on_an_api_page():
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(
            re.findall(
                r"^::: keras_cbloss\.(?:\w+\.)*(\w+)$",
                page.read_text(),
                flags=re.M,
            )
        )
    assert documented == set(keras_cbloss.__all__)
    # and the overview's table names each of them once
    overview = (ROOT / "docs" / "api" / "index.md").read_text()
    listed = re.findall(r"`(\w+)`", overview.split("## ")[0])
    assert sorted(n for n in listed if n != "keras_cbloss") == sorted(
        keras_cbloss.__all__
    )


class _Page(html.parser.HTMLParser):
    """The ids and the link targets of one HTML page."""

    def __init__(self):
        super().__init__()
        self.ids = set()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def _parse(path):
    page = _Page()
    page.feed(path.read_text())
    return page


def _target(site, page_path, href):
    """The file and fragment an internal `href` of `page_path` points to."""
    url = urllib.parse.urlsplit(href)
    if not url.path:
        return page_path, urllib.parse.unquote(url.fragment)
    if url.path.startswith("/"):  # from the server's root (404.html)
        prefix = urllib.parse.urlsplit(SITE_URL).path
        path = url.path[len(prefix) :] if url.path.startswith(prefix) else None
    else:
        base = posixpath.dirname(page_path.relative_to(site).as_posix())
        path = posixpath.join(base, url.path)
    if path is None:
        return site / "outside-the-site", ""
    file = site / posixpath.normpath(path or ".")
    if url.path.endswith("/") or file.is_dir():
        file = file / "index.html"
    return file, urllib.parse.unquote(url.fragment)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built strictly from a copy of the sources."""
    pytest.importorskip("zensical", reason="needs the docs extra")
    pytest.importorskip("mkdocstrings_handlers.python")
    work = tmp_path_factory.mktemp("docs")
    shutil.copy(ROOT / "mkdocs.yml", work)
    shutil.copytree(ROOT / "docs", work / "docs")
    shutil.copytree(
        ROOT / "keras_cbloss",
        work / "keras_cbloss",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    run = subprocess.run(
        [sys.executable, "-m", "zensical", "build", "--strict"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return work / "site"


def test_every_internal_link_and_anchor_of_the_site_resolves(site):
    pages = {path: _parse(path) for path in site.rglob("*.html")}
    assert len(pages) > 20
    broken = []
    for path, page in pages.items():
        for href in page.hrefs:
            if urllib.parse.urlsplit(href).scheme or href.startswith("//"):
                continue  # external (checked by hand, not here)
            file, fragment = _target(site, path, href)
            if file not in pages and not file.is_file():
                broken.append(f"{path.relative_to(site)}: {href} (no page)")
            elif fragment and fragment not in pages[file].ids:
                broken.append(f"{path.relative_to(site)}: {href} (no anchor)")
    assert not broken, "\n".join(broken)


def test_readme_links_into_the_docs_name_built_pages(site):
    links = [link for link in _readme_links() if link.startswith(SITE_URL)]
    assert len(links) >= 10
    for link in links:
        file, fragment = _target(
            site, site / "index.html", "./" + link[len(SITE_URL) :]
        )
        assert file.is_file(), link
        if fragment:
            assert fragment in _parse(file).ids, link


def test_api_pages_render_examples_and_formulas_as_code(site):
    text = (site / "api" / "losses" / "index.html").read_text()
    # The formula block of cb_softmax_crossentropy, as a code block.
    assert re.search(r"<code>loss = \(sum_c y_c \* w_c\) \* CE\(y, p\)", text)
    assert '<h2 id="keras_cbloss.CBFocalLoss"' in text
    for page in sorted((site / "api").rglob("index.html")):
        text = page.read_text()
        name = page.parent.name
        # Examples: `>>>` lines inside code blocks; never a quote (`>>>`
        # read as nested Markdown quotes) or a heading made of a `# ...`
        # comment line of an example.
        assert "<blockquote>" not in text, name
        assert not re.search(r'<h[1-6] id="keras_cbloss\.\w+--', text), name
        if name != "api":
            assert re.search(r"<code>(<[^>]+>)*&gt;&gt;&gt;", text), name
        # A Returns section is one value: its wrapped lines are not items.
        for returns in re.findall(
            r"Returns:</span></p>\s*<ul>(.*?)</ul>", text, flags=re.S
        ):
            assert returns.count("<li") == 1, (name, returns[:300])


def _fix_examples():
    spec = importlib.util.spec_from_file_location(
        "fix_examples", ROOT / "docs" / "tools" / "fix_examples.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_OLD = textwrap.dedent('''\
    def f():
        """Summary.

        Example:

        >>> f()
        1

        >>> f() + 1
        2

        References:
            A paper.
        """
        return 1


    def g():
        """Summary.

        Example:

        >>> g()
        2
        """
        return 2
    ''')

_NEW = textwrap.dedent('''\
    def f():
        """Summary.

        Examples:
            >>> f()
            1

            >>> f() + 1
            2

        References:
            A paper.
        """
        return 1


    def g():
        """Summary.

        Examples:
            >>> g()
            2
        """
        return 2
    ''')


def test_fix_examples_indents_the_examples_under_their_heading():
    rewrite = _fix_examples().rewrite
    assert rewrite(_OLD) == _NEW
    assert rewrite(_NEW) == _NEW  # idempotent


def test_fix_examples_keeps_the_doctests_running():
    import doctest

    for source in (_OLD, _NEW):
        namespace = {}
        exec(source, namespace)
        for name in ("f", "g"):
            test = doctest.DocTestParser().get_doctest(
                namespace[name].__doc__, namespace, name, None, 0
            )
            assert len(test.examples) >= 1
            result = doctest.DocTestRunner().run(test)
            assert result.failed == 0


def _include_results():
    spec = importlib.util.spec_from_file_location(
        "include_results", ROOT / "docs" / "tools" / "include_results.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_include_results_fills_blocks_from_files(tmp_path):
    tool = _include_results()
    (tmp_path / "table.md").write_text("| a |\n|---|\n| 1 |\n")
    page = (
        "Intro.\n\n<!-- include: table.md -->\nold text\n"
        "<!-- end include -->\n\nMore.\n"
    )
    new = tool.rewrite(page, root=tmp_path)
    assert new == (
        "Intro.\n\n<!-- include: table.md -->\n| a |\n|---|\n"
        "| 1 |\n<!-- end include -->\n\nMore.\n"
    )
    assert tool.rewrite(new, root=tmp_path) == new  # idempotent
    with pytest.raises(FileNotFoundError):
        tool.rewrite(
            "<!-- include: nope.md -->\n<!-- end include -->", root=tmp_path
        )


def test_included_results_in_the_docs_are_up_to_date():
    # A page that includes an example's output holds that file's text, as
    # `python docs/tools/include_results.py` writes it.
    tool = _include_results()
    included = []
    for page in (ROOT / "docs").rglob("*.md"):
        text = page.read_text()
        included += tool.included_paths(text)
        assert tool.rewrite(text) == text, (
            f"{page.relative_to(ROOT)} is stale: run "
            "python docs/tools/include_results.py"
        )
    assert "docs/outputs/multilabel_digits/results.md" in included
