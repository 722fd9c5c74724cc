"""`make run`'s script: the banner only once the port is open, the page served, Ctrl-C ends it all."""
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid

from helpers import ROOT, get, processes_with, reserved_port, timeout, wait_for

SCRIPT = os.path.join(ROOT, "scripts", "run_demo.sh")
BIN = os.path.dirname(sys.executable)


def start(port: int, marker: str) -> subprocess.Popen:
    return subprocess.Popen([SCRIPT, BIN, str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "RUN_DEMO_TEST": marker})


def lines_of(stream) -> "queue.Queue[str]":
    """The stream's lines as they come, read on a thread, so that every wait can be bounded."""
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def test_banner_once_listening_then_ctrl_c_stops_everything():
    marker = f"RUN_DEMO_TEST={uuid.uuid4().hex}"
    with reserved_port() as port:
        proc = start(port, marker.split("=")[1])
        try:
            stdout = lines_of(proc.stdout)
            banner = f"Open http://localhost:{port}/ in a browser (Ctrl-C to stop).\n"
            # The chat server prints a line of its own on the same terminal, once it
            # is ready: wait for both, so that Ctrl-C does not cut its start short.
            seen = set()
            while len(seen) < 2:
                line = stdout.get(timeout=timeout(20))
                seen |= {"banner"} if line == banner else {"chat"} if line.startswith("chat server listening") else set()
            # The banner promises an open port: the page is there at once.
            status, _, body = get(type("P", (), {"port": port}), "/")
            assert status == 200 and b"<html" in body.lower()
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to the terminal's process group
            proc.wait(timeout=timeout(20))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout(10))
    assert proc.returncode == 0
    wait_for(lambda: not processes_with(marker), 10, "the demo's processes to end")


def test_a_port_in_use_prints_the_error_and_no_banner():
    import socket
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        proc = start(taken.getsockname()[1], uuid.uuid4().hex)
        out, err = proc.communicate(timeout=timeout(30))
    assert proc.returncode == 1  # a start-up failure, as websockify exits with it
    assert out == ""
    assert "websockify: error: cannot listen on" in err and "Address already in use" in err
