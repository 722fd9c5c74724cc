"""Upstream's interface that scripts and launchers rely on: websockify_init, WebSocketProxy,
the ./run launcher, BasePlugin subclasses, and upstream's address forms."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap

from helpers import ROOT, start_proxy, timeout, wait_for
from rawws import frame, open_websocket, read_frame

PLUGINS = os.path.join(ROOT, "tests", "plugins")


def test_websockify_init_runs_the_command_line():
    code = "import sys; sys.argv = ['websockify', '--version']; from websockify.websocketproxy import " \
           "websockify_init; websockify_init()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout(30))
    assert result.returncode == 0 and re.match(r"websockify, version \d", result.stdout)


def _python_server(script: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": PLUGINS, **(env or {})})


def _port_of(proc: subprocess.Popen) -> int:
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match.group(1))
    raise AssertionError("".join(lines))


def test_websocketproxy_with_upstream_keywords_and_plugin_objects(echo_server):
    host, port = echo_server.address.split(":")
    proc = _python_server(f"""
        import websockify
        from routing_plugins import Table
        from websockify.auth_plugins import BasicHTTPAuth
        server = websockify.WebSocketProxy(listen_host="127.0.0.1", listen_port=0, verbose=False,
                                          token_plugin=Table("t={host}:{port}"), auth_plugin=BasicHTTPAuth("u:p"),
                                          heartbeat=30, record=None)
        raise SystemExit(server.start_server())
    """)
    try:
        ws = wait_for(lambda: open_websocket(_port_of(proc), path="/?token=t",
                                             extra="Authorization: Basic dTpw\r\n"), 20, "the server")
        ws.sendall(frame(0x2, b"embedded"))
        assert read_frame(ws) == (0x2, b"embedded")
        ws.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout(10)) == 0


def test_websocketproxy_names_unsupported_keywords_and_a_foreign_handler_class():
    for code, message in [
        ("websockify.WebSocketProxy(listen_port=1, bogus=2)", "unsupported keyword(s): bogus"),
        ("websockify.WebSocketProxy(listen_port=1, RequestHandlerClass=object)",
         "RequestHandlerClass must subclass websockify.ProxyRequestHandler"),
    ]:
        result = subprocess.run([sys.executable, "-c", "import websockify; " + code], capture_output=True, text=True,
                                timeout=timeout(30))
        assert result.returncode == 1
        assert f"TypeError: WebSocketProxy: {message}" in result.stderr


def test_run_launcher_keeps_the_callers_directory(echo_server, tmp_path):
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("relative to the caller")
    proc = subprocess.Popen([os.path.join(ROOT, "run"), "--web", "page", "127.0.0.1:0", echo_server.address],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        port = _port_of(proc)
        from rawws import exchange
        assert exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").endswith(b"relative to the caller")
    finally:
        proc.terminate()
        assert proc.wait(timeout(10)) == 0


def test_an_upstream_style_token_plugin_routes(echo_server):
    proxy = start_proxy("--token-plugin", "upstream_token_plugin.StaticTargets",
                        "--token-source", f"echo={echo_server.address}", "127.0.0.1:0", env={"PYTHONPATH": PLUGINS})
    try:
        ws = open_websocket(proxy.port, path="/?token=echo")
        ws.sendall(frame(0x2, b"upstream style"))
        assert read_frame(ws) == (0x2, b"upstream style")
        ws.close()
    finally:
        proxy.stop()


def test_upstream_address_forms(echo_server):
    _, port = echo_server.address.split(":")
    proxy = start_proxy(":0", f"127.1:{port}")  # every address; the short IPv4 form
    try:
        assert re.search(r"listening on 0\.0\.0\.0:\d+", proxy.log)
        ws = open_websocket(proxy.port)
        ws.sendall(frame(0x2, b"short form"))
        assert read_frame(ws) == (0x2, b"short form")
        ws.close()
        proxy.wait_log(rf"target=127\.0\.0\.1:{port} ")
    finally:
        proxy.stop()


def test_the_package_reexports_what_upstreams_init_does():
    import websockify
    from websockify import websocket, websocketproxy
    assert {name for name, module in websockify._EXPORTS.items()} == set(websocket.__all__) | set(websocketproxy.__all__)
    for name in websockify._EXPORTS:
        assert getattr(websockify, name) is getattr(websocket, name, None) or getattr(websocketproxy, name)
    # Upstream's modules are attributes after a bare `import websockify`, as nova relies on.
    code = ("import websockify; print(websockify.websocketproxy.select_ssl_version('tlsv1_2') > 0, "
            "websockify.websockifyserver.WebSockifyServer.socket is not None)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout(30))
    assert result.stdout.split() == ["True", "True"], result.stderr
