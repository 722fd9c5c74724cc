"""Imports flow one way; the protocol layer does no I/O."""
import ast
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "websockify"


def imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_protocol_imports_no_io_modules():
    for path in (PACKAGE / "protocol").glob("*.py"):
        forbidden = imported_modules(path) & {"asyncio", "socket", "selectors", "subprocess", "os", "time"}
        assert not forbidden, f"{path.name} imports {forbidden}"


def test_importing_protocol_loads_no_event_loop():
    code = "import sys, websockify.protocol.websocket, websockify.protocol.http; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "False"


def test_only_cli_imports_click_and_only_protocol_imports_websockets():
    for path in PACKAGE.rglob("*.py"):
        names = imported_modules(path)
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
        names = imported_modules(path)
        assert not names & {"psutil", "subprocess"}, rel
        assert "os.kill" not in path.read_text() and "killpg" not in path.read_text(), rel
