"""Program wrapping with real programs: rebind.so, supervision, signals, cleanup."""
from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid

import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from helpers import ROOT, assert_one_line_error, free_port, start_proxy, timeout, wait_for, ws_connect

SERVERS = os.path.join(ROOT, "tests", "servers")
ECHO = [sys.executable, os.path.join(SERVERS, "tcp_echo.py")]


def marked(marker: str) -> list[int]:
    """Pids whose environment holds TEST_MARKER=marker: the wrapped tree, found without names."""
    needle = f"\0TEST_MARKER={marker}\0".encode()
    pids = []
    for proc in psutil.process_iter():
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                if needle in b"\0" + f.read() + b"\0" and proc.status() != psutil.STATUS_ZOMBIE:
                    pids.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return pids


@pytest.fixture
def marker():
    value = uuid.uuid4().hex
    yield value
    leftovers = marked(value)
    for pid in leftovers:  # never leak into other tests, but report it
        os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes of the wrapped tree were left behind: {leftovers}"


def wrap(marker: str, *args: str, **kwargs):
    """Start websockify wrapping a command; the command (not websockify) carries the marker."""
    split = args.index("--") + 1
    args = (*args[:split], "env", f"TEST_MARKER={marker}", *args[split:])
    return start_proxy(*args, **kwargs)


def echo_through(url: str, payload: bytes = b"through the wrapper") -> None:
    async def scenario():
        async with asyncio.timeout(timeout(20)):
            async with ws_connect(url) as ws:
                await ws.send(payload)
                assert await ws.recv() == payload
    asyncio.run(scenario())


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def listening_sockets(pids: list[int]) -> list:
    found = []
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            found.append(conn)
    return found


def reaches_proxy(host: str, port: int) -> bool:
    """A plain HTTP request on the public port: the proxy answers 426, an echo server echoes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(timeout(5))
        sock.connect((host, port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return sock.recv(100).startswith(b"HTTP/1.1 426")


def stop_and_check(proxy, marker: str, sig: int = signal.SIGTERM) -> int:
    code = proxy.stop(sig)
    wait_for(lambda: not marked(marker), 10, "the wrapped tree to be gone")
    return code


@pytest.mark.parametrize("family", ["v4", "v6", "both", "mapped", "v4-specific"])
def test_wrapped_server_is_moved_to_loopback(marker, family):
    port = free_port()
    proxy = wrap(marker, "-6", str(port), "--", *ECHO, "--port", str(port), "--bind", family)
    try:
        proxy.wait_log("service ready")
        echo_through(f"ws://127.0.0.1:{port}/")
        echo_through(f"ws://[::1]:{port}/")
        sockets = listening_sockets(marked(marker))
        assert sockets, "the wrapped server listens nowhere"
        for conn in sockets:
            assert ipaddress.ip_address(conn.laddr.ip.replace("::ffff:", "")).is_loopback, conn
            assert conn.laddr.port != port, conn
        assert reaches_proxy("127.0.0.1", port) and reaches_proxy("::1", port)
    finally:
        assert stop_and_check(proxy, marker) == 128 + signal.SIGTERM


def test_socat_as_wrapped_echo_server(marker):
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is not installed (.ci/run installs it)")
    port = free_port()
    proxy = wrap(marker, str(port), "--", socat, f"TCP-LISTEN:{port},reuseaddr,fork", "EXEC:cat")
    try:
        proxy.wait_log("service ready")
        echo_through(f"ws://127.0.0.1:{port}/", b"socat echo")
        for conn in listening_sockets(marked(marker)):
            assert conn.laddr.ip == "127.0.0.1" and conn.laddr.port != port
    finally:
        stop_and_check(proxy, marker)


def _free_display() -> int:
    for number in range(60, 99):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and not os.path.exists(f"/tmp/.X{number}-lock"):
            return number
    raise AssertionError("no free X display number")


def test_xvnc_greets_through_a_websocket(marker):
    xvnc = shutil.which("Xvnc")
    if xvnc is None:
        pytest.fail("Xvnc is not installed (.ci/run installs tigervnc-standalone-server)")
    port = free_port()
    proxy = wrap(marker, str(port), "--", xvnc, f":{_free_display()}", "-rfbport", str(port),
                 "-SecurityTypes", "None", "-geometry", "320x240")
    try:
        proxy.wait_log("service ready", 30)

        async def greeting():
            async with asyncio.timeout(timeout(20)):
                async with ws_connect(f"ws://127.0.0.1:{port}/", subprotocols=["binary"]) as ws:
                    return await ws.recv()
        assert asyncio.run(greeting()).startswith(b"RFB 003.00")
        sockets = listening_sockets(marked(marker))
        assert sockets
        for conn in sockets:
            assert ipaddress.ip_address(conn.laddr.ip).is_loopback and conn.laddr.port != port, conn
    finally:
        stop_and_check(proxy, marker)


def test_daemonizing_program_is_still_proxied_and_stopped(marker):
    port = free_port()
    proxy = wrap(marker, str(port), "--", os.path.join(SERVERS, "daemonize.sh"), "--port", str(port),
                 env={"PYTHON": sys.executable})
    try:
        proxy.wait_log("service ready")
        proxy.wait_log(r"env \(pid \d+\) exited with status 0")
        echo_through(f"ws://127.0.0.1:{port}/")
        assert proxy.proc.poll() is None, "exit mode must wait for the daemonized server"
        assert marked(marker), "the daemonized server should be running"
    finally:
        assert stop_and_check(proxy, marker) == 128 + signal.SIGTERM


@pytest.mark.parametrize("daemonizing", [True, False])
def test_sigkill_of_websockify_leaves_no_process(marker, daemonizing):
    port = free_port()
    command = [os.path.join(SERVERS, "daemonize.sh")] if daemonizing else ECHO
    proxy = wrap(marker, str(port), "--", *command, "--port", str(port), env={"PYTHON": sys.executable})
    proxy.wait_log("service ready")
    assert marked(marker)
    [watchdog] = [p for p in psutil.Process(proxy.proc.pid).children() if p.pid not in marked(marker)]
    proxy.proc.kill()
    proxy.proc.wait(timeout(10))
    wait_for(lambda: not marked(marker), 10, "the wrapped tree to die with websockify")
    wait_for(lambda: not alive(watchdog), 10, "the watchdog to exit after its sweep")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_is_forwarded_and_exit_mode_returns_the_programs_status(marker, sig):
    port = free_port()
    proxy = wrap(marker, str(port), "--", *ECHO, "--port", str(port))
    proxy.wait_log("service ready")
    echo_through(f"ws://127.0.0.1:{port}/")
    [child] = marked(marker)
    assert os.getsid(child) == child != os.getsid(proxy.proc.pid), "the program runs in its own session"
    # The echo server dies of the forwarded signal: exit mode reports that, 128+N.
    assert stop_and_check(proxy, marker, sig) == 128 + sig


def test_the_program_keeps_the_file_limit_websockify_was_given(marker, tmp_path):
    import resource

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    port, seen = free_port(), tmp_path / "limit"
    script = f'ulimit -Sn > {seen}; exec "$0" "$@"'
    proxy = wrap(marker, str(port), "--", "sh", "-c", script, *ECHO, "--port", str(port), preexec_fn=low_limit)
    try:
        proxy.wait_log("service ready")
        assert seen.read_text().strip() == "256"
        assert psutil.Process(proxy.proc.pid).rlimit(psutil.RLIMIT_NOFILE)[0] > 256
    finally:
        stop_and_check(proxy, marker)


def test_grace_period_then_sigkill(marker):
    port = free_port()
    stubborn = ("import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(); time.sleep(600)")
    proxy = wrap(marker, "--grace-period", "1", str(port), "--", sys.executable, "-c", stubborn)
    proxy.wait_log("service ready")
    assert stop_and_check(proxy, marker) == 128 + signal.SIGKILL
    assert "killing 1 process(es) still running 1s after SIGTERM" in proxy.log


@pytest.mark.parametrize("code", [0, 7])
def test_exit_mode_ends_with_the_programs_status(marker, code):
    proxy = wrap(marker, str(free_port()), "--", "sh", "-c", f"exit {code}")
    assert proxy.proc.wait(timeout(20)) == code


def test_respawn_after_sigkill(marker):
    port = free_port()
    proxy = wrap(marker, "--wrap-mode", "respawn", str(port), "--", *ECHO, "--port", str(port))
    try:
        proxy.wait_log("service ready")
        first = marked(marker)
        assert len(first) == 1
        os.kill(first[0], signal.SIGKILL)
        proxy.wait_log(r"ended with status 137; restarting in [\d.]+s \(start #2\)")
        wait_for(lambda: proxy.log.count("service ready") == 2, 20, "the respawned service")
        second = marked(marker)
        assert len(second) == 1 and second != first
        echo_through(f"ws://127.0.0.1:{port}/")
    finally:
        assert stop_and_check(proxy, marker) == 143


def test_ignore_mode_keeps_the_proxy_up_with_a_clear_close_reason(marker):
    proxy = wrap(marker, "--wrap-mode", "ignore", str(free_port()), "--", "sh", "-c", "exit 3")
    try:
        proxy.wait_log("proxying on without it")

        async def refused():
            async with asyncio.timeout(timeout(20)):
                async with ws_connect(proxy.url) as ws:
                    with pytest.raises(ConnectionClosed) as info:
                        await ws.recv()
                    return info.value.rcvd
        close = asyncio.run(refused())
        assert (close.code, close.reason) == (1011, "Wrapped command is not running")
        assert proxy.proc.poll() is None
    finally:
        assert stop_and_check(proxy, marker) == 143


def test_a_program_that_never_binds_the_port_is_reported(marker):
    proxy = wrap(marker, str(free_port()), "--", "sleep", "60")
    try:
        proxy.wait_log(r"has not bound port \d+ after 10s", 25)
    finally:
        stop_and_check(proxy, marker)


def test_clients_wait_for_a_slow_service(marker):
    port = free_port()
    proxy = wrap(marker, str(port), "--", *ECHO, "--port", str(port), "--delay", "1.5")
    try:
        assert "service ready" not in proxy.log
        echo_through(f"ws://127.0.0.1:{port}/")  # connects before the service listens
        assert "service ready" in proxy.log
    finally:
        stop_and_check(proxy, marker)


def test_hup_usr1_usr2_are_forwarded(marker, tmp_path):
    port = free_port()
    log = tmp_path / "signals"
    proxy = wrap(marker, str(port), "--", *ECHO, "--port", str(port), "--signal-log", str(log))
    try:
        proxy.wait_log("service ready")
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            proxy.proc.send_signal(sig)
            wait_for(lambda sig=sig: log.exists() and signal.Signals(sig).name in log.read_text(), 10,
                     f"{signal.Signals(sig).name} to reach the program")
        assert proxy.proc.poll() is None
    finally:
        stop_and_check(proxy, marker)


# -- refusing what cannot work ---------------------------------------------------------

def run_websockify(*args: str, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "websockify", *args], capture_output=True, text=True,
                          timeout=timeout(60), env={**os.environ, **(env or {})}, cwd=cwd)


@pytest.fixture(scope="module")
def static_binary(tmp_path_factory):
    directory = tmp_path_factory.mktemp("static")
    source = directory / "server.c"
    source.write_text("#include <unistd.h>\nint main(void) { pause(); return 0; }\n")
    binary = directory / "server"
    result = subprocess.run(["gcc", "-static", "-o", str(binary), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return binary


def test_static_binary_is_refused(static_binary):
    assert_one_line_error(run_websockify(str(free_port()), "--", str(static_binary)), "statically linked")


def test_script_whose_interpreter_is_static_is_refused(static_binary, tmp_path):
    script = tmp_path / "script"
    script.write_text(f"#!{static_binary}\n")
    script.chmod(0o755)
    assert_one_line_error(run_websockify(str(free_port()), "--", str(script)), "statically linked")


def test_setuid_binary_of_another_user_is_refused(tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to give a file to another user")
    binary = tmp_path / "suid-sleep"
    shutil.copy(shutil.which("sleep"), binary)
    os.chown(binary, 65534, 65534)
    binary.chmod(0o4755)
    tmp_path.chmod(0o755)
    assert_one_line_error(run_websockify(str(free_port()), "--", str(binary), "60"), "set-uid")


def test_missing_command_is_refused():
    assert_one_line_error(run_websockify(str(free_port()), "--", "no-such-command-xyz"), "not found")


@pytest.fixture
def source_tree(tmp_path):
    """websockify as a source tree without any rebind.so: it must build one on first use."""
    tree = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "websockify"), tree / "websockify",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    (tree / "rebind").mkdir()
    shutil.copy(os.path.join(ROOT, "rebind", "rebind.c"), tree / "rebind")
    return tree


def test_missing_compiler_is_a_clear_error(source_tree, tmp_path):
    result = run_websockify(str(free_port()), "--", *ECHO, "--port", "1",
                            env={"PATH": "/nonexistent", "CC": "", "XDG_CACHE_HOME": str(tmp_path / "cache"),
                                 "PYTHONPATH": str(source_tree)}, cwd=str(source_tree))
    assert_one_line_error(result, "no C compiler found")


def test_two_instances_build_the_cache_at_once(source_tree, tmp_path):
    cache = tmp_path / "cache"
    markers = [uuid.uuid4().hex, uuid.uuid4().hex]
    ports = [free_port(), free_port()]
    env = {"XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(source_tree)}
    proxies = [wrap(m, str(p), "--", *ECHO, "--port", str(p), env=env,
                    wait_listening=False, cwd=str(source_tree))
               for p, m in zip(ports, markers)]
    try:
        for proxy in proxies:
            proxy.wait_log("service ready", 60)
        for port in ports:
            echo_through(f"ws://127.0.0.1:{port}/")
        built = list((cache / "websockify").glob("rebind-*.so"))
        assert len(built) == 1, built
        assert not list((cache / "websockify").glob(".rebind-*")), "a temporary file was left"
    finally:
        for proxy, m in zip(proxies, markers):
            proxy.stop()
            wait_for(lambda m=m: not marked(m), 10, "the wrapped tree to be gone")
