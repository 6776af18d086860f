"""The other-backend runs: child pytest processes (a pytest plugin).

Keras picks its backend once per process, so the modules written with
`keras.ops` rerun under JAX and PyTorch in child pytest processes
(`tests/test_backends.py` checks their outcome): one run per backend
(`MODULES`). The work is shared between the two CPU cores:

- as soon as the outer (TensorFlow) session starts (when it runs the whole
  suite; otherwise once it has collected its tests and knows which runs
  they need), one background worker starts the runs one after the other,
  using the second core while the outer session runs everything else;
- when the outer session reaches the checks (which this plugin moves to the
  end of the session) its own core is free, and a second worker takes the
  runs not yet started.

Other tests whose work is a fixed command in a subprocess (the benchmark
scripts' smoke runs) register it with `command()`: it joins the same queue,
and its test, marked `backend_run` as the checks are, reads the outcome at
the end. Besides sharing the cores, this keeps the outer process from
waiting idle on subprocesses for minutes in a row (on the project's
machines, memory reclaim then pages TensorFlow's libraries out, and the next
test waits for them to page in again, up to a minute).

Setting `KCB_RUN_LOG=DIR` writes each run's output, with its start and
end (seconds after the first run started) and `--durations=0` for the
child pytests, to `DIR/<run>.log`: where the background time goes.

A run killed by a signal from outside (SIGTERM or SIGKILL, e.g. a process
cleanup on a shared machine) is started once more; any other failure,
crashes included, is reported as it is. The root `conftest.py` loads this
plugin.
"""

import importlib.util
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
MARKER = "backend_run"
# Modules written with keras.ops only; TensorFlow-only parts skip themselves.
# Each backend's modules run in one child process, the backend's run (named
# after it; each process pays about 10 s to import TensorFlow, the backend and
# the test modules). The runs start with the session and end before it
# reaches its checks on a 2-core machine; the longest starts first.
MODULES = {
    "jax": [
        "test_callbacks.py",
        "test_losses.py",
        "test_losses_compiled.py",
        "test_metrics.py",
        "test_layout_matrix.py",
        "test_counting_sources.py",
        "test_compat.py",
        "test_initializers.py",
        "test_dense_targets.py",
        "test_kernels.py",
        "test_logit_adjustment.py",
        "test_weighted_mean.py",
        # keras.distribution.DataParallel over the two CPU devices that
        # XLA_FLAGS below creates.
        "test_distributed.py",
        "test_mixed_precision.py",
    ],
    "torch": [
        "test_callbacks.py",
        "test_losses.py",
        "test_losses_compiled.py",
        "test_dense_targets.py",
        "test_initializers.py",
        "test_counting_sources.py",
        "test_compat.py",
        "test_kernels.py",
        "test_metrics.py",
        "test_logit_adjustment.py",
        "test_weighted_mean.py",
        "test_layout_matrix.py",
    ],
}
# Estimated seconds of each run on a 2-core machine (the queue starts the
# longest first).
COSTS = {"jax": 260, "torch": 65}
ENVIRONMENTS = {
    "jax": {
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    },
    "torch": {},
}
# XLA options for every test process (set by this plugin when it loads,
# before TensorFlow or JAX starts; child processes inherit them):
# the suite compiles thousands of small XLA programs (JAX compiles each eager
# op once per shape; TensorFlow each `jit_compile` step), and LLVM's
# optimisation of them costs more time than it saves (the suite takes about
# a quarter less CPU time without it). Values may differ from the optimised
# build's in the last bits (at most 1.3e-7 relative over every loss, layout
# and gradient, measured against a float64 reference; 16-bit results
# identical), well inside the tests' tolerances.
# The registered commands (the benchmarks' smoke runs) run without them:
# they time compiled code.
FAST_XLA_FLAGS = (
    "--xla_backend_optimization_level=0",
    "--xla_llvm_disable_expensive_passes=true",
)


def with_fast_xla(flags):
    """`flags` (an XLA_FLAGS value) with FAST_XLA_FLAGS added."""
    words = (flags or "").split()
    return " ".join(words + [f for f in FAST_XLA_FLAGS if f not in words])


def without_fast_xla(flags):
    """`flags` (an XLA_FLAGS value) without FAST_XLA_FLAGS."""
    return " ".join(f for f in (flags or "").split() if f not in FAST_XLA_FLAGS)


# Loaded from the root conftest.py, before any test module imports
# TensorFlow or JAX (XLA reads the variable once, when it starts).
# KCB_OPTIMISED_XLA=1 keeps XLA's optimisation (the check in
# tests/test_backends.py that reruns the kernel tests as users compile them).
if not os.environ.get("KCB_OPTIMISED_XLA"):
    os.environ["XLA_FLAGS"] = with_fast_xla(os.environ.get("XLA_FLAGS"))

TIMEOUT_S = 1800  # a guard against hangs, far above a normal run
# Exit statuses of a child stopped from outside: it is started once more.
_KILLED = (-signal.SIGTERM, -signal.SIGKILL)

_commands = {}  # name -> (argv, env, cwd, cost) of the registered commands
_futures = {}  # run name -> Future of (returncode, stdout, stderr)
_pending = queue.SimpleQueue()  # run names queued, not yet started
_workers = []
_running = set()  # child processes to stop if the session ends early
_stopping = threading.Event()
_lock = threading.Lock()
_LOG = os.environ.get("KCB_RUN_LOG")
_t0 = []  # when the first run started (time.monotonic())


def command(name, argv, env=None, cwd=None, cost=10):
    """Registers a subprocess command as run `name` (once, at import).

    Its test, marked `@pytest.mark.backend_run(run=name)`, waits for it with
    `outcome(name)`: `(returncode, stdout, stderr)`. `cost`: its estimated
    seconds, for the queue's order."""
    _commands.setdefault(name, (list(argv), env, cwd, cost))


def _cost(run):
    return COSTS[run] if run in MODULES else _commands[run][3]


def _argv_env_cwd(run):
    if run in _commands:
        argv, env, cwd, _ = _commands[run]
        env = dict(os.environ, **(env or {}))
        env["XLA_FLAGS"] = without_fast_xla(env.get("XLA_FLAGS"))
        return argv, env, cwd
    backend = run
    paths = [
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
    if "XLA_FLAGS" in ENVIRONMENTS[backend]:
        extra = ENVIRONMENTS[backend]["XLA_FLAGS"]
        env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {extra}".strip()
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if _LOG:
        argv.append("--durations=0")
    return argv + ["-x", *paths], env, None


def _child(run):
    argv, env, cwd = _argv_env_cwd(run)
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
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


def _run(run):
    """Runs `run` in a child pytest: `(returncode, stdout, stderr)`."""
    with _lock:
        start = time.monotonic()
        _t0[:] = _t0 or [start]
    returncode, stdout, stderr = _child(run)
    if returncode in _KILLED and not _stopping.is_set():
        note = f"(the first try was stopped by signal {-returncode}; rerun)\n"
        returncode, stdout, stderr = _child(run)
        stderr = note + stderr
    if _LOG:
        os.makedirs(_LOG, exist_ok=True)
        began, ended = start - _t0[0], time.monotonic() - _t0[0]
        with open(os.path.join(_LOG, f"{run}.log"), "w") as log:
            log.write(f"{run}: {began:.1f} s -> {ended:.1f} s ")
            log.write(f"({ended - began:.1f} s), exit {returncode}\n")
            log.write(stdout + stderr)
    return returncode, stdout, stderr


def _work():
    """A worker: takes queued runs until none is left."""
    while not _stopping.is_set():
        try:
            run = _pending.get_nowait()
        except queue.Empty:
            return
        future = _futures[run]
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(_run(run))
        except BaseException as error:  # reported by the check that waits
            future.set_exception(error)


def _ensure_workers(count):
    """Keeps `count` workers (1 or 2) taking the queued runs."""
    with _lock:
        if _stopping.is_set():
            return
        _workers[:] = [worker for worker in _workers if worker.is_alive()]
        new = [
            threading.Thread(target=_work, name="backend-run", daemon=True)
            for _ in range(count - len(_workers))
        ]
        _workers.extend(new)
    for worker in new:
        worker.start()


def start(runs):
    """Queues `runs` (each once, the longest first) and starts the first
    worker."""
    with _lock:
        for run in sorted(runs, key=_cost, reverse=True):
            if run not in _futures:
                _futures[run] = Future()
                _pending.put(run)
    _catch_sigterm()
    _ensure_workers(1)


def outcome(run):
    """Waits for `run`: `(returncode, stdout, stderr)`. The caller's core
    is free from here on, so a second worker takes the runs not started."""
    start([run])
    if _LOG and not os.path.exists(os.path.join(_LOG, "checks.log")):
        os.makedirs(_LOG, exist_ok=True)
        with open(os.path.join(_LOG, "checks.log"), "w") as log:
            when = time.monotonic() - (_t0 or [time.monotonic()])[0]
            log.write(f"the session reached the checks at {when:.1f} s\n")
    while True:
        _ensure_workers(2)
        try:
            return _futures[run].result(timeout=5)
        except TimeoutError:
            continue


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


def _run_of(item):
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    if "run" in marker.kwargs:
        return marker.kwargs["run"]
    return item.callspec.params["run"]


def _startable(run):
    if run in MODULES:
        return available(run)
    return run in _commands


def _whole_suite(config):
    """Whether the session runs the default selection (the `testpaths`,
    nothing deselected): then every run is needed."""
    option = config.option
    return (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not option.keyword
        and not option.markexpr
        and not option.collectonly
        and not option.deselect
        and not getattr(option, "ignore", None)
        and not getattr(option, "ignore_glob", None)
        and not getattr(option, "stepwise", False)
        and not getattr(option, "lf", False)
        and not getattr(option, "failedfirst", False)
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    # The runs need no collected test: start them while this session
    # collects (about 15 s of one core's time).
    if _whole_suite(session.config) and _outer_backend() == "tensorflow":
        start([run for run in MODULES if _startable(run)])


def pytest_collection_finish(session):
    runs = {_run_of(item) for item in session.items} - {None}
    if (
        not runs
        or session.config.option.collectonly
        or _outer_backend() != "tensorflow"
    ):
        return
    start([run for run in runs if _startable(run)])


def _stop_everything():
    """Stops the workers and kills the running children."""
    with _lock:
        _stopping.set()
        for process in _running:
            process.kill()
    while True:
        try:
            _futures[_pending.get_nowait()].cancel()
        except queue.Empty:
            break


_previous_sigterm = []  # the SIGTERM handler before ours, while ours is set


def _on_sigterm(signum, frame):
    # A session stopped by SIGTERM (`timeout`, a cancelled CI job) takes its
    # children along (KeyboardInterrupt from SIGINT ends the session through
    # pytest_sessionfinish), then lets the signal do what it did before.
    _stop_everything()
    signal.signal(signum, _previous_sigterm.pop() or signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _catch_sigterm():
    if threading.current_thread() is threading.main_thread():
        if not _previous_sigterm:
            _previous_sigterm.append(signal.signal(signal.SIGTERM, _on_sigterm))


def pytest_sessionfinish(session):
    _stop_everything()
    if _previous_sigterm:
        signal.signal(signal.SIGTERM, _previous_sigterm.pop() or signal.SIG_DFL)
