"""A real nginx in front of websockify, started by a test with its own configuration."""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Iterator

from helpers import accepts, timeout, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _serving(name: str, command: list[str], port: int) -> Iterator[None]:
    """Run `command` until the block ends, once it accepts on `port`; stopped even if the block fails."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: accepts(port) or proc.poll() is not None, 15, f"{name} to listen")
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout(5))


@contextlib.contextmanager
def _nginx_serving(directory: Path, server: str) -> Iterator[int]:
    """nginx on a loopback port of its own with one `server` block, whose text has `{port}`
    for that port. Yields the port."""
    port = _free_port()
    for name in ("logs", "tmp"):
        (directory / name).mkdir(parents=True, exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/logs/access.log;
    client_body_temp_path {directory}/tmp/body;
    proxy_temp_path {directory}/tmp/proxy;
    fastcgi_temp_path {directory}/tmp/fastcgi;
    uwsgi_temp_path {directory}/tmp/uwsgi;
    scgi_temp_path {directory}/tmp/scgi;
    server {{
{server.replace("{port}", str(port))}
    }}
}}
""")
    with _serving("nginx", [NGINX, "-p", str(directory), "-c", str(config), "-e", str(directory / "logs/error.log")],
                  port):
        yield port


def nginx(directory: Path, upstream_port: int, locations: str = "",
          tls: tuple[Path, Path] | None = None) -> contextlib.AbstractContextManager[int]:
    """nginx proxying WebSocket upgrades to `upstream_port`; `locations` is added inside the
    location block (e.g. `proxy_read_timeout 2s;`). With `tls` (certificate and key files, PEM),
    nginx terminates TLS on its port and proxies in plain. Yields its port."""
    listen = "listen 127.0.0.1:{port};"
    if tls is not None:
        listen = (f"listen 127.0.0.1:{{port}} ssl;\n        ssl_certificate {tls[0]};\n"
                  f"        ssl_certificate_key {tls[1]};")
    return _nginx_serving(directory, f"""        {listen}
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            {locations}
        }}""")


def nginx_proxy_protocol_echo(directory: Path) -> contextlib.AbstractContextManager[int]:
    """nginx that reads a PROXY header first and answers an HTTP request with the address and
    port the header gave, `[ADDRESS] [PORT]` (`[] []` for none). Yields its port."""
    return _nginx_serving(directory, """        listen 127.0.0.1:{port} proxy_protocol;
        location / { default_type text/plain; return 200 "[$proxy_protocol_addr] [$proxy_protocol_port]"; }""")


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
FLEET_HAPROXY_CFG = Path(__file__).resolve().parent.parent / "docs" / "fleet" / "haproxy.cfg"
SEND_PROXY = ("send-proxy-v2", "send-proxy")


def fleet_haproxy_config(port: int, backends: list[int | str], send_proxy: str = "send-proxy-v2",
                         metrics_ports: list[int] | None = None) -> str:
    """docs/fleet/haproxy.cfg as the tests run it, changed only as its header says: the `bind`
    line listens on 127.0.0.1:`port`, the `server` lines become one per backend (a loopback port
    or a Unix socket path), each with the example's first server's parameters and `send_proxy`.
    The `default-server` line (the health check on the --metrics port) is kept when each backend's
    --metrics port is given (each server line then names its own, as instances on one host must),
    else dropped."""
    assert send_proxy in SEND_PROXY, send_proxy
    kept: list[str] = []
    binds = defaults = 0
    template: list[str] | None = None
    for line in FLEET_HAPROXY_CFG.read_text().splitlines():
        words = line.split()
        keyword = words[0] if words else ""
        if keyword == "bind":
            binds += 1
            kept.append(f"    bind 127.0.0.1:{port}")
        elif keyword == "default-server":
            defaults += 1
            if metrics_ports is not None:
                kept.append(line)
        elif keyword == "server":
            if template is None:
                template = [send_proxy if word in SEND_PROXY else word for word in words[3:]]
                kept.extend(f"    server s{n} {backend if isinstance(backend, str) else f'127.0.0.1:{backend}'} "
                            + " ".join(template) + (f" port {metrics_ports[n]}" if metrics_ports else "")
                            for n, backend in enumerate(backends))
        else:
            kept.append(line)
    # The example changed shape: say so here rather than test a configuration nobody wrote.
    assert binds == 1 and defaults == 1 and template is not None, f"{FLEET_HAPROXY_CFG}: see its header"
    assert send_proxy in template, f"{FLEET_HAPROXY_CFG}: its first server line sends no PROXY header"
    return "\n".join(kept) + "\n"


@contextlib.contextmanager
def haproxy(directory: Path, backends: list[int | str], send_proxy: str = "send-proxy-v2",
            metrics_ports: list[int] | None = None) -> Iterator[int]:
    """HAProxy in TCP mode on a loopback port of its own, with the example configuration
    docs/fleet/haproxy.cfg (see fleet_haproxy_config), spreading connections over `backends`
    (loopback ports, or Unix socket paths), each with a PROXY header (`send-proxy-v2` or
    `send-proxy`), health-checked on `metrics_ports` when given. Yields its port."""
    port = _free_port()
    config = directory / "haproxy.cfg"
    config.write_text(fleet_haproxy_config(port, backends, send_proxy, metrics_ports))
    with _serving("haproxy", [HAPROXY, "-db", "-f", str(config)], port):
        yield port
