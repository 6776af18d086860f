"""The backend-agnostic test modules pass under JAX and PyTorch.

Each backend's modules (`MODULES` in tests/backend_runs.py) run in one child
pytest process under it; the runs start in the background with the outer
(TensorFlow) session (or once it has collected its tests, when it runs a
selection), and these checks, which the plugin moves to the end of the
session, wait for their outcome. A module
written with `keras.ops` (TensorFlow-only parts skip themselves) joins by
being listed there.
"""

import os
import sys

import backend_runs
import keras
import pytest

# The suite compiles with XLA's LLVM optimisation off (FAST_XLA_FLAGS in
# tests/backend_runs.py); the kernel tests run once more as users' code is
# compiled, with it on, in the background (their value and derivative tests).
backend_runs.command(
    "optimised-xla",
    [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-x",
        os.path.join(backend_runs.TESTS, "test_kernels.py"),
        # the values and derivatives; not the compile counts and cluster
        # checks, which do not depend on LLVM's optimisation
        "-k",
        "not padded_batch and not xla_cluster and not inline and not buckets",
    ],
    env={"KCB_OPTIMISED_XLA": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
    cost=25,
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        # each backend's run is named after it
        pytest.param(b, marks=pytest.mark.backend_run(run=b))
        for b in backend_runs.MODULES
    ],
)
def test_backend_agnostic_modules_pass(backend):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the runs start from the TensorFlow session only")
    if not backend_runs.available(backend):
        pytest.skip(f"{backend} is not installed")
    returncode, stdout, stderr = backend_runs.outcome(backend)
    summary = stdout.strip().splitlines()[-1:] or [""]
    print(f"{backend}: {summary[0]}")
    assert returncode == 0, stdout[-6000:] + stderr[-2000:]


@pytest.mark.slow
@pytest.mark.backend_run(run="optimised-xla")
def test_kernel_tests_pass_with_xlas_optimisation():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the run starts from the TensorFlow session only")
    returncode, stdout, stderr = backend_runs.outcome("optimised-xla")
    assert returncode == 0, stdout[-6000:] + stderr[-2000:]
    assert " passed" in stdout.strip().splitlines()[-1]


def test_every_module_of_a_backend_is_listed_once():
    by_backend = backend_runs.MODULES
    for backend, modules in by_backend.items():
        assert len(modules) == len(set(modules)), backend
    assert set(by_backend["jax"]) == set(by_backend["torch"]) | {
        "test_distributed.py",
        "test_mixed_precision.py",
    }
