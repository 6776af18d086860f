"""Child Python processes that the test modules share (test plumbing).

Some checks need a process of their own: TensorFlow's logical devices are
set before TensorFlow starts; a check runs under another backend; a check
shows what a fresh `import` loads. Each child starts once per pytest
session and per kind, and runs the scripts that the tests send it one after
the other, so that TensorFlow or JAX is imported once for all of them
rather than once per test (several seconds of CPU each time):

    result = children.run("tensorflow_two_cpus", SCRIPT, steps=3)

The script runs with `exec` in a namespace of its own holding `args` (the
keyword arguments: JSON values) and `workdir` (the child's own temporary
directory), and leaves a JSON-able `result` there. Its printed output goes
to the child's log; an exception in it fails the test that sent it with the
traceback and the log lines it wrote, and the child goes on. Between
scripts the child clears Keras' global state (`keras.utils.clear_session`).
`fresh=True` asks for a child that has run no script yet (e.g. to show
that a module is not imported); the next script shares it.

Kinds (`KINDS`): `tensorflow_two_cpus`, TensorFlow with the CPU split into
two logical devices and `strategy`, a `tf.distribute.MirroredStrategy` over
them that every script uses (see `TWO_CPUS`), and XLA dumping the HLO
modules of the fused focal kernel to `workdir/xla` (tests/test_kernels.py
counts its compilations there); `jax`, the JAX backend on CPU.
"""

import atexit
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)

# One strategy for every script: a second `MirroredStrategy` in the process
# would number its collective ops from the same start, and TensorFlow would
# mix them up with the first one's ("Shape mismatch in the collective").
TWO_CPUS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
strategy = tf.distribute.MirroredStrategy(
    [d.name for d in tf.config.list_logical_devices("CPU")]
)
"""

# kind: (environment, with "{workdir}" filled in; setup script, run first:
# the names it defines are in every script's namespace)
KINDS = {
    "tensorflow_two_cpus": (
        {
            "KERAS_BACKEND": "tensorflow",
            "XLA_FLAGS": "--xla_dump_to={workdir}/xla "
            "--xla_dump_hlo_module_re=.*focal.*",
        },
        TWO_CPUS,
    ),
    "jax": ({"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}, ""),
}

_children = {}  # kind -> _Child


def run(kind, script, *, fresh=False, timeout=300, **args):
    """Runs `script` in the session's child of `kind`; returns its `result`.

    Args:
        kind: A key of `KINDS`.
        script: Python source that sets `result` (JSON-able).
        fresh: Whether the child must not have run another script before
            (default False).
        timeout: Seconds for this script, the child's start included
            (default 300): a guard against hangs. Past it the child is
            stopped and the test fails.
        **args: JSON values, the script's `args`.
    """
    child = _children.get(kind)
    if child is not None and ((fresh and child.used) or not child.alive()):
        child.stop()
        child = None
    if child is None:
        child = _children[kind] = _Child(kind)
    try:
        return child.run(script, args, timeout)
    except _ChildLost:
        _children.pop(kind, None)
        child.stop(kill=True)
        raise


class _ChildLost(AssertionError):
    """The child ended or ran past the timeout."""


class _Child:
    def __init__(self, kind):
        environment, _ = KINDS[kind]
        self.kind = kind
        self.used = False
        self.workdir = tempfile.mkdtemp(prefix=f"child_{kind}_")
        self.log_path = os.path.join(self.workdir, "log.txt")
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="3",
            PYTHONPATH=os.pathsep.join(
                [ROOT, TESTS, os.environ.get("PYTHONPATH", "")]
            ),
        )
        for name, value in environment.items():
            value = value.format(workdir=self.workdir)
            if name == "XLA_FLAGS" and env.get(name):
                value = f"{env[name]} {value}"
            env[name] = value
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"import children; children._serve({kind!r})",
                ],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self._buffer = b""

    def alive(self):
        return self.process.poll() is None

    def run(self, script, args, timeout):
        self.used = True
        start = os.path.getsize(self.log_path)
        request = {"script": script, "args": args}
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise _ChildLost(self._why("ended")) from None
        reply = json.loads(self._read_line(timeout, start))
        if "error" in reply:
            raise AssertionError(
                f"the script failed in the {self.kind} child:\n"
                f"{reply['error']}\nits log:\n{self._log(start)}"
            )
        return reply["result"]

    def _read_line(self, timeout, start):
        deadline = time.monotonic() + timeout
        stdout = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([stdout], [], [], left)[0]:
                raise _ChildLost(self._why(f"ran past {timeout} s", start))
            data = os.read(stdout, 1 << 16)
            if not data:
                code = self.process.wait()
                raise _ChildLost(self._why(f"ended (exit code {code})", start))
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _why(self, what, start=0):
        return f"the {self.kind} child {what}; its log:\n{self._log(start)}"

    def _log(self, start):
        with open(self.log_path, "rb") as log:
            log.seek(start)
            text = log.read().decode(errors="replace")
        return text[-5000:]

    def stop(self, kill=False):
        """Ends the child: its loop ends with its input (or `kill`)."""
        if kill:
            self.process.kill()
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


@atexit.register
def _stop_all():
    # Killed rather than left to exit: TensorFlow's shutdown (with a
    # MirroredStrategy) takes the whole 10 s grace time, at the end of every
    # session. The children keep nothing that needs a clean exit.
    while _children:
        _children.popitem()[1].stop(kill=True)


def _serve(kind):
    """The child: runs the scripts read from stdin (one JSON line each)."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # prints (Python's and C++'s) go to the log
    setup = {}
    exec(KINDS[kind][1], setup)
    workdir = os.getcwd()
    for line in sys.stdin:
        request = json.loads(line)
        namespace = {
            **setup,
            "__name__": "__script__",
            "args": request["args"],
            "workdir": workdir,
        }
        try:
            exec(compile(request["script"], "<script>", "exec"), namespace)
            reply = json.dumps({"result": namespace["result"]})
        except (Exception, SystemExit):
            reply = json.dumps({"error": traceback.format_exc()})
        if "keras" in sys.modules:
            sys.modules["keras"].utils.clear_session()
        replies.write(reply + "\n")
        replies.flush()
