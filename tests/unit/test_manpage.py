"""docs/websockify.1 is what `python -m websockify.manpage` prints, and it renders cleanly."""
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from websockify import cli, manpage

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "websockify.1"


def test_the_committed_page_is_regenerated_unchanged():
    result = subprocess.run([sys.executable, "-m", "websockify.manpage"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == PAGE.read_text(), \
        "docs/websockify.1 is stale: .venv/bin/python -m websockify.manpage > docs/websockify.1"


def test_the_page_has_every_section_and_option():
    page = manpage.render()
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "EXIT STATUS", "SEE ALSO"):
        assert f"\n.SH {heading}\n" in page
    for title, rows in cli.help_sections():
        assert f"\n.SS {manpage.escape(title)}\n" in page
        for spec, text in rows:
            assert f"\n{manpage.escape(text)}\n" in page, spec  # the --help text, default included
    assert "[default: 0]" in page and "[default: 0600]" in page
    assert page.isascii()  # groff reads Latin-1 unless preconv runs first


@pytest.mark.parametrize("text,expected", [
    ("--cert", "\\-\\-cert"),
    (".hidden", "\\&.hidden"),
    ("'quoted", "\\&'quoted"),
    ("a\\b", "a\\eb"),
])
def test_escape(text, expected):
    assert manpage.escape(text) == expected


def test_the_page_renders_without_warnings():
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed (apt-get install groff-base)")
    result = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", str(PAGE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    man = shutil.which("man")
    if man is not None:
        shown = subprocess.run([man, "--warnings", "-l", str(PAGE)], capture_output=True, text=True, timeout=60,
                               env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
        assert shown.returncode == 0 and shown.stderr == "", shown.stderr
        text = re.sub(".\x08", "", shown.stdout)  # bold and underline are overstrikes (X backspace X)
        # ASCII hyphen-minus, copyable: \- and not a hyphen that groff may turn into U+2010.
        assert "--ssl-version" in text and "Wrapping a program (-- COMMAND)" in text
