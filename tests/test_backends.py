"""The backend-agnostic test modules pass under JAX and PyTorch.

Each backend's modules (`MODULES` in tests/backend_runs.py) run in one
child pytest process; the runs start in the background when the outer
(TensorFlow) session has collected its tests, and these checks, which the
plugin moves to the end of the session, wait for their outcome. A module
written with `keras.ops` (TensorFlow-only parts skip themselves) joins by
being listed there.
"""

import backend_runs
import keras
import pytest


@pytest.mark.slow
@pytest.mark.backend_run
@pytest.mark.parametrize("backend", sorted(backend_runs.MODULES))
def test_backend_agnostic_modules_pass(backend):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the runs start from the TensorFlow session only")
    if not backend_runs.available(backend):
        pytest.skip(f"{backend} is not installed")
    returncode, stdout, stderr = backend_runs.outcome(backend)
    summary = stdout.strip().splitlines()[-1:] or [""]
    print(f"{backend}: {summary[0]}")
    assert returncode == 0, stdout[-6000:] + stderr[-2000:]
