from websockify.protocol.logsafe import printable


def test_control_characters_are_escaped():
    assert printable("/a\x1b[31mred\r\nINFO fake") == "/a\\x1b[31mred\\x0d\\x0aINFO fake"
    assert printable("\x9b2J\x7f") == "\\x9b2J\\x7f"
    assert printable("back\\slash") == "back\\\\slash"
    assert printable("caf\u00e9 \u2028") == "caf\u00e9 \\u2028"


def test_long_values_are_cut():
    assert printable("x" * 500, limit=10) == "x" * 10 + "..."
    assert printable(None) == "None"
