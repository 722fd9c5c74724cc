# -*- coding: utf-8 -*-
"""wstest (Autobahn's fuzzing client), with a relay check added to each case report.

Python 2: it runs in Autobahn's own virtualenv (.autobahn/venv), started by
scripts/autobahn.py with wstest's usual arguments.

websockify relays payload bytes to a TCP target and sends each read of the
target back as one binary message, so an echo through it keeps the bytes but
not the message boundaries or the text/binary type, and Autobahn's exact
comparison fails. Autobahn's reports cut payloads to 64 bytes, too little to
check the bytes afterwards, so the check is made here, at the end of each case,
on the whole payloads, and its verdict is added to the case report as "relay":

  intact  the bytes of the messages received are the start of the bytes of
          the data frames sent (an echo can return nothing else);
  exact   the events received are one expected outcome's, as Autobahn compares
          them (a failure is then not a matter of the relay);
  match   the first expected outcome (OK, NON-STRICT, INFORMATIONAL, ...) that
          the case would have reached with boundaries and types disregarded:
          the same pings, pongs and timeouts, in order, and the message bytes
          together equal to that outcome's (kind "echo"), or those followed by
          more of the bytes sent (kind "prefix": the start of a message that
          the server rejected later, relayed before the rejection); null if none;
  optional_echo  the OK outcome wants an echo, and the NON-STRICT one the
          same events without it (a server may fail the connection before it);
  sent, received  byte counts; messages: [length, binary] of each message
          received; expected_messages: the same of the outcome matched.
"""
import os
import sys

# This folder holds autobahn.py, which would hide the autobahn package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]

from autobahntestsuite import fuzzing, wstest  # noqa: E402

_PREFERENCE = ("OK", "NON-STRICT", "INFORMATIONAL")


def _as_bytes(payload):
    if isinstance(payload, unicode):  # noqa: F821 (Python 2)
        return payload.encode("utf-8")
    return bytes(payload)


def _control(events):
    """The events that are not messages: pings, pongs, timeouts."""
    return [tuple(_as_bytes(part) for part in event) for event in events if event[0] != "message"]


def _messages(events):
    return [[len(_as_bytes(event[1])), bool(event[2])] for event in events if event[0] == "message"]


def _data(events):
    return b"".join(_as_bytes(event[1]) for event in events if event[0] == "message")


def relay_verdict(case, messages, sent):
    """Judge the messages received against the bytes sent and each expected outcome."""
    control, expected = _control(case.received), case.expected
    data = _data(messages)
    verdict = {"intact": sent[:len(data)] == data, "match": None, "kind": None, "sent": len(sent),
               "received": len(data), "messages": _messages(messages),
               "exact": any(case.compare(case.received, events) for events in expected.values())}
    ok, lax = expected.get("OK"), expected.get("NON-STRICT")
    verdict["optional_echo"] = bool(ok and lax is not None and _control(ok) == _control(lax)
                                    and _data(ok) and not _data(lax))
    if not verdict["intact"]:
        return verdict
    keys = [key for key in _PREFERENCE if key in expected] + sorted(k for k in expected if k not in _PREFERENCE)
    for key in keys:
        wanted = _data(expected[key])
        if _control(expected[key]) != control or not data.startswith(wanted):
            continue
        verdict["match"] = key
        verdict["kind"] = "echo" if data == wanted else "prefix"
        verdict["expected_messages"] = _messages(expected[key])
        return verdict
    return verdict


_connection_lost = fuzzing.FuzzingProtocol.connectionLost
_on_message = fuzzing.FuzzingProtocol.onMessage
_log_case = fuzzing.FuzzingFactory.logCase
_send_frame = fuzzing.FuzzingClientProtocol.sendFrame
_send_message_frame_data = fuzzing.FuzzingClientProtocol.sendMessageFrameData


def _record(protocol, name):
    if not hasattr(protocol, name):
        setattr(protocol, name, [])
    return getattr(protocol, name)


def send_frame(self, opcode, payload=b"", fin=True, rsv=0, mask=None, payload_len=None, chopsize=None,
               sync=False):
    if opcode in (0, 1, 2):
        data = _as_bytes(payload)
        if payload_len is not None and data:  # Autobahn repeats the payload up to payload_len
            data = (data * (payload_len // len(data) + 1))[:payload_len]
        _record(self, "relay_sent").append(data)
    return _send_frame(self, opcode, payload, fin, rsv, mask, payload_len, chopsize, sync)


def send_message_frame_data(self, payload, sync=False):
    _record(self, "relay_sent").append(_as_bytes(payload))
    return _send_message_frame_data(self, payload, sync)


def on_message(self, payload, binary):
    # Here, not from the case's events: the performance cases (9.*) keep none.
    if self.runCase:
        _record(self, "relay_received").append(("message", payload, binary))
    return _on_message(self, payload, binary)


def connection_lost(self, reason):
    # Before the original turns the events into cut-down text for its report.
    if self.runCase:
        self.factory.relay_verdict = relay_verdict(self.runCase, _record(self, "relay_received"),
                                                   b"".join(_record(self, "relay_sent")))
    _connection_lost(self, reason)


def log_case(self, results):
    verdict = getattr(self, "relay_verdict", None)
    self.relay_verdict = None
    if verdict is not None:
        results["relay"] = verdict
    _log_case(self, results)


fuzzing.FuzzingProtocol.connectionLost = connection_lost
fuzzing.FuzzingProtocol.onMessage = on_message
fuzzing.FuzzingFactory.logCase = log_case
fuzzing.FuzzingClientProtocol.sendFrame = send_frame
fuzzing.FuzzingClientProtocol.sendMessageFrameData = send_message_frame_data

if __name__ == "__main__":
    sys.argv[0] = "wstest"
    wstest.run()
