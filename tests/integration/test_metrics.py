"""--metrics (issue 19, items 5 and 6): /metrics scraped and parsed with prometheus_client's
own parser before and after a known set of sessions and failures, each counter moving by
exactly what happened, in one process and summed over --workers 2; /healthz and /readyz,
which flips while a wrapped program is starting or down and during a graceful stop."""
from __future__ import annotations

import os
import re
import signal
import socket

import psutil
import pytest
from helpers import ROOT, running_proxy, timeout, wait_for
from prometheus_client.parser import text_string_to_metric_families
from rawws import frame, read_frame, read_head, read_until_close, status_of, upgrade_request
from wrapping import ECHO, marked, marker_fixture, open_gate, stop_and_check, wrap

from websockify.protocol.proxy_header import encode_v2

PLUGINS = {"PYTHONPATH": os.path.join(ROOT, "tests", "plugins")}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def marker():
    yield from marker_fixture()


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return status_of(head + b"\r\n\r\n"), body


def scrape(port: int) -> Samples:
    status, body = get(port, "/metrics")
    assert status == 200
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples) -> dict[str, float]:
    """Every sample that changed, by name and labels, with how much."""
    return {f"{name}{dict(sorted(labels))}": after[name, labels] - before.get((name, labels), 0.0)
            for name, labels in after if after[name, labels] != before.get((name, labels), 0.0)}


def metrics_port(proxy) -> int:
    return int(proxy.wait_log(r"/readyz on http://127\.0\.0\.1:(\d+)/").group(1))


def echo_session(port: int, token: str, payload: bytes) -> None:
    """One session: `payload` there and back, then a normal close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        sock.sendall(upgrade_request(f"/?token={token}"))
        assert status_of(read_head(sock)) == 101
        sock.sendall(frame(0x2, payload))
        assert read_frame(sock) == (0x2, payload)
        sock.sendall(frame(0x8, (1000).to_bytes(2, "big")))
        assert read_until_close(sock) == 1000


def refused(port: int, path: str, extra: str = "") -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        sock.sendall(upgrade_request(path, extra))
        return status_of(read_head(sock))


def unreachable_session(port: int) -> int | None:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        sock.sendall(upgrade_request("/?token=dead"))
        assert status_of(read_head(sock)) == 101
        return read_until_close(sock)


def silent_client(port: int) -> None:
    """Connects and says nothing: the handshake deadline drops it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
        assert sock.recv(1) == b""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def known_traffic(port: int, sessions: int) -> None:
    for _ in range(sessions):
        echo_session(port, "one", b"x" * 100)
    assert unreachable_session(port) == 1011
    assert refused(port, "/?token=nope") == 404
    assert refused(port, "/?token=one", "Origin: http://evil.example\r\n") == 403
    silent_client(port)


def expected(sessions: int) -> dict[str, float]:
    return {
        "websockify_sessions_total{'outcome': 'normal'}": sessions,
        "websockify_sessions_total{'outcome': 'server_error'}": 1,
        "websockify_relayed_bytes_total{'direction': 'up'}": 100 * sessions,
        "websockify_relayed_bytes_total{'direction': 'down'}": 100 * sessions,
        "websockify_handshake_failures_total{'reason': 'token_unknown'}": 1,
        "websockify_handshake_failures_total{'reason': 'origin'}": 1,
        "websockify_handshake_failures_total{'reason': 'timeout'}": 1,
        # one, one..., dead, nope: the refused origin is never looked up
        "websockify_token_lookup_seconds_count{}": sessions + 2,
        "websockify_target_connect_seconds_count{'result': 'ok'}": sessions,
        "websockify_target_connect_seconds_count{'result': 'failed'}": 1,
    }


def counted(changes: dict[str, float]) -> dict[str, float]:
    """The counts among the changes (sums and buckets follow from the clock)."""
    return {key: change for key, change in changes.items()
            if not re.match(r"websockify_(token_lookup|target_connect)_seconds_(sum|bucket)|websockify_open_fds", key)}


def routes(echo_server) -> str:
    return f"one={echo_server.address};dead=127.0.0.1:{closed_port()}"


def test_each_counter_moves_by_what_happened(echo_server):
    with running_proxy("--metrics", "127.0.0.1:0", "--token-plugin", "routing_plugins.Table",
                       "--token-source", routes(echo_server), "--allowed-origins", "http://good.example",
                       "--handshake-timeout", "1", "127.0.0.1:0", env=PLUGINS) as proxy:
        port = metrics_port(proxy)
        before = scrape(port)
        assert value(before, "websockify_sessions_total", outcome="normal") == 0  # there before the first
        known_traffic(proxy.port, 3)
        wait_for(lambda: value(scrape(port), "websockify_sessions_open") == 0, 10, "the sessions to end")
        after = scrape(port)
        assert counted(moved(before, after)) == expected(3)
        assert 0 < value(after, "websockify_open_fds", process="main") <= value(after, "websockify_max_fds",
                                                                                process="main")
        assert value(after, "websockify_token_lookup_seconds_bucket", le="+Inf") == 5


def worker_pids(proxy) -> list[int]:
    return [child.pid for child in psutil.Process(proxy.proc.pid).children()
            if "websockify.worker" in " ".join(child.cmdline())]


def test_workers_are_summed_and_a_restarted_workers_counts_kept(echo_server):
    with running_proxy("--workers", "2", "--metrics", "127.0.0.1:0", "--token-plugin", "routing_plugins.Table",
                       "--token-source", routes(echo_server), "--allowed-origins", "http://good.example",
                       "--handshake-timeout", "1", "127.0.0.1:0", env=PLUGINS) as proxy:
        port = metrics_port(proxy)
        before = scrape(port)
        known_traffic(proxy.port, 6)
        wait_for(lambda: value(scrape(port), "websockify_sessions_open") == 0, 10, "the sessions to end")
        after = scrape(port)
        assert counted(moved(before, after)) == expected(6)
        assert {labels for name, labels in after if name == "websockify_open_fds"} == {
            frozenset({("process", "main")}), frozenset({("process", "worker-0")}),
            frozenset({("process", "worker-1")})}
        killed = worker_pids(proxy)[0]
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: value(scrape(port), "websockify_worker_restarts_total") == 1, 20, "a new worker")
        wait_for(lambda: len(worker_pids(proxy)) == 2 and killed not in worker_pids(proxy), 20, "two workers")
        later = scrape(port)
        assert value(later, "websockify_sessions_total", outcome="normal") == 6  # the dead worker's kept
        assert value(later, "websockify_sessions_open") == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_multiprocess_directory_in_the_users_environment_changes_nothing(echo_server, workers):
    with running_proxy("--workers", workers, "--metrics", "127.0.0.1:0", "127.0.0.1:0", echo_server.address,
                       env={"PROMETHEUS_MULTIPROC_DIR": "/nonexistent/directory"}) as proxy:
        port = metrics_port(proxy)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as sock:
            sock.sendall(upgrade_request("/"))
            assert status_of(read_head(sock)) == 101
            sock.sendall(frame(0x8, (1000).to_bytes(2, "big")))
            assert read_until_close(sock) == 1000
        wait_for(lambda: value(scrape(port), "websockify_sessions_total", outcome="normal") == 1, 10,
                 "the session counted")
    assert "Traceback" not in proxy.log


def test_health_and_ready_and_nothing_else(echo_server):
    with running_proxy("--metrics", "127.0.0.1:0", "127.0.0.1:0", echo_server.address) as proxy:
        port = metrics_port(proxy)
        assert get(port, "/healthz") == (200, b"ok\n")
        assert get(port, "/readyz") == (200, b"ready\n")
        assert get(port, "/readyz", "HEAD") == (200, b"")
        assert get(port, "/")[0] == 404
        assert get(port, "/metrics", "POST")[0] == 405
        with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
            sock.sendall(b"\x16\x03\x01 not http\r\n\r\n")
            assert status_of(read_head(sock)) == 400
        with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
            # A balancer that sends a PROXY header to the clients' port may send one with its checks.
            sock.sendall(encode_v2(("10.0.0.2", 40000), ("127.0.0.1", port)) + b"GET /readyz HTTP/1.1\r\n\r\n")
            assert status_of(read_head(sock)) == 200
        with socket.create_connection(("127.0.0.1", port), timeout=timeout(10)) as sock:
            sock.sendall(b"DELETE /metrics HTTP/1.1\r\n\r\n")
            assert b"\r\nAllow: GET, HEAD\r\n" in read_head(sock)
        # The public port does not serve them.
        assert refused(proxy.port, "/metrics") != 200
    assert "Traceback" not in proxy.log


def test_a_metrics_port_in_use_is_one_line_and_exit_1(echo_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with running_proxy("--metrics", f"127.0.0.1:{taken.getsockname()[1]}", "127.0.0.1:0", echo_server.address,
                           wait_listening=False) as proxy:
            assert proxy.proc.wait(timeout(20)) == 1
    assert re.search(r"--metrics 127\.0\.0\.1:\d+: cannot listen: Address already in use", proxy.log)
    assert "Traceback" not in proxy.log


def ready(port: int) -> tuple[int, bytes]:
    return get(port, "/readyz")


def test_ready_flips_while_the_wrapped_program_starts_or_restarts(marker, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    proxy = wrap(marker, "--metrics", "127.0.0.1:0", "--wrap-mode", "respawn", "{port}", "--",
                 *ECHO, "--port", "{port}", "--listen-gate", str(gate))
    try:
        port = metrics_port(proxy)
        writer = open_gate(str(gate))
        assert ready(port) == (503, b"not ready: wrapped program starting\n")
        assert value(scrape(port), "websockify_wrapped_program_state", state="starting") == 1
        os.close(writer)
        wait_for(lambda: ready(port)[0] == 200, 20, "ready once the program listens")
        assert value(scrape(port), "websockify_wrapped_program_state", state="ready") == 1
        os.kill(marked(marker)[0], signal.SIGKILL)
        wait_for(lambda: ready(port)[0] == 503, 20, "not ready while it restarts")
        writer = open_gate(str(gate))  # the new one waits at the gate: still not ready
        assert ready(port) == (503, b"not ready: wrapped program starting\n")
        os.close(writer)
        wait_for(lambda: ready(port)[0] == 200, 20, "ready again")
        assert value(scrape(port), "websockify_wrapped_program_restarts_total") == 1
    finally:
        assert stop_and_check(proxy, marker) == 143


def test_ready_is_off_for_a_program_that_is_down(marker):
    proxy = wrap(marker, "--metrics", "127.0.0.1:0", "--wrap-mode", "ignore", "{port}", "--", "sh", "-c", "exit 3")
    try:
        port = metrics_port(proxy)
        proxy.wait_log("proxying on without it")
        assert ready(port) == (503, b"not ready: wrapped program down\n")
        assert get(port, "/healthz")[0] == 200  # it runs: not a reason to restart it
    finally:
        assert stop_and_check(proxy, marker) == 143


def test_not_ready_from_the_start_of_a_graceful_stop(echo_server):
    with running_proxy("--metrics", "127.0.0.1:0", "127.0.0.1:0", echo_server.address) as proxy:
        port = metrics_port(proxy)
        # A client that never answers our close frame holds the stop for the close timeout (5 s).
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as sock:
            sock.sendall(upgrade_request("/"))
            assert status_of(read_head(sock)) == 101
            sock.sendall(frame(0x2, b"hi"))
            assert read_frame(sock) == (0x2, b"hi")
            assert ready(port)[0] == 200
            proxy.proc.send_signal(signal.SIGTERM)
            assert read_frame(sock)[0] == 0x8  # the stop has begun
            assert ready(port) == (503, b"not ready: shutting down\n")
        assert proxy.proc.wait(timeout(20)) == 0


def test_proxy_header_failures_are_counted(echo_server):
    with running_proxy("--proxy-protocol", "--trusted-proxies", "127.0.0.1", "--metrics", "127.0.0.1:0",
                       "127.0.0.1:0", echo_server.address) as proxy:
        port = metrics_port(proxy)
        for source, data in (("127.0.0.1", b"GET / HTTP/1.1\r\n\r\n"), ("127.0.0.2", b"PROXY TCP4 1.2.3.4 ")):
            with socket.socket() as sock:  # no header; then an untrusted peer
                sock.settimeout(timeout(10))
                sock.bind((source, 0))
                sock.connect(("127.0.0.1", proxy.port))
                sock.sendall(data)
                try:
                    assert sock.recv(1) == b""
                except ConnectionResetError:  # closed with our bytes unread: a reset, as good
                    pass
        wait_for(lambda: value(scrape(port), "websockify_handshake_failures_total", reason="proxy_header") == 2,
                 10, "both refusals counted")


def test_an_open_sessions_bytes_are_counted_while_it_lasts_and_once(echo_server):
    with running_proxy("--metrics", "127.0.0.1:0", "127.0.0.1:0", echo_server.address) as proxy:
        port = metrics_port(proxy)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout(10)) as sock:
            sock.sendall(upgrade_request("/"))
            assert status_of(read_head(sock)) == 101
            sock.sendall(frame(0x2, b"y" * 1000))
            assert read_frame(sock) == (0x2, b"y" * 1000)
            # Every 5 s for an open session: well within 20 s, the session still open.
            wait_for(lambda: value(scrape(port), "websockify_relayed_bytes_total", direction="down") == 1000, 20,
                     "the open session's bytes")
            assert value(scrape(port), "websockify_sessions_open") == 1
            sock.sendall(frame(0x2, b"z" * 10))
            assert read_frame(sock) == (0x2, b"z" * 10)
            sock.sendall(frame(0x8, (1000).to_bytes(2, "big")))
            assert read_until_close(sock) == 1000
        wait_for(lambda: value(scrape(port), "websockify_sessions_open") == 0, 10, "the session's end")
        after = scrape(port)
        assert value(after, "websockify_relayed_bytes_total", direction="up") == 1010  # each byte once
        assert value(after, "websockify_relayed_bytes_total", direction="down") == 1010
