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
def nginx(directory: Path, upstream_port: int, locations: str = "") -> Iterator[int]:
    """nginx on a loopback port of its own, proxying WebSocket upgrades to `upstream_port`;
    `locations` is added inside the location block (e.g. `proxy_read_timeout 2s;`). Yields its port."""
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
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            {locations}
        }}
    }}
}}
""")
    with _serving("nginx", [NGINX, "-p", str(directory), "-c", str(config), "-e", str(directory / "logs/error.log")],
                  port):
        yield port


HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


@contextlib.contextmanager
def haproxy(directory: Path, backends: list[int | str], send_proxy: str = "send-proxy-v2") -> Iterator[int]:
    """HAProxy in TCP mode on a loopback port of its own, spreading connections over
    `backends` (loopback ports, or Unix socket paths) round robin, each with a PROXY
    header (`send-proxy-v2` or `send-proxy`). Yields its port."""
    port = _free_port()
    servers = "\n".join(f"    server s{n} {backend if isinstance(backend, str) else f'127.0.0.1:{backend}'} "
                        f"{send_proxy}" for n, backend in enumerate(backends))
    config = directory / "haproxy.cfg"
    config.write_text(f"""
global
    maxconn 512
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend front
    bind 127.0.0.1:{port}
    default_backend websockify
backend websockify
    balance roundrobin
{servers}
""")
    with _serving("haproxy", [HAPROXY, "-db", "-f", str(config)], port):
        yield port
