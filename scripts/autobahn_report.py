"""Reading an Autobahn fuzzingclient report and judging it against the expectations file.

A case's outcome is one string: Autobahn's "behavior/behaviorClose", and for a
case Autobahn failed on what came back, the relay check's verdict
(scripts/autobahn_wstest.py), e.g. "FAILED/WRONG CODE relay=OK:echo" (the bytes
the OK outcome wants came back, in other messages), "relay=intact" (a
performance case: what came back is the start of what was sent) or
"relay=none" (always a failure); for any other failure, the server's close
code, e.g. "FAILED/FAILED close=1009".

The expectations file maps each case id to {"accept": [outcomes], "reason": ...}:
the outcomes seen and accepted, and, for any case not plainly OK, why. Where
timing decides between outcomes that say the same (WHOLE and LIMIT below), any
of them stands for all.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

EVENTS_DIFFER = "Actual events differ from any expected."
# How the performance cases (9.*), which keep no events, word an echo of another type or size.
ECHO_DIFFERS = re.compile(r"Expected (text|binary) message with payload|Echo'ed message type or length differs")
# Everything expected came back, byte for byte; only the messages differ, as TCP
# reads set them (so a binary echo may come back whole: OK). Where the close
# code is 1001, Autobahn sent it after waiting for the exact echo, and
# websockify echoed it. With an optional echo (see autobahn_wstest.py), no
# echo at all (NON-STRICT) is the same outcome: the server failed the
# connection before the echo came back.
WHOLE = {"OK/OK", "FAILED/OK relay=OK:echo", "FAILED/WRONG CODE close=1001 relay=OK:echo", "FAILED/OK relay=intact"}
# A message over a limit (1009: 1 MiB; 1008: 1024 fragments): the close races
# the echo of its first fragments, and Autobahn's verdict follows the winner.
LIMIT = re.compile(r"FAILED/(?:FAILED|WRONG CODE) close=(100[89])(?: relay=intact)?")
CONFORMANT = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED")
SECTIONS = {"1": "Framing", "2": "Pings/Pongs", "3": "Reserved bits", "4": "Opcodes", "5": "Fragmentation",
            "6": "UTF-8", "7": "Close handling", "9": "Limits/performance", "10": "Misc",
            "12": "Compression (payloads)", "13": "Compression (parameters)"}
Json = dict[str, Any]
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "relay", "FAILED")


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def selected(case_id: str, patterns: Iterable[str]) -> bool:
    """Autobahn's own pattern rule: '*' is any text, matched from the start; else the exact id."""
    for pattern in patterns:
        if "*" in pattern:
            if re.match(pattern.replace(".", r"\.").replace("*", ".*"), case_id):
                return True
        elif pattern == case_id:
            return True
    return False


@dataclass(frozen=True)
class Result:
    case_id: str
    behavior: str
    behavior_close: str
    result: str
    remote_close_code: int | None
    relay: Json

    @property
    def relay_applies(self) -> bool:
        """Failed on what came back, which the relay may explain: the relay check decides."""
        return (self.behavior == "FAILED" and not self.relay.get("exact")
                and bool(self.relay.get("match") or self.result == EVENTS_DIFFER or ECHO_DIFFERS.match(self.result)))

    @property
    def relay_verdict(self) -> str:
        """OUTCOME:echo|prefix (see autobahn_wstest.py), `intact` for a performance case, or `none`."""
        if self.relay.get("match"):
            return f"{self.relay['match']}:{self.relay['kind']}"
        if self.result != EVENTS_DIFFER and self.relay.get("intact"):
            return "intact"
        return "none"

    @property
    def outcome(self) -> str:
        text = f"{self.behavior}/{self.behavior_close}"
        if self.behavior_close not in ("OK", "INFORMATIONAL", "UNIMPLEMENTED"):
            text += f" close={self.remote_close_code}"  # which rule closed the connection
        return f"{text} relay={self.relay_verdict}" if self.relay_applies else text

    def same(self, outcome: str) -> str:
        """The outcome, or its class where which of its members turns up is a matter of timing."""
        if outcome in WHOLE or (outcome == "NON-STRICT/OK" and self.relay.get("optional_echo")):
            return "whole"
        limit = LIMIT.fullmatch(outcome)
        return f"limit {limit.group(1)}" if limit else outcome

    def accepted(self, outcomes: Iterable[str]) -> bool:
        return self.same(self.outcome) in {self.same(outcome) for outcome in outcomes}

    @property
    def column(self) -> str:
        """The summary column: Autobahn's behavior, or `relay` for a failure the relay explains."""
        if self.relay_applies and self.relay_verdict != "none":
            return "relay"
        return self.behavior if self.behavior in CONFORMANT else "FAILED"


def read_report(outdir: Path, agent: str) -> dict[str, Result]:
    index = json.loads((outdir / "index.json").read_text())
    results = {}
    for case_id, entry in index.get(agent, {}).items():
        detail = json.loads((outdir / entry["reportfile"]).read_text())
        results[case_id] = Result(case_id, entry["behavior"], entry["behaviorClose"], detail.get("result", ""),
                                  entry.get("remoteCloseCode"), detail.get("relay") or {})
    return results


def default_reason(result: Result, reference: Result | None) -> str:
    """A first wording of why a case is not plainly OK; the file keeps any edited one."""
    same = reference is not None and reference.outcome == result.outcome
    if result.column == "relay":
        return "relay: " + "; ".join(_relay_notes(result))
    if result.behavior == "UNIMPLEMENTED":
        return "permessage-deflate is not negotiated"
    if result.remote_close_code == 1009:
        return "larger than the 1 MiB message limit: closed with 1009" + (" (as websockets)" if same else "")
    if result.remote_close_code == 1008:
        return "more than 1024 fragments in a message: closed with 1008 (websockets: 1009 at 1 MiB)"
    if result.behavior in ("NON-STRICT", "INFORMATIONAL"):
        return f"{result.behavior}" + (" (as websockets)" if same else "")
    return "FAILED" + (" as websockets' own server (reference)" if same else ": differs from websockets")


def _relay_notes(result: Result) -> list[str]:
    relay = result.relay
    expected = relay.get("expected_messages") or []
    received = relay.get("messages") or []
    notes = []
    if relay.get("kind") == "prefix":
        notes.append(f"the valid start of the message ({relay['received']} bytes) was relayed before the "
                     f"server rejected the rest; Autobahn wants nothing back")
    elif relay.get("kind") is None:  # a performance case: the first echo that differs ends it
        notes.append("text echoed as binary" if "got binary" in result.result
                     else "a message comes back in TCP reads, not whole")
        notes.append("the bytes that came back are the start of those sent")
    elif relay["received"] == 0 and expected:
        notes.append("empty messages carry no bytes: nothing to relay, nothing comes back")
    else:
        if any(not binary for _, binary in expected) and received:
            notes.append("text echoed as binary")
        if len(expected) != len(received):
            notes.append(f"TCP reads set the messages: {len(expected)} expected, {len(received)} received")
    if result.behavior_close == "WRONG CODE" and result.remote_close_code == 1001:
        notes.append("waiting for the exact echo, Autobahn closed with 1001 and websockify echoed it")
    return notes


def load_expectations(path: Path) -> dict[str, Json]:
    if not path.exists():
        return {}
    cases: dict[str, Json] = json.loads(path.read_text())["cases"]
    return cases


ABOUT = ("Autobahn fuzzingclient outcomes of websockify (binary subprotocol, 1 MiB message limit) in front of a "
         "TCP echo target. Per case: the outcomes accepted, as 'behavior/behaviorClose' (with the server's close "
         "code when the close is not OK, and for a failure on what came back the relay check: relay=OUTCOME:echo "
         "or :prefix, or relay=intact), and why a case is not plainly OK. Outcomes that differ by timing only "
         "stand for each other (scripts/autobahn_report.py: WHOLE, LIMIT). Checked by `make autobahn`; "
         "`--update` adds a run's new outcomes.")


def write_expectations(path: Path, cases: dict[str, Json]) -> None:
    """One line per case, in case order, so that a change reads as a one-line diff."""
    lines = [f"  {json.dumps(case_id)}: {json.dumps(cases[case_id], ensure_ascii=False)}"
             for case_id in sorted(cases, key=case_key)]
    path.write_text("{\n  \"about\": " + json.dumps(ABOUT) + ",\n  \"cases\": {\n"
                    + ",\n".join("  " + line for line in lines) + "\n  }\n}\n")


def updated(cases: dict[str, Json], results: dict[str, Result], reference: dict[str, Result],
            reset: bool) -> dict[str, Json]:
    """The expectations with these outcomes added (replacing the old ones with `reset`)."""
    out = dict(cases)
    for case_id, result in results.items():
        old = {} if reset else cases.get(case_id, {})
        accept = list(old.get("accept", []))
        if not result.accepted(accept):
            accept = sorted(accept + [result.outcome], key=lambda o: (o != "OK/OK", o))
        entry: Json = {"accept": accept}
        if accept != ["OK/OK"]:
            entry["reason"] = old.get("reason") or default_reason(result, reference.get(case_id))
        out[case_id] = entry
    return out


def mismatches(cases: dict[str, Json], results: dict[str, Result], wanted: Iterable[str]) -> list[str]:
    """Every way this run differs from the expectations, one line each."""
    problems = []
    for case_id in sorted(set(wanted) | set(results), key=case_key):
        result = results.get(case_id)
        expected = cases.get(case_id)
        if result is None:
            problems.append(f"{case_id}: did not run (expected {' or '.join(expected['accept'])})"
                            if expected else f"{case_id}: did not run")
        elif result.relay.get("intact") is not True:
            problems.append(f"{case_id}: {result.outcome}: the bytes that came back are not the start of those "
                            f"sent ({result.relay.get('received')} bytes received)")
        elif result.outcome.endswith("relay=none"):
            problems.append(f"{case_id}: {result.outcome}: what came back is none of the outcomes expected, "
                            f"even with message boundaries and types disregarded")
        elif expected is None:
            problems.append(f"{case_id}: {result.outcome}: no expectation (new case? see --update)")
        elif not result.accepted(expected["accept"]):
            problems.append(f"{case_id}: {result.outcome}, expected {' or '.join(expected['accept'])}")
    return problems


def summary_table(results: dict[str, Result], reference: dict[str, Result]) -> list[str]:
    """Counts by section and column, websockify's first, then the reference's."""
    head = f"{'section':<28}{'cases':>6}" + "".join(f"{c:>15}" for c in COLUMNS)
    if reference:
        head += "   websockets (reference)"
    lines = [head]
    totals, reference_totals = Counter[str](), Counter[str]()
    for section in sorted({case_id.split(".")[0] for case_id in results}, key=int):
        mine = Counter(r.column for r in results.values() if r.case_id.split(".")[0] == section)
        theirs = Counter(r.column for r in reference.values() if r.case_id.split(".")[0] == section)
        totals.update(mine)
        reference_totals.update(theirs)
        lines.append(_row(f"{section} {SECTIONS.get(section, '')}", mine, theirs, bool(reference)))
    lines.append(_row("all", totals, reference_totals, bool(reference)))
    return lines


def _row(name: str, mine: Counter[str], theirs: Counter[str], with_reference: bool) -> str:
    row = f"{name:<28}{sum(mine.values()):>6}" + "".join(f"{mine[c] or '':>15}" for c in COLUMNS)
    if with_reference:
        row += "   " + " ".join(f"{c} {theirs[c]}" for c in COLUMNS if theirs[c])
    return row
