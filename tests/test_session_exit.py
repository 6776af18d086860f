"""How a pytest session of this repository ends: exit status, last reports,
background processes.

The root `conftest.py` ends a `pytest` process with `os._exit` in
`pytest_unconfigure`, and `tests/backend_runs.py` starts child pytest
processes in the background. These tests run small pytest sessions in
subprocesses, with this repository's `conftest.py` loaded as a plugin
(`-p conftest`) and a test module written to a temporary directory, and
compare with what plain pytest does (the reference).

Each failing test here shows a defect found by checking the changes of
commit 0430edd against public reports:

- pytest runs its config cleanups (`Config.add_cleanup`: the final
  garbage collection that reports unraisable exceptions, the thread
  exception report) after `pytest_unconfigure`; `os._exit` there skips
  them, so those reports are lost and, with `-W error`, the exit status is
  0 where plain pytest gives 1 (cf. facebookresearch/momentum#1312, an
  `os._exit` that masked pytest's exit status).
- A session stopped by SIGTERM (`timeout`, a CI job cancelled) leaves its
  background child pytest processes running (minutes of CPU); SIGINT
  stops them.
- `--ignore=tests/test_backends.py` still counts as the whole suite, so
  the JAX and PyTorch runs start although no selected test waits for them.
"""

import os
import signal
import subprocess
import sys
import time
import types

import backend_runs
import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)

CYCLE_MODULE = """
import gc


class Boom:
    def __del__(self):
        raise ValueError("raised in __del__ of a cycle")


def test_leaves_a_cycle_for_the_final_collection():
    gc.disable()  # collected by pytest's cleanup at the end of the session
    boom = Boom()
    boom.me = boom
    del boom
"""

SLEEPER_MODULE = """
import os
import sys

import backend_runs
import pytest

PIDFILE = os.environ["KCB_TEST_PIDFILE"]
backend_runs.command(
    "sleeper",
    [
        sys.executable,
        "-c",
        f"import os, time; open({PIDFILE!r}, 'w').write(str(os.getpid())); "
        "time.sleep(120)",
    ],
)


@pytest.mark.backend_run(run="sleeper")
def test_waits_for_a_background_run():
    backend_runs.outcome("sleeper")
"""


def _environment(**extra):
    env = dict(os.environ, **extra)
    env.pop("KCB_RUN_LOG", None)  # these sessions are not the one measured
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT, TESTS, os.environ.get("PYTHONPATH", "")]
    )
    # Keras' NumPy backend: `import keras` in the plugin stays light.
    env["KERAS_BACKEND"] = "numpy"
    return env


def _pytest(directory, *args, with_conftest):
    plugin = ["-p", "conftest"] if with_conftest else []
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugin, "-p", "no:cacheprovider"]
        + ["-q", *args],
        cwd=directory,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_reports_of_pytests_final_cleanup_and_their_exit_status_are_kept(
    tmp_path,
):
    (tmp_path / "test_cycle.py").write_text(CYCLE_MODULE)
    args = ["-W", "error::pytest.PytestUnraisableExceptionWarning"]
    plain = _pytest(tmp_path, *args, with_conftest=False)
    ours = _pytest(tmp_path, *args, with_conftest=True)
    # The reference: plain pytest reports the exception and exits with 1.
    assert plain.returncode == 1
    assert "PytestUnraisableExceptionWarning" in plain.stdout + plain.stderr
    assert "PytestUnraisableExceptionWarning" in ours.stdout + ours.stderr
    assert ours.returncode == plain.returncode


def _running(pid):
    """Whether process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stopped_session_leaves_no_background_run(tmp_path, signal_name):
    (tmp_path / "test_sleeper.py").write_text(SLEEPER_MODULE)
    pidfile = tmp_path / "sleeper.pid"
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "conftest"]
        + ["-p", "no:cacheprovider", "-q", "test_sleeper.py"],
        cwd=tmp_path,
        env=_environment(KCB_TEST_PIDFILE=str(pidfile)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sleeper = None
    try:
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()):
            assert session.poll() is None, "the session ended too early"
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        sleeper = int(pidfile.read_text())
        session.send_signal(getattr(signal, signal_name))
        session.wait(timeout=60)
        time.sleep(0.5)
        assert not _running(sleeper), (
            f"the background run (pid {sleeper}) outlived the session "
            f"stopped by {signal_name}"
        )
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
        if sleeper is not None and _running(sleeper):
            os.kill(sleeper, signal.SIGKILL)


def test_an_ignored_module_is_not_the_whole_suite():
    # The options of `pytest --ignore=tests/test_backends.py` (pytest's
    # defaults otherwise): the JAX and PyTorch runs are not needed.
    option = types.SimpleNamespace(
        keyword="",
        markexpr="",
        collectonly=False,
        deselect=None,
        ignore=["tests/test_backends.py"],
        ignore_glob=None,
        lf=False,
        failedfirst=False,
    )
    config = types.SimpleNamespace(
        args_source=pytest.Config.ArgsSource.TESTPATHS, option=option
    )
    assert not backend_runs._whole_suite(config)
    # The same options without --ignore are the whole suite.
    option.ignore = None
    assert backend_runs._whole_suite(config)
