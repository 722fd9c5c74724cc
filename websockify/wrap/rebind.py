"""Finding rebind.so, or building it on first use, and the wrapped program's environment.

Lookup order: $WEBSOCKIFY_REBIND_SO; the copy installed inside the package
(setup.py and make build it); a per-user cache entry keyed by the source's hash
and the machine; else compile the source with the system C compiler into that
cache, atomically, so launchers starting together are safe.
"""
from __future__ import annotations

import hashlib
import os
import platform
import resource
import shutil
import signal
import tempfile
from pathlib import Path

from ..errors import ConfigError
from .cflags import compile_command, find_compiler
from .process import run_tool

_HERE = Path(__file__).resolve().parent
# In lib/, not beside this module: Python would try to import a rebind.so here as
# the extension module "websockify.wrap.rebind".
_LIB = _HERE / "lib"
_SOURCES = (_LIB / "rebind.c", _HERE.parents[1] / "rebind" / "rebind.c")
_PACKAGED = _LIB / "rebind.so"


class RebindUnavailable(ConfigError):
    """No usable rebind.so and no way to build one."""


def source_path() -> Path | None:
    return next((p for p in _SOURCES if p.is_file()), None)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "websockify"


def _loads(library: Path) -> bool:
    """Whether the dynamic loader accepts it here (a wheel may carry another machine's)."""
    true = shutil.which("true") or "/bin/true"
    result = run_tool([true], env={"LD_PRELOAD": str(library)}, timeout_s=10)
    return result.returncode == 0 and "LD_PRELOAD" not in result.stderr and "ld.so" not in result.stderr


def find_rebind(explicit: str | None = None) -> Path:
    """Return a rebind.so usable on this machine, building it if needed; `explicit`
    (WEBSOCKIFY_REBIND_SO, read by app.py with the other variables) wins."""
    if explicit:
        if not os.path.isfile(explicit):
            raise RebindUnavailable(f"WEBSOCKIFY_REBIND_SO={explicit}: no such file")
        return Path(explicit)
    if _PACKAGED.is_file() and _loads(_PACKAGED):
        return _PACKAGED
    source = source_path()
    if source is None:
        raise RebindUnavailable("rebind.so is not installed and its source rebind.c is missing; "
                                "reinstall websockify")
    data = source.read_bytes()
    key = hashlib.sha256(data).hexdigest()[:16]
    cached = cache_dir() / f"rebind-{key}-{platform.machine()}-{platform.libc_ver()[0] or 'libc'}.so"
    if cached.is_file():
        return cached
    return build(source, cached)


def build(source: Path, destination: Path) -> Path:
    compiler = find_compiler()
    if compiler is None:
        raise RebindUnavailable("cannot build rebind.so: no C compiler found "
                                "(install gcc, or set CC) and no prebuilt rebind.so is installed")
    destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".rebind-", suffix=".so", dir=destination.parent)
    os.close(fd)
    try:
        result = run_tool(compile_command(compiler, str(source), tmp))
        if result.returncode != 0:
            first = (result.stderr.strip().splitlines() or ["no output"])[0]
            raise RebindUnavailable(f"cannot build rebind.so with {compiler}: {first}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, destination)  # atomic: a racing launcher sees the old or the new file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return destination


def child_environment(base: dict[str, str], library: Path, public_port: int, notify_socket: str,
                      marker: str, parent_pid: int, nofile: tuple[int, int]) -> dict[str, str]:
    """The wrapped program's environment; websockify's own stays untouched.

    The variables are read by rebind.so (see rebind.c): the REBIND_* ones move
    the port and report readiness in the whole tree; the WEBSOCKIFY_* ones set
    up the program's own process, and rebind.so removes them at once.
    """
    env = dict(base)
    preload = env.get("LD_PRELOAD", "")
    # rebind.so goes first, so its bind() wins over other preloads (nss_wrapper...).
    env["LD_PRELOAD"] = f"{library}:{preload}" if preload else str(library)
    env["REBIND_OLD_PORT"] = str(public_port)
    env["REBIND_NEW_PORT"] = "0"  # the kernel chooses; rebind.so reports it when it listens
    env["REBIND_NOTIFY_SOCKET"] = notify_socket
    env["WEBSOCKIFY_PDEATHSIG"] = str(int(signal.SIGKILL))  # dies with websockify, even a SIGKILLed one
    env["WEBSOCKIFY_PARENT_PID"] = str(parent_pid)
    env["WEBSOCKIFY_NOFILE"] = ":".join(_limit_text(limit) for limit in nofile)
    name, _, value = marker.partition("=")
    env[name] = value
    return env


def _limit_text(limit: int) -> str:
    return "infinity" if limit == resource.RLIM_INFINITY else str(limit)
