"""Properties of the session recording format: every byte and timestamp survives."""
from hypothesis import given
from hypothesis import strategies as st

from websockify.protocol.recording import (
    CLIENT_TO_TARGET,
    FOOTER,
    HEADER,
    TARGET_TO_CLIENT,
    RecordedFrame,
    about_line,
    encode_frame,
    parse_recording,
)

frames = st.lists(st.builds(RecordedFrame, st.sampled_from([CLIENT_TO_TARGET, TARGET_TO_CLIENT]),
                            st.integers(0, 10**12), st.binary(max_size=200)), max_size=8)


@given(frames, st.booleans(), st.text(), st.none() | st.text(), st.text())
def test_any_frames_round_trip(recorded, finished, client, proxy, target):
    text = about_line(client, proxy, target) + HEADER + "".join(encode_frame(f.direction, f.offset_ms, f.data) for f in recorded)
    text += FOOTER if finished else ""  # a recording cut short has no footer
    assert list(parse_recording(text)) == recorded


@given(st.sampled_from([CLIENT_TO_TARGET, TARGET_TO_CLIENT]), st.integers(0, 10**12), st.binary(max_size=200))
def test_a_frame_is_one_printable_ascii_line(direction, offset_ms, data):
    line = encode_frame(direction, offset_ms, data)
    assert line.endswith("',\n") and line.count("\n") == 1
    assert all(" " <= c <= "~" for c in line[:-1])
    assert len(line.splitlines()) == 1  # no other line break either (\x1c, \x85, \u2028...)


@given(st.text(max_size=100))
def test_any_text_parses_or_raises_value_error(text):
    try:
        for frame in parse_recording(text):
            assert frame.direction in (CLIENT_TO_TARGET, TARGET_TO_CLIENT) and frame.offset_ms >= 0
    except ValueError:
        pass


@given(st.text(), st.none() | st.text(), st.text())
def test_the_first_line_is_one_printable_ascii_comment(client, proxy, target):
    """Whatever a token plugin names (a Unix path in any script, line separators): one
    JavaScript comment line of printable ASCII, as the file is written."""
    line = about_line(client, proxy, target)
    assert line.startswith("// websockify session: client ") and line.endswith("\n")
    assert all(" " <= c <= "~" for c in line[:-1])
    assert len(line.splitlines()) == 1
