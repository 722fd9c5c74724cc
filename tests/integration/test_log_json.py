"""`--log-format json` (issue 19, item 7): every line on standard error and in --log-file is one
JSON object; a session's end and a refused handshake are events with their fields as keys;
usage and start-up errors stay one plain line."""
from __future__ import annotations

import json
import re
import struct
import subprocess
import sys

import pytest
from helpers import assert_one_line_error, running_proxy, timeout, wait_for
from rawws import frame, open_websocket, read_frame, upgrade_status

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
COMMON = ["time", "level", "logger", "pid", "message"]


def objects(lines: list[str]) -> list[dict]:
    """Each line as its object; fails on a line that is not one JSON object."""
    parsed = []
    for line in lines:
        assert line.isascii() and line.isprintable(), line
        value = json.loads(line)
        assert isinstance(value, dict) and list(value)[:5] == COMMON, line
        assert re.fullmatch(TIME, value["time"]) and isinstance(value["pid"], int), line
        parsed.append(value)
    return parsed


def events(lines: list[str], name: str) -> list[dict]:
    return [value for value in objects(list(lines)) if value.get("event") == name]


def echoed(ws, length: int) -> bytes:
    """What the echo target sent back, over as many frames as the relay made of it."""
    data = b""
    while len(data) < length:
        opcode, payload = read_frame(ws)
        assert opcode == 0x2
        data += payload
    return data


def test_every_line_is_one_object_and_sessions_and_refusals_are_events(tmp_path, echo_server):
    log = tmp_path / "ws.log"
    with running_proxy("--log-format", "json", "--log-file", str(log), "--allowed-origins", "https://a.example",
                       "127.0.0.1:0", echo_server.address) as proxy:
        ws = open_websocket(proxy.port)  # no Origin: not a browser, let in
        client = "127.0.0.1:%d" % ws.getsockname()[1]
        sent = [b"PAYLOAD-1", bytes(range(256)) * 40]
        for payload in sent:
            ws.sendall(frame(0x2, payload))
            assert echoed(ws, len(payload)) == payload
        ws.sendall(frame(0x8, struct.pack("!H", 1000)))
        assert read_frame(ws)[0] == 0x8
        ws.close()
        assert upgrade_status(proxy.port, path="/websockify?token=SECRET-TOKEN-1",
                              extra="Origin: https://evil.example\r\n") == 403
        ends = wait_for(lambda: events(proxy.lines, "session_end"), 10, "the session_end object")
        refusals = wait_for(lambda: events(proxy.lines, "handshake_failed"), 10, "the handshake_failed object")
        wait_for(lambda: "handshake_failed" in log.read_text(), 10, "the log file's handshake_failed object")
    assert proxy.proc.returncode == 0
    (end,) = ends
    size = sum(len(payload) for payload in sent)
    assert end["client"] == client and end["target"] == echo_server.address and end["proxy"] is None
    assert (end["bytes_up"], end["bytes_down"]) == (size, size)
    assert end["close_code"] == 1000 and end["close_reason"] is None and end["failure"] is None
    assert end["subprotocol"] == "binary" and end["tls_version"] is None and end["token"] is None
    assert isinstance(end["duration_s"], float) and 0 <= end["duration_s"] < timeout(60)
    assert f"up={size} down={size}" in end["message"]  # the text format's line, as the message
    (refused,) = refusals
    assert re.fullmatch(r"127\.0\.0\.1:\d+", refused["client"]) and refused["proxy"] is None
    assert (refused["status"], refused["reason"], refused["method"]) == (403, "origin", "GET")
    assert refused["path"].startswith("/websockify?token=") and "SECRET-TOKEN-1" not in refused["path"]
    stderr = objects(proxy.lines)
    in_file = objects(log.read_text().splitlines())
    assert {value["pid"] for value in stderr + in_file} == {proxy.proc.pid}
    assert any(re.fullmatch(rf"listening on 127\.0\.0\.1:{proxy.port}", value["message"]) for value in stderr)
    # The file has what standard error has (a line the file opened too late for aside).
    assert [value["message"] for value in in_file] == [value["message"] for value in stderr][-len(in_file):]
    assert "SECRET-TOKEN-1" not in proxy.log + log.read_text()


def test_tokens_are_shortened_in_sessions_and_unknown_ones_are_refusals(tmp_path, echo_server):
    tokens = tmp_path / "tokens.cfg"
    tokens.write_text(f"vm-one-SECRET: {echo_server.address}\n")
    with running_proxy("--log-format", "json", "--token-plugin", "TokenFile", "--token-source", str(tokens),
                       "127.0.0.1:0") as proxy:
        ws = open_websocket(proxy.port, path="/websockify?token=vm-one-SECRET")
        ws.sendall(frame(0x2, b"hello"))
        assert echoed(ws, 5) == b"hello"
        ws.sendall(frame(0x8, struct.pack("!H", 4000) + b"bye"))
        assert read_frame(ws)[0] == 0x8
        ws.close()
        assert upgrade_status(proxy.port, path="/websockify?token=guessed-SECRET") == 404
        (end,) = wait_for(lambda: events(proxy.lines, "session_end"), 10, "the session_end object")
        (refused,) = wait_for(lambda: events(proxy.lines, "handshake_failed"), 10, "the handshake_failed object")
    assert (end["token"], end["target"], end["bytes_up"], end["bytes_down"]) == ("vm-o\u2026", echo_server.address, 5, 5)
    assert (end["close_code"], end["close_reason"]) == (4000, "bye")
    assert (refused["status"], refused["reason"]) == (404, "token_unknown")
    assert refused["path"] == "/websockify?token=gues\u2026"
    assert "SECRET" not in proxy.log


@pytest.mark.parametrize("args, message", [
    (["--no-such-option"], "No such option '--no-such-option'"),
    (["--log-format", "yaml"], "Invalid value for '--log-format'"),
    (["--log-file", "/nonexistent/dir/ws.log"], "--log-file: cannot open /nonexistent/dir/ws.log"),
])
def test_usage_and_start_up_errors_stay_one_plain_line(args, message):
    result = subprocess.run([sys.executable, "-m", "websockify", "--log-format", "json", *args, "127.0.0.1:0",
                             "127.0.0.1:1"], capture_output=True, text=True, timeout=timeout(30))
    assert_one_line_error(result, message)
    assert not result.stderr.startswith("{")
