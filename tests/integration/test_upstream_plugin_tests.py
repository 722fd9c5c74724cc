"""Upstream's own plugin tests, from the websockify 0.13.0 sdist, run against this package.

The sdist is downloaded once (pip download, the venv's pip) into .venv/upstream-0.13.0/,
and its tests/test_token_plugins.py and tests/test_auth_plugins.py are run twice in a
subprocess: against upstream's own code (its sdist directory first on PYTHONPATH) and
against ours (the editable install). Every test that passes on upstream must pass on
ours, except those listed in NOT_OURS with the reason.

The sdist lacks tests/fixtures/; the tests open an RSA key pair and a symmetric key
there, so they are made here with jwcrypto. The symmetric key is 32 random bytes (as
the tests read it: the base64url `k` of a JWK): upstream's own fixture was 9 bytes,
which jwcrypto >= 1.6 refuses for HS256, so two of its tests failed on upstream too.
"""
from __future__ import annotations

import base64
import os
import pathlib
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree

import pytest
from helpers import ROOT, timeout

VERSION = "0.13.0"
CACHE = pathlib.Path(ROOT) / ".venv" / f"upstream-{VERSION}"
TEST_FILES = ("tests/test_token_plugins.py", "tests/test_auth_plugins.py")
EXPECTED_TESTS = 40  # 36 token-plugin tests, 4 auth-plugin tests

_FILE_MOCK = (
    "patches `open` in websockify.token_plugins, where upstream's ReadOnlyTokenFile read its file "
    "with open(path) at the first lookup; ours lives in websockify.proxy.tokens.files and reads with "
    "os.open(O_NONBLOCK) and fstat (a FIFO cannot hang it, an in-place rewrite is seen), so the patch "
    "reaches nothing, and 'configfile' does not exist: the lookup raises TokenBackendUnavailable (503)")
_NO_PORT = ("; its line 'testhost: remote_host:remote_port' has no port number either, which ours skips "
            "with a warning naming the file and line. The same cases with real files and ports: "
            "tests/unit/proxy/tokens/test_token_files.py::test_upstreams_token_file_cases")
NOT_OURS = {
    "ReadOnlyTokenFileTestCase::test_empty": _FILE_MOCK + ". The same case with a real file: "
    "tests/unit/proxy/tokens/test_token_files.py::test_upstreams_token_file_cases",
    "ReadOnlyTokenFileTestCase::test_simple": _FILE_MOCK + _NO_PORT,
    "ReadOnlyTokenFileTestCase::test_tabs": _FILE_MOCK + _NO_PORT,
}


def sdist_tests() -> pathlib.Path:
    """The sdist's directory, downloaded and unpacked on first use."""
    unpacked = CACHE / f"websockify-{VERSION}"
    if all((unpacked / name).is_file() for name in TEST_FILES):
        return unpacked
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"websockify-{VERSION}.tar.gz"
    if not archive.is_file():
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                                 "--disable-pip-version-check", f"websockify=={VERSION}", "-d", str(CACHE)],
                                capture_output=True, text=True, timeout=timeout(300))
        if result.returncode != 0 or not archive.is_file():
            pytest.fail(f"cannot download upstream's sdist (websockify=={VERSION}) from PyPI, which this test "
                        f"needs (network access; CI has it). pip said:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            tar.extractall(CACHE, filter="data")
        else:
            tar.extractall(CACHE)  # noqa: S202  # PyPI's own sdist of a pinned version
    return unpacked


def make_fixtures(directory: pathlib.Path) -> None:
    """What upstream's tests open in tests/fixtures/, made the way they read it."""
    from jwcrypto import jwk
    directory.mkdir(parents=True)
    key = jwk.JWK.generate(kty="RSA", size=2048)
    (directory / "private.pem").write_bytes(key.export_to_pem(private_key=True, password=None))
    (directory / "public.pem").write_bytes(key.export_to_pem())
    (directory / "symmetric.key").write_text(base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode())


def run_tests(workdir: pathlib.Path, python_path: str | None, name: str) -> dict[str, str]:
    """Each test's outcome (passed, failed, error, skipped) by `Class::test`, from a subprocess."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    if python_path is not None:
        env["PYTHONPATH"] = python_path
    where = subprocess.run([sys.executable, "-c", "import websockify; print(websockify.__file__)"],
                           cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout(60))
    expected_package = python_path if python_path is not None else os.path.join(ROOT, "websockify")
    assert where.stdout.strip().startswith(expected_package), (name, where.stdout, where.stderr)
    report = workdir / f"{name}.xml"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(workdir),
                             "-o", "addopts=", f"--junitxml={report}", *TEST_FILES],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout(300))
    assert report.is_file(), result.stdout + result.stderr
    outcomes = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '').rpartition('.')[2]}::{case.get('name')}"
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag if tag != "failure" else "failed"
        outcomes[test_id] = outcome
    return outcomes


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[dict[str, str], dict[str, str]]:
    upstream = sdist_tests()
    workdir = tmp_path_factory.mktemp("upstream-tests")
    (workdir / "tests").mkdir()
    for name in TEST_FILES:
        (workdir / name).write_text((upstream / name).read_text())
    make_fixtures(workdir / "tests" / "fixtures")
    return run_tests(workdir, str(upstream), "upstream"), run_tests(workdir, None, "ours")


def test_the_tests_run_on_upstream(results):
    on_upstream, _ = results
    assert len(on_upstream) == EXPECTED_TESTS, sorted(on_upstream)
    # With keys jwcrypto accepts, upstream passes every one of its tests.
    assert [test for test, outcome in on_upstream.items() if outcome != "passed"] == []


def test_every_upstream_test_that_passes_on_upstream_passes_here(results):
    on_upstream, ours = results
    assert ours.keys() == on_upstream.keys()
    failing = {test: outcome for test, outcome in ours.items()
               if on_upstream[test] == "passed" and outcome != "passed" and test not in NOT_OURS}
    assert failing == {}, failing
    passed = sum(outcome == "passed" for outcome in ours.values())
    assert passed == EXPECTED_TESTS - len(NOT_OURS), ours


def test_the_listed_exceptions_still_fail(results):
    """The list stays true: a listed test that starts passing is taken off it."""
    _, ours = results
    assert {test: ours[test] for test in NOT_OURS} == {test: "failed" for test in NOT_OURS}
