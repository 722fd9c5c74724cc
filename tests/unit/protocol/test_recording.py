import os

import pytest

from websockify.protocol.recording import (
    CLIENT_TO_TARGET,
    FOOTER,
    HEADER,
    TARGET_TO_CLIENT,
    encode_frame,
    parse_recording,
)


def test_every_byte_value_survives():
    frames = [(CLIENT_TO_TARGET, 0, bytes(range(256))), (TARGET_TO_CLIENT, 7, b"'\\'\\\\"),
              (TARGET_TO_CLIENT, 9, os.urandom(3000)), (CLIENT_TO_TARGET, 10, b"")]
    text = HEADER + "".join(encode_frame(*f) for f in frames) + FOOTER
    assert [(f.direction, f.offset_ms, f.data) for f in parse_recording(text)] == frames


def test_upstream_line_shape():
    assert encode_frame(TARGET_TO_CLIENT, 12, b"RFB 003.008\n") == "'{12{RFB 003.008\\n',\n"


def test_cut_recording_parses_up_to_the_cut():
    text = HEADER + encode_frame(CLIENT_TO_TARGET, 1, b"a")
    assert [f.data for f in parse_recording(text)] == [b"a"]


@pytest.mark.parametrize("line", ["'x1xdata',", "'}a}data',", "garbage"])
def test_bad_lines(line):
    with pytest.raises(ValueError):
        list(parse_recording(HEADER + line + "\n"))


def test_unwritten_bytes_are_bounded_and_the_session_is_cut_short(tmp_path):
    from websockify.proxy.recorder import Recorder

    recorder = Recorder(str(tmp_path / "rec"), max_pending_bytes=100)
    recorder.session().close()  # starts the writer thread...
    recorder.close()  # ...and stops it: nothing drains the queue now, as with a stalled disk
    recording = recorder.session()
    recording.record(CLIENT_TO_TARGET, b"a" * 60)
    recording.record(CLIENT_TO_TARGET, b"b" * 60)  # would exceed the bound: dropped
    recording.record(CLIENT_TO_TARGET, b"c" * 10)  # the session stays cut short
    assert recorder.queued_bytes == 60
