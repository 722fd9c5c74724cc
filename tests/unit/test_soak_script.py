"""scripts/soak.py without running a soak: the connection count the open-file limit allows, and the summary."""
import pathlib
import sys

import pytest

SCRIPTS = pathlib.Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # scripts/ is not a package: soak.py imports its siblings by name

import soak  # noqa: E402
import soak_procs  # noqa: E402
from soak_report import WARNINGS_SHOWN, Run  # noqa: E402

WARNING = ("2025-01-01 12:00:00,000 websockify[4242] WARNING the open-file limit (20000) allows 9976 clients "
           "at once: --max-connections 11040 lowered")


@pytest.mark.parametrize("hard,handshakes", [(20000, 64), (20001, 64), (3000, 64), (1 << 20, 64), (200, 8),
                                             (160, 64), (161, 64), (20000, 1)])
def test_the_most_that_fits_is_the_inverse_of_the_need(hard, handshakes):
    fits = soak_procs.max_connections_fitting(hard, handshakes)
    assert fits == 0 or soak_procs.file_limit_needed(fits, handshakes) <= hard
    assert soak_procs.file_limit_needed(fits + 1, handshakes) > hard


def test_the_default_shrinks_to_what_the_limit_fits():
    assert soak_procs.choose_connections(None, 10000, 20000, 64) == (
        9920, "the open-file limit (hard 20000) fits 9920 connections, not 10000; running with 9920")


@pytest.mark.parametrize("hard", [soak_procs.file_limit_needed(10000, 64), 1 << 30])
def test_the_default_runs_as_is_when_it_fits(hard):
    assert soak_procs.choose_connections(None, 10000, hard, 64) == (10000, "")


def test_a_count_asked_for_runs_as_is_when_it_fits():
    assert soak_procs.choose_connections(2000, 10000, 20000, 64) == (2000, "")
    assert soak_procs.choose_connections(9920, 10000, 20000, 64) == (9920, "")


def test_a_count_asked_for_that_does_not_fit_stops_the_run():
    with pytest.raises(soak_procs.SetupError) as raised:
        soak_procs.choose_connections(10000, 10000, 20000, 64)
    assert str(raised.value) == ("10000 connections need an open-file limit of 20160 for websockify, the hard limit "
                                 "here is 20000; raise it (ulimit -Hn as root) or use --connections 9920")


@pytest.mark.parametrize("asked", [None, 10])
def test_a_limit_that_fits_no_connection_stops_the_run(asked):
    with pytest.raises(soak_procs.SetupError, match=r"^the open-file limit \(hard 150\) fits no connections "
                                                    r"with --handshakes 64; raise it"):
        soak_procs.choose_connections(asked, 10000, 150, 64)


def test_main_announces_the_fitted_count_in_one_line_and_runs_it(monkeypatch, capsys):
    chosen = {}

    def no_echo_server():  # the run gets as far as its first child, with everything settled
        raise soak_procs.SetupError("stopped by the test")

    monkeypatch.setattr(soak_procs, "ensure_file_limit", lambda needed: 20000)
    monkeypatch.setattr(soak_procs, "start_echo_server", no_echo_server)
    monkeypatch.setattr(soak, "Run", lambda *args, **kwargs: chosen.setdefault("run", Run(*args, **kwargs)))
    assert soak.main(["--duration", "30"]) == 2
    out, err = capsys.readouterr()
    assert out == "soak: the open-file limit (hard 20000) fits 9920 connections, not 10000; running with 9920\n"
    assert err == "soak: stopped by the test\n"
    run = chosen["run"]
    assert (run.connections, run.fitted_from) == (9920, 10000)


def test_main_stops_when_the_count_asked_for_does_not_fit(monkeypatch, capsys):
    monkeypatch.setattr(soak_procs, "ensure_file_limit", lambda needed: 20000)
    assert soak.main(["--connections", "10000"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("soak: 10000 connections need an open-file limit of 20160")


def test_the_defaults_that_follow_the_connection_count_follow_the_fitted_one():
    args = soak.parse_args(["--duration", "600"])
    assert args.connections is None
    soak.set_defaults(args, 9920)
    assert (args.connections, args.churn_rate, args.warmup) == (9920, 99.2, 100)


def test_a_connection_count_must_still_be_positive(capsys):
    with pytest.raises(SystemExit):
        soak.parse_args(["--connections", "0"])
    assert "--connections must be positive" in capsys.readouterr().err


def test_the_log_gives_its_warning_lines(tmp_path):
    log = tmp_path / "websockify.log"
    log.write_text("2025-01-01 12:00:00,000 websockify[4242] INFO listening on 127.0.0.1:1234\n"
                   f"{WARNING}\n"
                   "2025-01-01 12:00:01,000 websockify[4242] ERROR something broke\n")
    warnings, errors = soak_procs.log_problems(log)
    assert warnings == [WARNING]
    assert errors == ["2025-01-01 12:00:01,000 websockify[4242] ERROR something broke"]


def test_the_summary_shows_each_warning():
    run = Run(9920, 600, 100, log_warnings=[WARNING], fitted_from=10000)
    summary = run.summary().splitlines()
    row = summary.index("websockify log     1 warning, 0 errors")
    assert summary[row + 1] == f"  {WARNING}"
    assert summary[row + 2].startswith("result ")
    assert "9920 through one websockify process; the most the open-file limit fits, not the default 10000" \
        in run.summary()


def test_the_summary_counts_in_the_singular_and_the_plural():
    assert "websockify log     0 warnings, 0 errors" in Run(10, 5, 1).summary().splitlines()
    run = Run(10, 5, 1, log_warnings=["w one", "w two"], log_errors=["e one"])
    assert "websockify log     2 warnings, 1 error" in run.summary().splitlines()
    assert "websockify logged 1 error, first: e one" in run.failures()


def test_the_summary_shows_the_first_warnings_and_counts_the_rest():
    warnings = [f"warning {i}" for i in range(WARNINGS_SHOWN + 5)]
    run = Run(10, 5, 1, log_warnings=warnings)
    summary = run.summary().splitlines()
    row = summary.index(f"websockify log     {WARNINGS_SHOWN + 5} warnings, 0 errors")
    assert summary[row + 1:row + 1 + WARNINGS_SHOWN] == [f"  {w}" for w in warnings[:WARNINGS_SHOWN]]
    assert summary[row + 1 + WARNINGS_SHOWN] == "  ... and 5 more in websockify's log"
    assert run.warnings_hidden() == 5
