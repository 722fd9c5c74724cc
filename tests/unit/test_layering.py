"""Imports flow one way; the protocol layer does no I/O.

cli → app/bootstrap → server/proxy/wrap/workers/service → protocol → config/errors (with the
small addresses, fdlimit and sockopts beside them). A module may import its own layer and the
layers below it; relative imports are resolved first, so `from ..server import x`
in protocol/ counts as much as `import websockify.server`. Nothing imports cli
but the entry points (__main__, and upstream's websocketproxy) and the man page
generator, which reads the options from it (and so needs no click of its own).
"""
import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "websockify"

# Higher layers may import lower ones, never the reverse. A key names a module,
# or a subpackage (which covers everything inside it).
LAYERS = {
    "websockify.__main__": 5,
    "websockify.worker": 5,  # python -m websockify.worker: one process of --workers N
    "websockify.websocketproxy": 5,  # upstream's entry points: websockify_init(), WebSocketProxy
    "websockify.websockifyserver": 5,  # upstream's handler base, for programs that subclass it
    "websockify.cli": 5,
    "websockify.manpage": 5,  # python -m websockify.manpage: websockify(1) from the command line's definitions
    "websockify.app": 4,
    "websockify.bootstrap": 4,  # what the parent (app) and a worker process set up alike
    "websockify.server": 3,
    "websockify.proxy": 3,
    "websockify.wrap": 3,
    "websockify.workers": 3,  # --workers N: the parent's group, a worker's link, their messages
    "websockify.service": 3,  # daemon mode, pid file, systemd, logs: for cli and app
    "websockify.metrics": 3,  # --metrics: what is counted, /metrics, /healthz, /readyz
    "websockify.auth_plugins": 3,  # upstream's import path for proxy/auth_plugins.py
    "websockify.token_plugins": 3,  # upstream's import path for proxy/tokens
    "websockify.websocket": 3,  # upstream's WebSocket: a socket-like face on protocol/endpoint
    "websockify.websocketserver": 3,  # upstream's http.server handler that upgrades to a WebSocket
    "websockify.sysloghandler": 3,  # upstream's RFC 5424 SysLogHandler
    "websockify.protocol": 2,
    "websockify.config": 1,
    "websockify.errors": 1,
    "websockify.addresses": 1,
    "websockify.access_lists": 1,  # --allowed-origins and --allowed-hosts, parsed for config
    "websockify.fdlimit": 1,
    "websockify.sockopts": 1,
    "websockify.os_threads": 1,  # real OS threads even under eventlet's monkey patching
    "websockify": 0,  # __init__ (the version string) only, not the modules under it
}
CLI_IMPORTERS = {"websockify.__main__", "websockify.websocketproxy", "websockify.manpage"}
# Deliberate exceptions, each with its reason.
ALLOWED = {
    ("websockify", "websockify.websocketproxy"): "upstream's websockify.WebSocketProxy, imported on first use",
}


def module_name(path: pathlib.Path) -> str:
    parts = ["websockify", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, pathlib.Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    """The layer of the longest LAYERS key that is `module` or contains it."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or (prefix != "websockify" and module.startswith(prefix + ".")):
            return LAYERS[prefix]
    raise KeyError(f"{module} is in no layer: add it to LAYERS")


def package_imports(module: str, source: str, is_package: bool = False,
                    known: frozenset[str] = frozenset()) -> set[str]:
    """Absolute names of the websockify modules `source` imports, relative imports resolved.

    `from X import name` imports X.name when that is a module in `known`, else X.
    """
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(here):
                    raise ValueError(f"{module}: relative import beyond the top-level package")
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name == "websockify" or name.startswith("websockify.")}


def layering_violations(module: str, source: str, is_package: bool = False,
                        known: frozenset[str] = frozenset()) -> list[str]:
    problems = []
    for imported in sorted(package_imports(module, source, is_package, known)):
        if (module, imported) in ALLOWED:
            continue
        if imported == "websockify.cli" and module not in CLI_IMPORTERS:
            problems.append(f"{module} imports {imported}: nothing imports the command line")
        elif layer_of(imported) > layer_of(module):
            problems.append(f"{module} (layer {layer_of(module)}) imports {imported} "
                            f"(layer {layer_of(imported)}): imports flow downwards only")
    return problems


def test_every_module_has_a_layer():
    for module in package_modules():
        layer_of(module)
    with pytest.raises(KeyError):
        layer_of("websockify.newmodule")  # a new top-level module must be placed by hand


def test_imports_flow_one_way():
    modules = package_modules()
    known = frozenset(modules)
    problems = []
    for module, path in modules.items():
        problems += layering_violations(module, path.read_text(), path.name == "__init__.py", known)
    assert not problems, "\n".join(problems)


def test_the_checker_sees_every_import_of_the_real_tree():
    """A sample of real edges, so a resolver that finds nothing cannot pass the test above."""
    modules = package_modules()
    known = frozenset(modules)

    def imports(module: str) -> set[str]:
        path = modules[module]
        return package_imports(module, path.read_text(), path.name == "__init__.py", known)

    assert {"websockify.errors", "websockify.protocol.hixie", "websockify.proxy.pump",
            "websockify.server.web"} <= imports("websockify.server.connection")
    assert "websockify.app" in imports("websockify.cli")  # the late import inside a function
    assert "websockify.cli" in imports("websockify.__main__")


KNOWN = frozenset({"websockify.server", "websockify.server.web", "websockify.app", "websockify.cli",
                   "websockify.protocol", "websockify.protocol.http", "websockify.config", "websockify.proxy"})


@pytest.mark.parametrize("module,source,is_package", [
    ("websockify.protocol.http", "from ..server import web", False),
    ("websockify.protocol.http", "from .. import server", False),
    ("websockify.protocol.http", "from ..server.web import serve", False),
    ("websockify.protocol.http", "from websockify.proxy import pump", False),
    ("websockify.protocol", "from ..app import run", True),
    ("websockify.protocol.http", "def late():\n    from ..cli import main\n", False),
    ("websockify.server.connection", "from .. import app", False),
    ("websockify.proxy.pump", "import websockify.app", False),
    ("websockify.wrap.program", "from ..cli import main", False),
    ("websockify.app", "from .cli import main", False),
    ("websockify.config", "from .protocol.http import x", False),
    ("websockify.errors", "from . import config, server", False),
])
def test_the_checker_refuses_imports_against_the_flow(module, source, is_package):
    assert layering_violations(module, source, is_package, KNOWN)


@pytest.mark.parametrize("module,source,is_package", [
    ("websockify.server.connection", "from ..protocol import http\nfrom ..config import x\nfrom . import web", False),
    ("websockify.server.connection", "from ..proxy.pump import Relay", False),
    ("websockify.protocol.http", "from ..config import X\nfrom ..errors import HttpError\nfrom .sniff import s", False),
    ("websockify.app", "from .server.server import ProxyServer\nfrom .config import Config", False),
    ("websockify.cli", "from . import __version__\nfrom .app import run", False),
    ("websockify.__main__", "from .cli import main", False),
    ("websockify.server", "from . import web", True),
])
def test_the_checker_allows_imports_with_the_flow(module, source, is_package):
    assert layering_violations(module, source, is_package, KNOWN) == []


def test_relative_imports_resolve_like_python():
    assert package_imports("websockify.server.connection", "from ..protocol.http import x", known=KNOWN) \
        == {"websockify.protocol.http"}
    assert package_imports("websockify.server.connection", "from . import web", known=KNOWN) \
        == {"websockify.server.web"}
    assert package_imports("websockify.server", "from . import web", is_package=True, known=KNOWN) \
        == {"websockify.server.web"}
    assert package_imports("websockify.cli", "from . import __version__", known=KNOWN) == {"websockify"}
    with pytest.raises(ValueError):
        package_imports("websockify.config", "from ... import x")


# -- third-party and system modules ------------------------------------------

def top_level_imports(path: pathlib.Path) -> set[str]:
    """First components of the absolute imports (relative ones are the package's own)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_protocol_imports_no_io_modules():
    for path in (PACKAGE / "protocol").glob("*.py"):
        forbidden = top_level_imports(path) & {"asyncio", "socket", "selectors", "subprocess", "os", "time"}
        assert not forbidden, f"{path.name} imports {forbidden}"


def test_importing_protocol_loads_no_event_loop():
    code = "import sys, websockify.protocol.websocket, websockify.protocol.http; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "False"


def test_only_cli_imports_click_and_only_protocol_imports_websockets():
    for path in PACKAGE.rglob("*.py"):
        names = top_level_imports(path)
        rel = path.relative_to(PACKAGE).as_posix()
        if rel != "cli.py":
            assert "click" not in names, rel
        if not rel.startswith("protocol/"):
            assert "websockets" not in names, rel


def test_only_process_module_spawns_or_signals():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "wrap/process.py":
            continue
        names = top_level_imports(path)
        assert not names & {"psutil", "subprocess"}, rel
        assert "os.kill" not in path.read_text() and "killpg" not in path.read_text(), rel
