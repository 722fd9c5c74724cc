"""Static checks: the package type-checks (mypy --strict) and the tree lints clean (ruff).

Both run with no arguments, so they read their settings from pyproject.toml
([tool.mypy], [tool.ruff]) exactly as an editor or a developer's shell does.
"""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_mypy_strict_is_clean():
    """Strict, and no missing imports ignored: psutil's types come from types-psutil."""
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_no_errors():
    """Unused imports, undefined names, late-binding closures and the like, everywhere."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checks_are_configured_in_pyproject():
    """A bare `mypy` or `ruff check` elsewhere would silently check less."""
    import tomllib

    tools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assert tools["mypy"]["strict"] is True and tools["mypy"]["files"] == ["websockify"]
    assert {"F", "E9", "B"} <= set(tools["ruff"]["lint"]["select"])
