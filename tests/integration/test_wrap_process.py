"""Process control: no Python runs in a forked child, the watchdog is its own program, ctypes is lazy."""
import os
import signal
import subprocess
import sys
import uuid

from helpers import ROOT, timeout, wait_for

NO_PYTHON_AFTER_FORK = """
import os
from websockify.wrap import process

# Python runs these in a forked child only when it runs Python code there
# (preexec_fn, os.fork): exactly what must not happen once threads exist.
os.register_at_fork(after_in_child=lambda: os.write(1, b"python ran in a forked child\\n"))
pid = process.spawn(["true"], dict(os.environ))
print("program exited", os.waitpid(pid, 0)[1], flush=True)
watchdog = process.start_watchdog("TEST_MARKER=nobody")
process.stop_watchdog(watchdog)
print("watchdog stopped", flush=True)
"""


def test_spawning_the_program_and_the_watchdog_runs_no_python_in_a_forked_child():
    result = subprocess.run([sys.executable, "-c", NO_PYTHON_AFTER_FORK], capture_output=True, text=True,
                            timeout=timeout(60), cwd=ROOT)
    assert (result.stdout, result.stderr) == ("program exited 0\nwatchdog stopped\n", "")


def test_importing_process_control_loads_no_ctypes():
    code = "import sys, websockify.wrap.process; print('ctypes' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout(60))
    assert result.stdout == "False\n", result.stderr


def ignored_signals(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigIgn:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigIgn line")


def test_watchdog_kills_only_the_marked_processes_once_its_pipe_closes():
    marker = uuid.uuid4().hex
    read_end, write_end = os.pipe()
    watchdog = subprocess.Popen([sys.executable, "-m", "websockify.wrap.watchdog", str(read_end),
                                 f"TEST_MARKER={marker}"], pass_fds=[read_end], start_new_session=True, cwd=ROOT)
    os.close(read_end)
    marked = subprocess.Popen(["sleep", "600"], env={**os.environ, "TEST_MARKER": marker})
    other = subprocess.Popen(["sleep", "600"], env={**os.environ, "TEST_MARKER": "another run"})
    try:
        stop_signals = (1 << signal.SIGHUP - 1) | (1 << signal.SIGINT - 1) | (1 << signal.SIGTERM - 1)
        wait_for(lambda: ignored_signals(watchdog.pid) & stop_signals == stop_signals, 20,
                 "the watchdog to ignore SIGHUP, SIGINT and SIGTERM")
        watchdog.send_signal(signal.SIGTERM)  # ignored: only the pipe's end ends it
        watchdog.send_signal(signal.SIGINT)
        os.close(write_end)
        assert watchdog.wait(timeout(20)) == 0
        assert marked.wait(timeout(10)) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for process in (watchdog, marked, other):
            if process.poll() is None:
                process.kill()
                process.wait(timeout(10))


def test_watchdog_refuses_bad_arguments():
    result = subprocess.run([sys.executable, "-m", "websockify.wrap.watchdog", "x"], capture_output=True,
                            text=True, timeout=timeout(60), cwd=ROOT)
    assert (result.returncode, result.stderr) == (2, "usage: python -m websockify.wrap.watchdog FD NAME=VALUE\n")
