"""Suite-wide pytest configuration (the whole repository, README.md too)."""

import os

import pytest

# tests/backend_runs.py: the JAX and PyTorch reruns, one process each, in the
# background (tests/ is on the path: setup.cfg's `pythonpath`).
pytest_plugins = ["backend_runs"]

# Silences TensorFlow's C++ start-up logging; must precede its import. Child
# processes that the tests start inherit it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _readme_blocks_run_in_a_temporary_directory(request, monkeypatch):
    """README blocks save models as a reader would (`model.save(...)` in
    the current directory): run them in a fresh directory, not the repo."""
    if request.node.get_closest_marker("markdown-docs"):
        monkeypatch.chdir(request.getfixturevalue("tmp_path"))
