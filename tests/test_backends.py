"""Reruns the backend-agnostic test modules under JAX and PyTorch.

Keras picks its backend once per process, so each backend gets its own
pytest run in a subprocess. The outer run is the TensorFlow one.
"""

import importlib.util
import os
import subprocess
import sys

import keras
import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
# Modules written with keras.ops only; TF-specific parts skip themselves.
MODULES = ["test_losses.py", "test_initializers.py", "test_callbacks.py",
           "test_logit_adjustment.py"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_agnostic_modules_pass(backend):
    if keras.backend.backend() != "tensorflow" or os.environ.get(
        "KERAS_CBLOSS_CHILD_RUN"
    ):
        pytest.skip("the driver runs from the TensorFlow process only")
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    modules = [
        os.path.join(TESTS, m) for m in MODULES
        if os.path.exists(os.path.join(TESTS, m))
    ]
    env = dict(os.environ, KERAS_BACKEND=backend, KERAS_CBLOSS_CHILD_RUN="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-x", *modules],
        env=env, capture_output=True, text=True, timeout=1200,
    )
    summary = result.stdout.strip().splitlines()[-1:] or [""]
    print(f"{backend}: {summary[0]}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
