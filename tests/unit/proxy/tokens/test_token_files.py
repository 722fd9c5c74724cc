"""ReadOnlyTokenFile, TokenFile and TokenFileName on real files, edited while in use."""
import asyncio
import logging
import os
import threading
import time

import pytest

from websockify.errors import ConfigError
from websockify.proxy.tokens import files
from websockify.token_plugins import ReadOnlyTokenFile, TokenBackendUnavailable, TokenFile, TokenFileName

LOGGER = "websockify.proxy.tokens.files"

EVERY_FORM = """\
# whole-line comment
    # indented comment

tok1: host1:5901
tok2:host2:5902
tok3: [::1]:5903
tok4: ::1:5904
tok5: 10.0.0.1:5905   # trailing comment
    tok6: host6.example.org:5906
tok#7: host7:5907
a:b: host8:5908
sock: unix_socket:/run/vnc/one.sock
bad line without a colon
tok9: host9:notaport
tok10: host10:70000
tok11: [::1:5911
"""


def write(path, text):
    path.write_text(text)
    return str(path)


def warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


@pytest.mark.parametrize("plugin_class", [ReadOnlyTokenFile, TokenFile])
def test_every_line_form(tmp_path, caplog, plugin_class):
    caplog.set_level(logging.WARNING, LOGGER)
    source = write(tmp_path / "tokens", EVERY_FORM)
    plugin = plugin_class(source)
    assert plugin.lookup("tok1") == ["host1", "5901"]
    assert plugin.lookup("tok2") == ["host2", "5902"]  # no blank after the colon: upstream refused it
    assert plugin.lookup("tok3") == ["::1", "5903"]  # brackets removed: upstream kept them
    assert plugin.lookup("tok4") == ["::1", "5904"]
    assert plugin.lookup("tok5") == ["10.0.0.1", "5905"]  # upstream made the comment part of the port
    assert plugin.lookup("tok6") == ["host6.example.org", "5906"]
    assert plugin.lookup("tok#7") == ["host7", "5907"]
    assert plugin.lookup("a:b") == ["host8", "5908"]  # upstream's rule: the token ends at ': '
    assert plugin.lookup("sock") == ["unix_socket", "/run/vnc/one.sock"]
    for unknown in ("tok9", "tok10", "tok11", "bad line without a colon", "tok", "", "TOK1"):
        assert plugin.lookup(unknown) is None, unknown
    found = warnings(caplog)
    assert len(found) == 4, found
    for line in (13, 14, 15, 16):
        assert any(f"{source}:{line}:" in message for message in found), (line, found)
    assert not any("tok9" in message or "tok10" in message for message in found), "a token reached the log"


def test_a_directory_of_files(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "RACY_WINDOW_NS", 0)  # files just written count as current at once
    (tmp_path / "a.conf").write_text("one: h1:1\nshared: first:1\n")
    (tmp_path / "b.conf").write_text("two: h2:2\nshared: second:2\n")
    (tmp_path / ".hidden.swp").write_text("three: h3:3\n")
    (tmp_path / "b.conf~").write_text("four: h4:4\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.conf").write_text("five: h5:5\n")
    plugin = TokenFile(str(tmp_path))
    assert plugin.lookup("one") == ["h1", "1"]
    assert plugin.lookup("two") == ["h2", "2"]
    assert plugin.lookup("shared") == ["second", "2"]  # files in name order; the last one wins
    for skipped in ("three", "four", "five"):
        assert plugin.lookup(skipped) is None
    assert plugin.loop_safe
    for i in range(TokenFile.LOOP_SAFE_FILES):
        (tmp_path / f"more{i:02d}").write_text(f"more{i}: h:{i + 1}\n")
    assert plugin.lookup("more15") == ["h", "16"]
    assert not plugin.loop_safe, "a stat per file for 18 files: off the event loop"


def test_token_file_follows_edits(tmp_path, caplog):
    caplog.set_level(logging.WARNING, LOGGER)
    tokens = tmp_path / "tokens"
    plugin = TokenFile(write(tokens, "alpha: 127.0.0.1:5901\n"))
    assert plugin.lookup("alpha") == ["127.0.0.1", "5901"]

    with tokens.open("a") as f:  # a script appends a token: it works on the next lookup
        f.write("beta: 127.0.0.1:5902\n")
    assert plugin.lookup("beta") == ["127.0.0.1", "5902"]

    # The same length, rewritten at once: same size, and likely the same mtime tick.
    tokens.write_text("alpha: 127.0.0.1:5909\nbeta: 127.0.0.1:5902\n")
    assert plugin.lookup("alpha") == ["127.0.0.1", "5909"]

    replacement = tmp_path / "tokens.new"
    replacement.write_text("gamma: [2001:db8::1]:5903\n")
    os.replace(replacement, tokens)  # an atomic replace by rename
    assert plugin.lookup("gamma") == ["2001:db8::1", "5903"]
    assert plugin.lookup("alpha") is None

    tokens.write_text("gamma: [2001:db8::1]:5903\ndelta 127.0.0.1:5904\n")
    settled = time.time() - 10
    os.utime(tokens, (settled, settled))  # quiet for longer than SETTLE_NS: read whole, warned about
    for _ in range(50):
        assert plugin.lookup("delta") is None
        assert plugin.lookup("gamma") == ["2001:db8::1", "5903"]
    assert len([m for m in warnings(caplog) if f"{tokens}:2:" in m]) == 1, warnings(caplog)


def test_token_file_follows_a_directory(tmp_path):
    first = tmp_path / "first"
    first.write_text("one: h1:1\n")
    plugin = TokenFile(str(tmp_path))
    assert plugin.lookup("one") == ["h1", "1"]
    (tmp_path / "second").write_text("two: h2:2\n")
    assert plugin.lookup("two") == ["h2", "2"]
    first.write_text("one: h1:11\n")
    assert plugin.lookup("one") == ["h1", "11"]
    first.unlink()  # a removed file takes its tokens with it
    assert plugin.lookup("one") is None
    assert plugin.lookup("two") == ["h2", "2"]


def test_read_only_token_file_reads_on_reload_only(tmp_path):
    tokens = tmp_path / "tokens"
    plugin = ReadOnlyTokenFile(write(tokens, "alpha: h:1\n"))
    tokens.write_text("alpha: h:2\nbeta: h:3\n")
    assert plugin.lookup("alpha") == ["h", "1"]
    assert plugin.lookup("beta") is None
    plugin.reload()
    assert plugin.lookup("alpha") == ["h", "2"]
    assert plugin.lookup("beta") == ["h", "3"]


@pytest.mark.parametrize("plugin_class", [ReadOnlyTokenFile, TokenFile])
def test_a_source_that_does_not_exist_yet_is_waited_for(tmp_path, plugin_class):
    """A unit may start before its token file exists: 503 (TokenBackendUnavailable) until it does."""
    tokens = tmp_path / "later" / "tokens"
    plugin = plugin_class(str(tokens))
    assert not plugin.loop_safe  # the first read happens on a worker thread
    with pytest.raises(TokenBackendUnavailable, match="later"):
        plugin.lookup("alpha")
    tokens.parent.mkdir()
    write(tokens, "alpha: h:1\n")
    assert plugin.lookup("alpha") == ["h", "1"]
    with pytest.raises(ConfigError, match="is not a file or a directory"):
        plugin_class("/dev/null")


def test_a_missing_source(tmp_path):
    with pytest.raises(ConfigError, match="needs --token-source"):
        ReadOnlyTokenFile(None)
    tokens = tmp_path / "tokens"
    read_only, live = ReadOnlyTokenFile(write(tokens, "alpha: h:1\n")), TokenFile(str(tokens))
    tokens.unlink()
    assert read_only.lookup("alpha") == ["h", "1"]
    with pytest.raises(TokenBackendUnavailable, match="tokens"):
        live.lookup("alpha")
    with pytest.raises(ConfigError, match="keeping the tokens"):
        read_only.reload()
    assert read_only.lookup("alpha") == ["h", "1"]
    tokens.write_text("alpha: h:2\n")
    assert live.lookup("alpha") == ["h", "2"]


def test_file_plugins_are_loop_safe_and_cheap(tmp_path):
    """10 000 tokens: a lookup is a dict lookup plus one stat(), not a file read."""
    tokens = tmp_path / "tokens"
    tokens.write_text("".join(f"token-{i:05d}: 10.{i // 256 % 256}.{i % 256}.1:{5900 + i % 100}\n"
                              for i in range(10_000)))
    started = time.perf_counter()
    plugin = TokenFile(str(tokens))
    load_s = time.perf_counter() - started
    assert plugin.token_count == 10_000
    assert TokenFile.loop_safe and ReadOnlyTokenFile.loop_safe and not TokenFileName.loop_safe
    old = time.time() - 10
    os.utime(tokens, (old, old))  # past the window in which a fresh file is read again
    plugin.lookup("token-00000")
    rounds = 20_000
    started = time.perf_counter()
    for i in range(rounds):
        plugin.lookup(f"token-{i % 10_000:05d}")
    per_lookup_us = (time.perf_counter() - started) / rounds * 1e6
    print(f"TokenFile, 10 000 tokens: load {load_s * 1e3:.1f} ms, lookup {per_lookup_us:.2f} us")
    assert plugin.lookup("token-09999") == ["10.39.15.1", "5999"]
    assert per_lookup_us < 200, per_lookup_us  # measured ~2-3 us; generous for a busy machine


# -- TokenFileName --------------------------------------------------------------------

def test_token_file_name(tmp_path):
    (tmp_path / "alpha").write_text("127.0.0.1:5901\n")
    (tmp_path / "v6").write_text("[::1]:5902")
    (tmp_path / ".dot").write_text("127.0.0.1:5903")
    plugin = TokenFileName(str(tmp_path))
    assert plugin.lookup("alpha") == ["127.0.0.1", "5901"]
    assert plugin.lookup("v6") == ["::1", "5902"]  # upstream split on every colon
    assert plugin.lookup(".dot") == ["127.0.0.1", "5903"]
    assert plugin.lookup("beta") is None
    (tmp_path / "beta").write_text("127.0.0.1:5904")
    assert plugin.lookup("beta") == ["127.0.0.1", "5904"]


def test_token_file_name_stays_in_its_directory(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tmp_path / "secret").write_text("10.0.0.1:22")
    (tmp_path / "tokens2").mkdir()
    (tmp_path / "tokens2" / "x").write_text("10.0.0.2:22")
    (tokens / "sub").mkdir()
    (tokens / "sub" / "deep").write_text("10.0.0.3:22")
    (tokens / "inside").write_text("127.0.0.1:5901")
    (tokens / "out").symlink_to(tmp_path / "secret")
    (tokens / "alias").symlink_to(tokens / "inside")
    (tokens / "loop").symlink_to(tokens / "loop")
    os.mkfifo(tokens / "fifo")
    plugin = TokenFileName(str(tokens))
    for token in ("../secret", "..", ".", "", "/etc/hostname", str(tmp_path / "secret"), "../tokens2/x",
                  "sub/deep", "sub", "out", "loop", "fifo", "inside\0", "x" * 5000):
        assert plugin.lookup(token) is None, token
    assert plugin.lookup("alias") == ["127.0.0.1", "5901"]  # a link that stays inside is followed


def test_token_file_name_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs a directory"):
        TokenFileName(str(write(tmp_path / "a-file", "")))
    later = TokenFileName(str(tmp_path / "later"))  # not there yet: waited for
    assert later.lookup("alpha") is None and "does not exist" in later.not_ready
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "alpha").write_text("127.0.0.1:5901")
    assert later.lookup("alpha") == ["127.0.0.1", "5901"] and later.not_ready is None
    (tmp_path / "broken").write_text("no port here")
    (tmp_path / "huge").write_text("127.0.0.1:5901" + " " * 10_000)
    plugin = TokenFileName(str(tmp_path))
    with pytest.raises(ValueError, match="broken"):
        plugin.lookup("broken")
    with pytest.raises(ValueError, match="larger than"):
        plugin.lookup("huge")


# -- TokenFile rewritten while in use (issue 17, item 6) ----------------------------------

def _table(count, port=5900):
    return "".join(f"tok{i}: 10.0.0.1:{port + i % 100}\n" for i in range(count))


def _age(path):
    settled = time.time() - 1000
    os.utime(path, (settled, settled))


@pytest.fixture
def long_settle(monkeypatch):
    """A settle time no slow machine reaches by accident: only _age() settles a file."""
    monkeypatch.setattr(files, "SETTLE_NS", 100 * 1_000_000_000)


def test_truncate_and_rewrite_never_loses_a_token_in_both_files(tmp_path, long_settle):
    tokens = tmp_path / "tokens"
    tokens.write_text(_table(1000) + "gone: 10.0.0.9:1\n")
    _age(tokens)
    plugin = TokenFile(str(tokens))
    assert plugin.lookup("gone") == ["10.0.0.9", "1"]
    new = _table(1000) + "added: 10.0.0.8:2\n"
    with open(tokens, "w") as writer:  # truncated: the file is empty for a while
        writer.flush()
        assert plugin.lookup("tok0") == ["10.0.0.1", "5900"]
        assert plugin.lookup("tok999") == ["10.0.0.1", "5999"]
        half = len(new) // 2 + 3  # a cut in the middle of a line
        writer.write(new[:half])
        writer.flush()
        for i in range(0, 1000, 37):
            assert plugin.lookup(f"tok{i}") is not None, i
        assert plugin.lookup("tok999") == ["10.0.0.1", "5999"]
        writer.write(new[half:])
    assert plugin.lookup("added") == ["10.0.0.8", "2"]  # a new token works at once
    assert all(plugin.lookup(f"tok{i}") is not None for i in range(1000))
    _age(tokens)  # quiet for longer than the settle time: read whole, the removed token goes
    assert plugin.lookup("gone") is None
    assert plugin.lookup("tok5") == ["10.0.0.1", "5905"]


def test_a_line_still_being_written_is_not_read(tmp_path, long_settle):
    tokens = tmp_path / "tokens"
    tokens.write_text("tok: 10.0.0.1:5901\n")
    _age(tokens)
    plugin = TokenFile(str(tokens))
    with open(tokens, "w") as writer:
        writer.write("tok: 10.0.0.1:59")  # the port is not all there yet
        writer.flush()
        assert plugin.lookup("tok") == ["10.0.0.1", "5901"]
        writer.write("33\n")
    assert plugin.lookup("tok") == ["10.0.0.1", "5933"]


def test_a_file_emptied_on_purpose_is_empty_once_settled(tmp_path, long_settle):
    tokens = tmp_path / "tokens"
    tokens.write_text("tok: 10.0.0.1:5901\n")
    _age(tokens)
    plugin = TokenFile(str(tokens))
    tokens.write_text("")
    assert plugin.lookup("tok") == ["10.0.0.1", "5901"]
    _age(tokens)
    assert plugin.lookup("tok") is None


def test_a_rewrite_is_parsed_off_the_event_loop(tmp_path, monkeypatch):
    """Through the router, as a server runs it: a changed file is read and parsed on a worker thread."""
    from websockify.proxy.routing import TokenRouter

    tokens = tmp_path / "tokens"
    tokens.write_text(_table(20_000))
    _age(tokens)
    plugin = TokenFile(str(tokens))
    parsed_on = []
    real_parse = files.parse_token_file

    def recording(*args, **kwargs):
        parsed_on.append(threading.current_thread() is threading.main_thread())  # asyncio.run's loop
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(files, "parse_token_file", recording)

    async def run():
        router = TokenRouter(plugin, connect_timeout_s=5, tls=None)
        try:
            assert router.immediate  # unchanged and settled: answered on the loop
            assert router.resolve_now("tok1").description
            replacement = tmp_path / "tokens.new"
            replacement.write_text(_table(20_000, port=6000))
            os.replace(replacement, tokens)
            assert not router.immediate  # changed: the next lookup goes to a thread
            connector = await router.resolve("tok1", 10)
            assert "6001" in connector.description
            tokens.write_text(_table(20_000, port=7000))  # in place, unsettled: still off the loop
            assert not router.immediate
            connector = await router.resolve("tok2", 10)
            assert "7002" in connector.description
        finally:
            await router.close()

    asyncio.run(run())
    assert parsed_on and not any(parsed_on), parsed_on


def test_a_lookup_made_on_the_loop_without_asking_loop_safe_rereads_on_a_thread(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("tok: h:1\n")
    _age(tokens)
    plugin = TokenFile(str(tokens))

    async def run():
        assert plugin.lookup("tok") == ["h", "1"]
        replacement = tmp_path / "tokens.new"
        replacement.write_text("tok: h:2\n")
        os.replace(replacement, tokens)
        # The table in place answers (or the new one, if the thread was that quick); never None.
        assert plugin.lookup("tok") in (["h", "1"], ["h", "2"])
        deadline = time.monotonic() + 10
        while plugin.lookup("tok") != ["h", "2"]:
            assert time.monotonic() < deadline, "the re-read on a thread never finished"
            await asyncio.sleep(0.01)

    asyncio.run(run())


def test_upstreams_token_file_cases(tmp_path):
    """Upstream's ReadOnlyTokenFile tests (test_empty, test_simple, test_tabs) with a real file
    instead of a patched open(), and a real port: the file is read at the first lookup after it
    appears, and a lookup returns upstream's `[host, "port"]`."""
    config = tmp_path / "configfile"
    plugin = ReadOnlyTokenFile(str(config))  # not there yet
    write(config, "")
    assert plugin.lookup("testhost") is None
    for text in ("testhost: remote_host:5901", "testhost:\tremote_host:5901"):
        result = ReadOnlyTokenFile(write(config, text)).lookup("testhost")
        assert result == ["remote_host", "5901"] and isinstance(result, list), text
