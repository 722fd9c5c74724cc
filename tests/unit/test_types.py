"""The package type-checks (DESIGN: type hints everywhere, mypy-clean)."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_mypy_is_clean():
    result = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", "websockify"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
