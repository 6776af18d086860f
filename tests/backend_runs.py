"""The other-backend runs: one pytest process per backend (a pytest plugin).

Keras picks its backend once per process, so the modules written with
`keras.ops` rerun under JAX and PyTorch in one child pytest process per
backend (`tests/test_backends.py` checks their outcome). The children run
one after the other in a background thread that starts as soon as the outer
(TensorFlow) session has collected its tests, so that they use the second
CPU core while the outer session runs everything else; the checks are moved
to the end of the session, where they wait for the outcome. The root
`conftest.py` loads this plugin.
"""

import concurrent.futures
import importlib.util
import os
import subprocess
import sys
import threading

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
MARKER = "backend_run"
# Modules written with keras.ops only; TensorFlow-only parts skip themselves.
AGNOSTIC = [
    "test_losses.py",
    "test_losses_compiled.py",
    "test_dense_targets.py",
    "test_initializers.py",
    "test_callbacks.py",
    "test_counting_sources.py",
    "test_compat.py",
    "test_kernels.py",
    "test_metrics.py",
    "test_logit_adjustment.py",
    "test_weighted_mean.py",
    "test_layout_matrix.py",
]
MODULES = {
    # test_distributed.py: keras.distribution.DataParallel over the two CPU
    # devices that XLA_FLAGS below creates.
    "jax": AGNOSTIC + ["test_mixed_precision.py", "test_distributed.py"],
    "torch": AGNOSTIC,
}
ENVIRONMENTS = {
    "jax": {
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    },
    "torch": {},
}
TIMEOUT_S = 1800  # a guard against hangs, far above a normal run

_executor = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="backend-run"
)
_futures = {}
_running = set()  # child processes to stop if the session ends early
_stopping = threading.Event()
_lock = threading.Lock()


def _run(backend):
    """Runs the backend's modules in a child pytest; returns the process'
    `(returncode, stdout, stderr)`."""
    modules = [
        os.path.join(TESTS, m)
        for m in MODULES[backend]
        if os.path.exists(os.path.join(TESTS, m))
    ]
    env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="3",
        **ENVIRONMENTS[backend],
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
            *modules,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with _lock:
        _running.add(process)
        if _stopping.is_set():  # the session ended while this one started
            process.kill()
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        stderr += f"\n(stopped after the {TIMEOUT_S} s timeout)"
    finally:
        with _lock:
            _running.discard(process)
    return process.returncode, stdout, stderr


def start(backend):
    """Queues the backend's run (once); the queue runs one at a time."""
    with _lock:
        if backend not in _futures:
            _futures[backend] = _executor.submit(_run, backend)
        return _futures[backend]


def outcome(backend):
    """Waits for the backend's run: `(returncode, stdout, stderr)`."""
    return start(backend).result()


def available(backend):
    return importlib.util.find_spec(backend) is not None


def _outer_backend():
    import keras

    return keras.backend.backend()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{MARKER}: checks a child pytest run under another "
        "backend (tests/backend_runs.py)",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    # After -k/-m deselection; stable: the checks keep their order.
    items.sort(key=lambda item: item.get_closest_marker(MARKER) is not None)


def pytest_collection_finish(session):
    backends = [
        item.callspec.params["backend"]
        for item in session.items
        if item.get_closest_marker(MARKER)
    ]
    if (
        not backends
        or session.config.option.collectonly
        or _outer_backend() != "tensorflow"
    ):
        return
    for backend in backends:
        if available(backend):
            start(backend)


def pytest_sessionfinish(session):
    _executor.shutdown(wait=False, cancel_futures=True)
    with _lock:
        _stopping.set()
        for process in _running:
            process.kill()
