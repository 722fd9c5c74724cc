"""Program wrapping with real programs: rebind.so, supervision, signals, cleanup.

Public ports: see wrapping.py (a fixed port is needed; a start is retried if
the picked port was taken meanwhile).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid

import psutil
import pytest
from helpers import ROOT, assert_one_line_error, timeout, wait_for, ws_connect
from websockets.exceptions import ConnectionClosed
from wrapping import (
    ECHO,
    SERVERS,
    echo_through,
    launch,
    marked,
    marker_fixture,
    picked_port,
    private_address,
    started,
    stop_and_check,
    wrap,
)


@pytest.fixture
def marker():
    yield from marker_fixture()


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def listening(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket these processes listen on."""
    return {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def reaches_proxy(host: str, port: int) -> bool:
    """A plain HTTP request on the public port: the proxy answers 426, an echo server echoes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(timeout(5))
        sock.connect((host, port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        return sock.recv(100).startswith(b"HTTP/1.1 426")


LOOPBACK = {"v4": {"127.0.0.1"}, "v6": {"::1"}, "both": {"127.0.0.1", "::1"}, "mapped": {"::ffff:127.0.0.1"},
            "v4-specific": {"127.0.0.1"}}


@pytest.mark.parametrize("family", sorted(LOOPBACK))
def test_wrapped_server_is_moved_to_loopback(marker, family):
    proxy = wrap(marker, "-6", "{port}", "--", *ECHO, "--port", "{port}", "--bind", family)
    try:
        _, private_port = private_address(proxy)
        echo_through(f"ws://127.0.0.1:{proxy.port}/")
        echo_through(f"ws://[::1]:{proxy.port}/")
        assert private_port != proxy.port
        assert listening(marked(marker)) == {(ip, private_port) for ip in LOOPBACK[family]}
        assert reaches_proxy("127.0.0.1", proxy.port) and reaches_proxy("::1", proxy.port)
    finally:
        assert stop_and_check(proxy, marker) == 128 + signal.SIGTERM


def test_socat_as_wrapped_echo_server(marker):
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is not installed (.ci/run installs it)")
    proxy = wrap(marker, "{port}", "--", socat, "TCP-LISTEN:{port},reuseaddr,fork", "EXEC:cat")
    try:
        address = private_address(proxy)
        echo_through(f"ws://127.0.0.1:{proxy.port}/", b"socat echo")
        assert address[1] != proxy.port
        assert listening(marked(marker)) == {address}
    finally:
        assert stop_and_check(proxy, marker) == 128 + signal.SIGTERM


def _free_display() -> int:
    for number in range(60, 99):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and not os.path.exists(f"/tmp/.X{number}-lock"):
            return number
    raise AssertionError("no free X display number")


def test_xvnc_greets_through_a_websocket(marker):
    xvnc = shutil.which("Xvnc")
    if xvnc is None:
        pytest.fail("Xvnc is not installed (.ci/run installs tigervnc-standalone-server)")
    proxy = wrap(marker, "{port}", "--", xvnc, f":{_free_display()}", "-rfbport", "{port}",
                 "-SecurityTypes", "None", "-geometry", "320x240")
    try:
        _, private_port = private_address(proxy)

        async def greeting():
            async with asyncio.timeout(timeout(20)):
                async with ws_connect(f"ws://127.0.0.1:{proxy.port}/", subprotocols=["binary"]) as ws:
                    return await ws.recv()
        assert asyncio.run(greeting()) == b"RFB 003.008\n"
        assert listening(marked(marker)) == {("127.0.0.1", private_port), ("::1", private_port)}
    finally:
        stop_and_check(proxy, marker)


def test_daemonizing_program_is_still_proxied_and_stopped(marker):
    proxy = wrap(marker, "{port}", "--", os.path.join(SERVERS, "daemonize.sh"), "--port", "{port}",
                 env={"PYTHON": sys.executable})
    try:
        private_address(proxy)
        proxy.wait_log(r"env \(pid \d+\) exited with status 0")
        echo_through(f"ws://127.0.0.1:{proxy.port}/")
        assert proxy.proc.poll() is None, "exit mode must wait for the daemonized server"
        [server] = marked(marker)
        assert psutil.Process(server).cmdline()[1:] == [os.path.join(SERVERS, "tcp_echo.py"), "--port",
                                                         str(proxy.port)]
    finally:
        assert stop_and_check(proxy, marker) == 128 + signal.SIGTERM


def watchdog_of(proxy, marker: str) -> psutil.Process:
    """websockify's one child outside the wrapped tree: a fresh interpreter, not a fork of websockify."""
    tree = marked(marker)
    [watchdog] = [p for p in psutil.Process(proxy.proc.pid).children() if p.pid not in tree and alive(p)]
    assert watchdog.cmdline()[1:4] == ["-P", "-m", "websockify.wrap.watchdog"]
    return watchdog


@pytest.mark.parametrize("daemonizing", [True, False])
def test_sigkill_of_websockify_leaves_no_process(marker, daemonizing):
    command = [os.path.join(SERVERS, "daemonize.sh")] if daemonizing else ECHO
    proxy = wrap(marker, "{port}", "--", *command, "--port", "{port}", env={"PYTHON": sys.executable})
    private_address(proxy)
    [server] = marked(marker)
    watchdog = watchdog_of(proxy, marker)
    proxy.proc.kill()
    proxy.proc.wait(timeout(10))
    wait_for(lambda: not marked(marker), 10, "the wrapped tree to die with websockify")
    wait_for(lambda: not alive(watchdog), 10, "the watchdog to exit after its sweep")


def test_the_program_dies_with_websockify_by_its_death_signal_alone(marker):
    proxy = wrap(marker, "{port}", "--", *ECHO, "--port", "{port}")
    private_address(proxy)
    [server] = marked(marker)
    watchdog = watchdog_of(proxy, marker)
    watchdog.suspend()  # the watchdog cannot sweep: only PR_SET_PDEATHSIG can end the program now
    try:
        proxy.proc.kill()
        proxy.proc.wait(timeout(10))
        wait_for(lambda: not marked(marker), 10, "the program to die of its parent's death")
    finally:
        watchdog.resume()
    wait_for(lambda: not alive(watchdog), 10, "the watchdog to exit after its sweep")


def test_the_program_gets_its_own_setup_and_its_children_do_not(marker, tmp_path):
    import resource

    def low_limit():  # websockify itself starts with a low soft limit, which it raises
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    report = tmp_path / "setup"
    proxy = wrap(marker, "{port}", "--", sys.executable, os.path.join(SERVERS, "report_setup.py"),
                 "--child", "--out", str(report), "--port", "{port}", preexec_fn=low_limit)
    try:
        private_address(proxy)
        # The program: SIGKILL (9) when websockify dies, the original soft limit, no setup variables left.
        # Its child: no death signal (a daemon it starts must not die with it), nothing to set up again.
        assert report.read_text() == "9 256 []\n0 256 []\n"
        assert psutil.Process(proxy.proc.pid).rlimit(psutil.RLIMIT_NOFILE)[0] > 256
    finally:
        assert stop_and_check(proxy, marker) == 128 + signal.SIGTERM


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_is_forwarded_and_exit_mode_returns_the_programs_status(marker, sig):
    proxy = wrap(marker, "{port}", "--", *ECHO, "--port", "{port}")
    private_address(proxy)
    echo_through(f"ws://127.0.0.1:{proxy.port}/")
    [child] = marked(marker)
    assert os.getsid(child) == child != os.getsid(proxy.proc.pid), "the program runs in its own session"
    # The echo server dies of the forwarded signal: exit mode reports that, 128+N.
    assert stop_and_check(proxy, marker, sig) == 128 + sig


def test_grace_period_then_sigkill(marker):
    stubborn = ("import signal, socket, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "s = socket.socket(); s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(); time.sleep(600)")
    proxy = wrap(marker, "--grace-period", "1", "{port}", "--", sys.executable, "-c", stubborn, "{port}")
    private_address(proxy)
    assert stop_and_check(proxy, marker) == 128 + signal.SIGKILL
    assert "killing 1 process(es) still running 1s after SIGTERM" in proxy.log


@pytest.mark.parametrize("code", [0, 7])
def test_exit_mode_ends_with_the_programs_status(marker, code):
    proxy = wrap(marker, "{port}", "--", "sh", "-c", f"exit {code}")
    assert proxy.proc.wait(timeout(20)) == code


def test_respawn_after_sigkill(marker):
    proxy = wrap(marker, "--wrap-mode", "respawn", "{port}", "--", *ECHO, "--port", "{port}")
    try:
        private_address(proxy)
        first = marked(marker)
        assert len(first) == 1
        os.kill(first[0], signal.SIGKILL)
        proxy.wait_log(r"ended with status 137; restarting in [\d.]+s \(start #2\)")
        wait_for(lambda: proxy.log.count("service ready") == 2, 20, "the respawned service")
        second = marked(marker)
        assert len(second) == 1 and second != first
        echo_through(f"ws://127.0.0.1:{proxy.port}/")
    finally:
        assert stop_and_check(proxy, marker) == 143


def test_ignore_mode_keeps_the_proxy_up_with_a_clear_close_reason(marker):
    proxy = wrap(marker, "--wrap-mode", "ignore", "{port}", "--", "sh", "-c", "exit 3")
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


def test_hup_usr1_usr2_are_forwarded(marker, tmp_path):
    log = tmp_path / "signals"
    proxy = wrap(marker, "{port}", "--", *ECHO, "--port", "{port}", "--signal-log", str(log))
    try:
        private_address(proxy)
        received = []
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            received.append(signal.Signals(sig).name)
            proxy.proc.send_signal(sig)
            wait_for(lambda: log.exists() and log.read_text().split() == received, 10,
                     f"{signal.Signals(sig).name} to reach the program")
        assert proxy.proc.poll() is None
    finally:
        assert stop_and_check(proxy, marker) == 143


# -- refusing what cannot work ---------------------------------------------------------
# websockify refuses these before it listens, so their port is never bound.

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
    assert_one_line_error(run_websockify(str(picked_port()), "--", str(static_binary)), "statically linked")


def test_script_whose_interpreter_is_static_is_refused(static_binary, tmp_path):
    script = tmp_path / "script"
    script.write_text(f"#!{static_binary}\n")
    script.chmod(0o755)
    assert_one_line_error(run_websockify(str(picked_port()), "--", str(script)), "statically linked")


def test_setuid_binary_of_another_user_is_refused(tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to give a file to another user")
    binary = tmp_path / "suid-sleep"
    shutil.copy(shutil.which("sleep"), binary)
    os.chown(binary, 65534, 65534)
    binary.chmod(0o4755)
    tmp_path.chmod(0o755)
    assert_one_line_error(run_websockify(str(picked_port()), "--", str(binary), "60"), "set-uid")


def test_missing_command_is_refused():
    assert_one_line_error(run_websockify(str(picked_port()), "--", "no-such-command-xyz"), "not found")


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
    result = run_websockify(str(picked_port()), "--", *ECHO, "--port", "1",
                            env={"PATH": "/nonexistent", "CC": "", "XDG_CACHE_HOME": str(tmp_path / "cache"),
                                 "PYTHONPATH": str(source_tree)}, cwd=str(source_tree))
    assert_one_line_error(result, "no C compiler found")


def test_two_instances_build_the_cache_at_once(source_tree, tmp_path):
    cache = tmp_path / "cache"
    markers = [uuid.uuid4().hex, uuid.uuid4().hex]
    args = ("{port}", "--", *ECHO, "--port", "{port}")
    options = {"env": {"XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(source_tree)}, "cwd": str(source_tree)}
    # Both start at once, so both find no rebind.so and compile it, before either listens.
    proxies = [launch(m, args, picked_port(), **options) for m in markers]
    try:
        for index, m in enumerate(markers):
            for _ in range(5):  # a picked port taken meanwhile: start that one again
                if started(proxies[index], 60):
                    break
                proxies[index] = launch(m, args, picked_port(), **options)
            else:
                raise AssertionError("the picked port was taken 5 times in a row")
            private_address(proxies[index])
        for proxy in proxies:
            echo_through(f"ws://127.0.0.1:{proxy.port}/")
        built = list((cache / "websockify").glob("rebind-*.so"))
        assert len(built) == 1, built
        assert not list((cache / "websockify").glob(".rebind-*")), "a temporary file was left"
    finally:
        for proxy, m in zip(proxies, markers):
            proxy.stop()
            wait_for(lambda m=m: not marked(m), 10, "the wrapped tree to be gone")
