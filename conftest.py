"""Suite-wide pytest configuration (the whole repository: README.md and the
documentation pages under docs/ too)."""

import atexit
import contextlib
import os
import sys
import traceback

import pytest

# tests/backend_runs.py: the JAX and PyTorch reruns, one process each, in the
# background (tests/ is on the path: pyproject.toml's `pythonpath`).
pytest_plugins = ["backend_runs"]

# Silences TensorFlow's C++ start-up logging; must precede its import. Child
# processes that the tests start inherit it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _is_markdown_block(item):
    return item.get_closest_marker("markdown-docs") is not None


@pytest.fixture(autouse=True)
def _markdown_blocks_run_in_a_temporary_directory(request, monkeypatch):
    """README and docs blocks save models as a reader would
    (`model.save(...)` in the current directory): run them in a fresh
    directory, not the repository."""
    if _is_markdown_block(request.node):
        monkeypatch.chdir(request.getfixturevalue("tmp_path"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Keeps pytest's output capture on while a Markdown block runs.

    pytest-markdown-docs (0.9) turns capture off around each block, so the
    blocks' prints and Keras' progress bars would spill into pytest's output.
    Here they are captured like any test's output: shown only when the block
    fails."""
    if not _is_markdown_block(item):
        return (yield)
    capman = item.config.pluginmanager.getplugin("capturemanager")
    if capman is None:  # run with -p no:capture
        return (yield)
    disabled = capman.global_and_fixture_disabled
    capman.global_and_fixture_disabled = contextlib.nullcontext
    try:
        return (yield)
    finally:
        capman.global_and_fixture_disabled = disabled


def pytest_collection_modifyitems(config, items):
    """Skips the docs blocks that use PyTorch where it is not installed.

    The `test` extra does not install PyTorch (`.ci/run` does): as the
    Python tests of the PyTorch backend, a docs block that imports `torch`
    (a `DataLoader` as a counting source) is skipped without it.
    """
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        return
    skip = pytest.mark.skip(reason="needs PyTorch (pip install torch)")
    for item in items:
        code = getattr(item, "code", "")
        if _is_markdown_block(item) and "import torch" in code:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    session.config._exit_status = int(exitstatus)


def _run_as_the_program():
    """Whether pytest is this process's program (`pytest`, `python -m
    pytest`), not called as `pytest.main()` from a host that goes on."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name in ("pytest", "pytest.__main__"):
        return True
    return os.path.basename(sys.argv[0]) in ("pytest", "py.test")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Ends the process once pytest is done, without the interpreter's
    teardown.

    After a whole session, Python's teardown of the modules (TensorFlow's
    objects, thousands of traced functions) takes 10-15 s of one core, after
    the summary line. Everything pytest does after this hook still runs
    first: its cleanups (e.g. the last garbage collection, which reports
    exceptions raised in `__del__`; an error there exits with 1, as pytest
    would), then the `atexit` handlers (pytest's temporary directory
    locks, tests/children.py's children), and the output is flushed; only
    the teardown is skipped. A host that calls `pytest.main()` keeps its
    process, and a pytest without the cleanup stack this relies on ends as
    usual."""
    cleanups = getattr(config, "_cleanup_stack", None)
    if (
        not _run_as_the_program()
        or not hasattr(config, "_exit_status")
        or not hasattr(cleanups, "close")
    ):
        return
    status = config._exit_status
    try:
        cleanups.close()
    except BaseException:
        traceback.print_exc()
        status = status or 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
