"""Listening sockets (TCP, Unix, inherited from systemd or inetd) and our own accept loop.

Plain listeners are served by the event loop's own server (loop.create_server:
uvloop accepts in C). With a certificate, TLS and plain clients share the port,
and ProxyServer accepts through Listener instead, so that a connection can be
looked at before a transport owns it: a TLS client is recognised by its first
byte before the TLS layer wraps the socket.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
from dataclasses import dataclass
from typing import Any, Callable

from ..addresses import TcpAddress, format_host_port
from ..errors import ConfigError, StartupError
from ..sockopts import set_keepalive

log = logging.getLogger(__name__)

AcceptHandler = Callable[[socket.socket, object], None]
_ACCEPT_BATCH = 64  # accepts per readiness event, so one busy listener cannot starve the relays
_EMFILE_PAUSE_S = 0.1


def _listen_addresses(address: TcpAddress, prefer_ipv6: bool) -> list[tuple[Any, ...]]:
    """Resolve the source address; upstream binds only the first (IPv4 unless -6)."""
    if address.host == "":
        host = "::" if prefer_ipv6 and socket.has_ipv6 else "0.0.0.0"
    else:
        host = address.host
    try:
        infos = socket.getaddrinfo(host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve source address {address.host!r}: {exc.strerror}") from None
    infos.sort(key=lambda info: (info[0] == socket.AF_INET6) != prefer_ipv6)
    return infos


@dataclass
class ListeningSocket:
    sock: socket.socket
    unix_path: str | None = None  # a socket file we created, removed at exit if still ours
    unix_inode: int | None = None

    @property
    def port(self) -> int | None:
        """The TCP port, None for a Unix socket."""
        if self.sock.family in (socket.AF_INET, socket.AF_INET6):
            return int(self.sock.getsockname()[1])
        return None

    def __str__(self) -> str:
        name = self.sock.getsockname()
        if self.sock.family == socket.AF_UNIX:
            return f"unix:{name.decode(errors='replace') if isinstance(name, bytes) else name or '(unnamed)'}"
        return format_host_port(name[0], name[1])

    def close(self) -> None:
        self.sock.close()
        if self.unix_path is not None:
            try:
                if os.lstat(self.unix_path).st_ino == self.unix_inode:
                    os.unlink(self.unix_path)
            except OSError:
                pass


def open_unix_listener(path: str, mode: int, backlog: int) -> ListeningSocket:
    """Listen on a Unix socket at `path` with permissions `mode`.

    A socket file left by a dead process is replaced; a regular file, or a
    socket that something still listens on, is never removed (ConfigError).
    """
    what = f"--unix-listen {path}"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ConfigError(f"{what}: {exc.strerror}") from None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"{what}: the path exists and is not a socket; not removing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(2)
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # stale: nobody listens any more
        except OSError as exc:
            raise ConfigError(f"{what}: cannot tell whether it is in use: {exc.strerror or exc}") from None
        else:
            raise ConfigError(f"{what}: another process listens on it")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)  # the file is born with its mode: no window
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise StartupError(f"{what}: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    sock.setblocking(False)
    return ListeningSocket(sock, path, os.lstat(path).st_ino)


def adopt_listener(fd: int, what: str) -> ListeningSocket:
    """A listening socket handed to us (systemd socket activation, inetd's wait mode)."""
    try:
        sock = socket.socket(fileno=fd)  # family and type are read from the descriptor
    except OSError as exc:
        raise StartupError(f"{what}: descriptor {fd} is not a socket: {exc.strerror or exc}") from None
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise StartupError(f"{what}: descriptor {fd} is not a listening stream socket")
    sock.setblocking(False)
    set_keepalive(sock)  # inherited by every accepted client (TCP only)
    return ListeningSocket(sock)


def open_listener(address: TcpAddress, prefer_ipv6: bool, backlog: int) -> socket.socket:
    family, kind, proto, _, sockaddr = _listen_addresses(address, prefer_ipv6)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and sockaddr[0] == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # [::] also takes IPv4
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {_tried(address, sockaddr)}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    set_keepalive(sock)  # inherited by every accepted client
    return sock


def _tried(address: TcpAddress, sockaddr: tuple[Any, ...]) -> str:
    """The address bind() was given (`0.0.0.0:6080` for a bare port), with the name it came from."""
    tried = format_host_port(sockaddr[0], sockaddr[1])
    return f"{tried} ({address.host})" if address.host and address.host != sockaddr[0] else tried


class Listener:
    """Calls `on_accept(sock, address)` for every accepted connection."""

    def __init__(self, sock: socket.socket, on_accept: AcceptHandler):
        self.sock = sock
        self._on_accept = on_accept
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        if self.sock.fileno() >= 0:  # closed meanwhile (a pause after EMFILE may end after close)
            self._loop.add_reader(self.sock.fileno(), self._accept_ready)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _accept_ready(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: stop accepting for a moment instead of spinning.
                    log.error("accept failed: %s; pausing for %.1fs", exc.strerror, _EMFILE_PAUSE_S)
                    self._loop.remove_reader(self.sock.fileno())
                    self._loop.call_later(_EMFILE_PAUSE_S, self.start)
                    return
                # accept(2): network errors of a connection already gone (EPROTO,
                # ENETDOWN, EHOSTUNREACH...) are to be retried like EAGAIN.
                log.debug("accept failed: %s", exc.strerror or exc)
                continue
            conn.setblocking(False)
            self._on_accept(conn, address)
