"""scripts/soak.py run small: the soak's phases, then the starvation phase (issue 17), for real."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers import ROOT, timeout

SOAK = os.path.join(ROOT, "scripts", "soak.py")
SMALL = ["--connections", "40", "--duration", "3", "--hold", "1", "--sample-every", "1", "--settle", "10",
         "--starvation-sockets", "200", "--starvation-hold", "4"]


def soak(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    """The soak script, its work directory (kept when a run fails) under `tmp_path`."""
    return subprocess.run([sys.executable, SOAK, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TMPDIR": str(tmp_path)}, timeout=timeout(240))


def test_a_small_soak_and_its_starvation_phase_pass(tmp_path):
    result = soak(tmp_path, *SMALL)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count("result             PASS") == 2, out
    assert "== websockify soak test" in out and "== starvation: idle sockets from one address" in out
    assert re.search(r"200 from 127\.0\.0\.1 sending nothing, held 4s against --max-connections 160: peak \d+ open, "
                     r"\d+ connects", out), out
    honest = re.search(r"(\d+) of (\d+) attempts from 127\.0\.0\.2 succeeded", out)
    # Once a second for 4 s: fewer only when attempts take seconds on a busy machine.
    assert honest and honest.group(1) == honest.group(2) and int(honest.group(2)) >= 2, out
    # The flood was evicted (websockify closed sockets), and its log said so a few times, then counted.
    assert int(re.search(r"(\d+) closed by websockify", out).group(1)) > 0
    assert re.search(r"websockify log     \d+ lines in \d+s of flood: \d+ evicted \(counting [1-9]\d* more\)", out), out


def test_a_starvation_phase_whose_honest_client_fails_says_so_and_exits_1(tmp_path):
    """A websockify that answers every handshake with 500 (an auth plugin that crashes) stands
    in for one that locks honest clients out."""
    command = (f"env PYTHONPATH={os.path.join(ROOT, 'tests', 'plugins')} {sys.executable} -m websockify "
               "--auth-plugin faulty_auth.Crashes")
    result = soak(tmp_path, "--starvation-only", "--starvation-sockets", "50", "--starvation-hold", "2", "--websockify", command)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^soak: starvation: (\d+) of \1 honest attempts from 127\.0\.0\.2 failed while 50 idle sockets "
                     r"were open, first: attempt 0: (refused: b'HTTP/1\.1 500 |handshake: \[Errno 104\] )",
                     result.stderr, re.M), result.stderr  # the 500, or a reset that overtook it
    assert "result             FAIL" in result.stdout
    assert f"websockify's logs are kept in {tmp_path}" in result.stderr
