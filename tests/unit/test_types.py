"""Static checks: the package type-checks (mypy --strict) and the tree lints clean (ruff)."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_mypy_strict_is_clean():
    """Strict, and no missing imports ignored: psutil's types come from types-psutil."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "websockify"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_no_errors():
    """Unused imports, undefined names, late-binding closures and the like, everywhere."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F,E9,B", "--ignore", "B905",
                             "--line-length", "120", "websockify", "tests", "scripts", "demo"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
