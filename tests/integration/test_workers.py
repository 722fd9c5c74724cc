"""--workers N: several processes on one listening socket, one parent that owns the rest."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time

import psutil
from helpers import reserved_port, running_proxy, start_proxy, timeout, wait_for
from rawws import frame, open_websocket, read_frame, read_head, status_of, upgrade_request

from websockify.workers.liveness import SILENCE_LIMIT_S


def workers_of(proxy) -> list[psutil.Process]:
    return [p for p in psutil.Process(proxy.proc.pid).children()
            if "websockify.worker" in " ".join(p.cmdline())]


def session_pids(proxy) -> set[str]:
    """The pids in the log lines of relayed sessions."""
    return {line.split("websockify[")[1].split("]")[0] for line in proxy.lines if " target=" in line}


def echo_many(port: int, count: int) -> None:
    for i in range(count):
        ws = open_websocket(port)
        ws.sendall(frame(0x2, b"%d" % i))
        assert read_frame(ws) == (0x2, b"%d" % i)
        ws.close()


def test_workers_share_the_port_and_a_dead_one_is_replaced(echo_server):
    with running_proxy("--workers", "2", "127.0.0.1:0", echo_server.address) as proxy:
        assert "(2 workers)" in proxy.log
        workers = workers_of(proxy)
        assert len(workers) == 2
        # Each serves alone while the other is paused: which one the kernel wakes
        # when both wait is its choice, so the test does not leave it one.
        for serving, paused in (workers, workers[::-1]):
            paused.suspend()
            try:
                echo_many(proxy.port, 5)
                pid = str(serving.pid)
                wait_for(lambda pid=pid: pid in session_pids(proxy), 10, f"worker {pid} to log a session")
            finally:
                paused.resume()
        victim = workers[0]
        victim.kill()
        proxy.wait_log(rf"worker \d \(pid {victim.pid}\) exited with status 137; starting another")
        wait_for(lambda: len(workers_of(proxy)) == 2 and victim.pid not in [w.pid for w in workers_of(proxy)],
                 20, "a new worker")
        echo_many(proxy.port, 10)
        code = proxy.stop()
    assert code == 0
    for worker in workers:
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_sigterm_closes_every_workers_sessions_with_1001(echo_server):
    proxy = start_proxy("--workers", "2", "127.0.0.1:0", echo_server.address)
    try:
        sockets = [open_websocket(proxy.port) for _ in range(6)]
        workers = workers_of(proxy)
        proxy.proc.send_signal(signal.SIGTERM)
        for sock in sockets:
            opcode, payload = read_frame(sock)
            assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1001
            sock.close()
        assert proxy.proc.wait(timeout(15)) == 0
        wait_for(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers),
                 10, "the workers to be gone")
    finally:
        proxy.stop()


def test_sigkill_of_the_parent_takes_the_workers_with_it(echo_server):
    proxy = start_proxy("--workers", "2", "127.0.0.1:0", echo_server.address)
    workers = workers_of(proxy)
    assert len(workers) == 2
    proxy.proc.kill()
    proxy.proc.wait(timeout(10))
    wait_for(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers),
             10, "the workers to follow their parent")


def test_run_once_counts_sessions_across_workers(echo_server):
    proxy = start_proxy("--workers", "2", "--run-once", "127.0.0.1:0", echo_server.address)
    try:
        ws = open_websocket(proxy.port)
        ws.sendall(frame(0x2, b"one"))
        assert read_frame(ws) == (0x2, b"one")
        assert proxy.proc.poll() is None
        ws.close()
        assert proxy.proc.wait(timeout(15)) == 0
        proxy.wait_log("--run-once: the WebSocket session ended")
    finally:
        proxy.stop()


def test_workers_relay_to_a_program_the_parent_wraps(tmp_path):
    script = ("import socket, sys, threading\n"
              "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen()\n"
              "def echo(c):\n    while d := c.recv(65536): c.sendall(d)\n"
              "while True:\n    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()\n")
    (tmp_path / "echo.py").write_text(script)
    with reserved_port() as port, running_proxy("--workers", "2", str(port), "--", sys.executable,
                                                str(tmp_path / "echo.py"), str(port)) as proxy:
        proxy.wait_log("service ready")
        echo_many(port, 20)
        program = [p for p in psutil.Process(proxy.proc.pid).children() if "echo.py" in " ".join(p.cmdline())]
        assert len(program) == 1 and len(workers_of(proxy)) == 2
        code = proxy.stop()
    assert code == 128 + signal.SIGTERM  # exit mode: the program's own end by SIGTERM
    wait_for(lambda: not program[0].is_running() or program[0].status() == psutil.STATUS_ZOMBIE, 10,
             "the program to be gone")


def test_notify_ready_once_every_worker_accepts(tmp_path, echo_server):
    path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(path)
    notify.settimeout(timeout(30))
    proxy = start_proxy("--workers", "3", "127.0.0.1:0", echo_server.address, env={"NOTIFY_SOCKET": path},
                        wait_listening=False)
    try:
        while True:
            message = notify.recv(4096).decode()
            if "READY=1" in message:
                break
        assert len(workers_of(proxy)) == 3
        port = int(message.split("listening on 127.0.0.1:")[1].split(";")[0].split(" ")[0])
        started = time.monotonic()
        echo_many(port, 6)  # READY means every worker accepts: no client waits for a late one
        assert time.monotonic() - started < timeout(5)
    finally:
        proxy.stop()
        notify.close()


def test_workers_auto_follows_the_cpus_we_may_use(echo_server):
    with running_proxy("--workers", "auto", "127.0.0.1:0", echo_server.address) as proxy:
        expected = len(os.sched_getaffinity(0))
        try:  # a CPU quota (cgroup v2) caps it too: "200000 100000" is two CPUs' worth
            quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
            if quota != "max":
                expected = min(expected, max(1, -(-int(quota) // int(period))))
        except OSError:
            pass
        if expected > 1:
            assert f"({expected} workers)" in proxy.log
        else:
            assert "workers)" not in proxy.log
        echo_many(proxy.port, 4)


def test_bad_workers_value_is_one_line():
    import subprocess

    from helpers import assert_one_line_error
    result = subprocess.run([sys.executable, "-m", "websockify", "--workers", "many", "6080", "h:1"],
                            capture_output=True, text=True, timeout=timeout(30))
    assert_one_line_error(result, "--workers: 'many' is not a number of processes (1-256) or auto")


def test_per_address_cap_is_shared_out_among_workers(echo_server):
    with running_proxy("--workers", "2", "--max-connections-per-ip", "2", "127.0.0.1:0",
                       echo_server.address) as proxy:
        held, statuses = [], []
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10))
            held.append(sock)
            try:
                sock.sendall(upgrade_request())
                statuses.append(status_of(read_head(sock)))
            except ConnectionError:  # past the cap: closed at once, maybe before the request is read
                statuses.append(0)
        # Past the per-address cap a client is closed without a word (status 0 here).
        assert 1 <= statuses.count(101) <= 2 and statuses.count(0) >= 6, statuses
        for sock in held:
            sock.close()


# -- a worker that stops answering (issue 17, item 14) ------------------------------

def echo_on(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(frame(0x2, payload))
    assert read_frame(sock) == (0x2, payload)


def sessions_on(port: int, paused: psutil.Process, count: int) -> list[socket.socket]:
    """`count` sessions, all on the worker that is not `paused` (a stopped process accepts nothing)."""
    paused.suspend()
    try:
        sockets = [open_websocket(port) for _ in range(count)]
        for sock in sockets:
            echo_on(sock, b"before")
        return sockets
    finally:
        paused.resume()


def closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(timeout(10))
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_a_stopped_worker_is_killed_and_replaced_and_the_others_sessions_live_on(echo_server):
    with running_proxy("--workers", "2", "127.0.0.1:0", echo_server.address) as proxy:
        survivor, victim = workers_of(proxy)
        kept = sessions_on(proxy.port, victim, 3)
        lost = sessions_on(proxy.port, survivor, 3)
        victim.suspend()  # SIGSTOP: it holds its sessions and answers nothing
        stopped_at = time.monotonic()
        line = proxy.wait_log(rf"worker \d \(pid {victim.pid}\) silent for ([\d.]+)s \(stopped, or its event "
                              r"loop stuck\): killing it and starting another", SILENCE_LIMIT_S + 15)
        assert float(line.group(1)) >= SILENCE_LIMIT_S  # printed to a tenth
        assert time.monotonic() - stopped_at > SILENCE_LIMIT_S - 1  # its last beat came at most 1 s before
        wait_for(lambda: not victim.is_running(), 5, "the stopped worker to be killed and collected (no zombie)")
        for sock in lost:  # they closed when it died
            assert closed_by_peer(sock)
        wait_for(lambda: len(workers_of(proxy)) == 2 and victim.pid not in [w.pid for w in workers_of(proxy)],
                 15, "a new worker")
        assert survivor.is_running() and survivor.status() != psutil.STATUS_ZOMBIE
        for sock in kept:  # the other worker's sessions never noticed
            echo_on(sock, b"after")
        replacement = next(w for w in workers_of(proxy) if w.pid != survivor.pid)
        survivor.suspend()  # so the new clients can only be the new worker's
        try:
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(30))  # it may be starting
            sock.sendall(upgrade_request())
            assert status_of(read_head(sock)) == 101
            echo_on(sock, b"new")
            sock.close()
            echo_many(proxy.port, 3)
        finally:
            survivor.resume()
        wait_for(lambda: str(replacement.pid) in session_pids(proxy), 10, "the new worker to log a session")
        echo_many(proxy.port, 4)
        for sock in kept + lost:
            sock.close()
        code = proxy.stop()
    assert code == 0
    lines = [text for text in proxy.lines if f"(pid {victim.pid})" in text]
    assert len(lines) == 1 and "silent for" in lines[0], lines


def test_a_group_stopped_and_continued_keeps_its_workers(echo_server):
    # Ctrl-Z and fg stop and continue the whole process group: at fg the parent
    # may look before the workers have had a turn to speak, and must not count
    # the time it was stopped itself.
    with running_proxy("--workers", "2", "127.0.0.1:0", echo_server.address, preexec_fn=os.setpgrp) as proxy:
        workers = sorted(w.pid for w in workers_of(proxy))
        held = open_websocket(proxy.port)
        echo_on(held, b"before")
        os.killpg(proxy.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(SILENCE_LIMIT_S + 2)
        finally:
            os.killpg(proxy.proc.pid, signal.SIGCONT)
        echo_on(held, b"after")
        time.sleep(3)  # the parent's overdue check, and two more, have run
        assert sorted(w.pid for w in workers_of(proxy)) == workers
        assert "silent for" not in proxy.log
        held.close()


def test_sigterm_stops_the_group_while_a_worker_is_stopped(echo_server):
    proxy = start_proxy("--workers", "2", "127.0.0.1:0", echo_server.address)
    workers = workers_of(proxy)
    try:
        held = [open_websocket(proxy.port) for _ in range(4)]
        stopped = workers[0]
        stopped.suspend()  # a SIGTERM stays pending: only SIGKILL ends it
        proxy.proc.send_signal(signal.SIGTERM)
        # The sessions' 5 s close timeout, 2 s more, then SIGKILL.
        assert proxy.proc.wait(timeout(20)) == 0
        proxy.wait_log(rf"worker \d \(pid {stopped.pid}\) did not stop in time; killing it")
        for worker in workers:  # collected by websockify before it exited: not even a zombie
            assert not worker.is_running(), worker
        for sock in held:
            sock.close()
    finally:
        proxy.stop()
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()


def test_a_second_sigterm_kills_a_stopped_worker_at_once(echo_server):
    proxy = start_proxy("--workers", "2", "127.0.0.1:0", echo_server.address)
    workers = workers_of(proxy)
    try:
        stopped = workers[0]
        stopped.suspend()
        proxy.proc.send_signal(signal.SIGTERM)
        proxy.wait_log("shutting down")
        proxy.proc.send_signal(signal.SIGTERM)
        proxy.proc.wait(timeout(10))
        # Not left stopped forever with its SIGTERMs pending (the one its parent's death sends too).
        wait_for(lambda: not stopped.is_running() or stopped.status() == psutil.STATUS_ZOMBIE, 10,
                 "the stopped worker to be killed")
    finally:
        proxy.stop()
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
