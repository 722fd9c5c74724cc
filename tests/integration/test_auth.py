"""Auth plugins: upstream's contract and built-ins, without upstream's header-forging hole."""
from __future__ import annotations

import asyncio
import base64
import os
import ssl
import time

import pytest
from certs import make_all
from helpers import ROOT, assert_one_line_error, get, running_proxy, timeout, wait_for, ws_connect
from websockets.exceptions import InvalidStatus


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = make_all(tmp_path_factory.mktemp("authcerts"))
    (directory / "both-cas.pem").write_text((directory / "ca.pem").read_text() + (directory / "otherca.pem").read_text())
    return directory


def status_of(url: str, **kwargs) -> int:
    """101 when the WebSocket opens and echoes, else the HTTP status of the refusal."""
    async def scenario():
        async with asyncio.timeout(timeout(20)):
            try:
                async with ws_connect(url, **kwargs) as ws:
                    await ws.send(b"in")
                    assert await ws.recv() == b"in"
                    return 101
            except InvalidStatus as exc:
                return exc.response.status_code
    return asyncio.run(scenario())


def basic(credentials: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_basic_auth_for_websockets_and_web_auth_for_files(echo_server, tmp_path):
    (tmp_path / "index.html").write_text("private page")
    with running_proxy("--auth-plugin", "BasicHTTPAuth", "--auth-source", "jane:s3cret", "--web", str(tmp_path),
                       "--web-auth", "127.0.0.1:0", echo_server.address) as proxy:
        assert status_of(proxy.url) == 401
        assert status_of(proxy.url, additional_headers=basic("jane:wrong")) == 401
        assert status_of(proxy.url, additional_headers={"Authorization": "Bearer x"}) == 403
        assert status_of(proxy.url, additional_headers=basic("jane:s3cret")) == 101
        status, headers, _ = get(proxy, "/")
        assert status == 401 and headers["www-authenticate"] == 'Basic realm="Websockify"'
        status, _, body = get(proxy, "/", extra="Authorization: Basic " + base64.b64encode(b"jane:s3cret").decode() + "\r\n")
        assert status == 200 and body == b"private page"
        proxy.wait_log("HTTP 401")


def test_without_web_auth_files_stay_public(echo_server, tmp_path):
    (tmp_path / "index.html").write_text("public page")
    with running_proxy("--auth-plugin", "BasicHTTPAuth", "--auth-source", "jane:s3cret", "--web", str(tmp_path),
                       "127.0.0.1:0", echo_server.address) as proxy:
        assert get(proxy, "/")[0] == 200
        assert status_of(proxy.url) == 401


def test_expect_origin(echo_server):
    with running_proxy("--auth-plugin", "ExpectOrigin", "--auth-source", "https://good.example https://also.example",
                       "127.0.0.1:0", echo_server.address) as proxy:
        assert status_of(proxy.url, origin="https://also.example") == 101
        assert status_of(proxy.url, origin="https://evil.example") == 403
        assert status_of(proxy.url) == 403


def test_client_cert_cn_cannot_be_forged_by_a_header(echo_server, certs):
    with running_proxy("--auth-plugin", "ClientCertCNAuth", "--auth-source", "alice", "--cert",
                       str(certs / "server.pem"), "--verify-client", "--cafile", str(certs / "both-cas.pem"),
                       "127.0.0.1:0", echo_server.address) as proxy:
        def tls(cert: str) -> ssl.SSLContext:
            context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
            context.load_cert_chain(str(certs / f"{cert}.pem"))
            return context
        wss = f"wss://localhost:{proxy.port}/"
        assert status_of(wss, ssl=tls("alice")) == 101
        forged = {"ssl_client_s_dn_cn": "alice"}
        assert status_of(wss, ssl=tls("mallory"), additional_headers=forged) == 403
        assert status_of(wss, ssl=tls("mallory"), additional_headers={"SSL_CLIENT_S_DN_CN": "alice"}) == 403
        assert status_of(proxy.url, additional_headers=forged) == 403  # plain ws:// with the header


def test_custom_plugin_by_dotted_name(echo_server):
    env = {"PYTHONPATH": os.path.join(ROOT, "tests", "servers")}
    with running_proxy("--auth-plugin", "custom_auth.TeapotUnlessToken", "--auth-source", "t0k",
                       "127.0.0.1:0", echo_server.address, env=env) as proxy:
        assert status_of(proxy.url) == 418
        assert status_of(proxy.url, additional_headers={"X-Token": "t0k"}) == 101


@pytest.mark.parametrize("args,message", [
    (["--auth-plugin", "NoSuchPlugin"], "--auth-plugin: cannot load NoSuchPlugin"),
    (["--auth-plugin", "nosuchmodule.Plugin"], "--auth-plugin: cannot load nosuchmodule.Plugin"),
    (["--auth-plugin", "BasicHTTPAuth"], "USER:PASSWORD"),
])
def test_bad_plugins_are_exit_2(args, message):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "websockify", *args, "127.0.0.1:0", "127.0.0.1:1"],
                            capture_output=True, text=True, timeout=timeout(30))
    assert_one_line_error(result, message)


PLUGINS = {"PYTHONPATH": os.path.join(ROOT, "tests", "plugins")}


@pytest.mark.parametrize("kind", ["exit", "interrupt"])
def test_an_auth_plugin_raising_system_exit_or_keyboard_interrupt_is_a_500(echo_server, kind):
    with running_proxy("--auth-plugin", "exiting_plugins.ExitsAuth", "--auth-source", kind,
                       "127.0.0.1:0", echo_server.address, env=PLUGINS) as proxy:
        assert status_of(proxy.url, additional_headers={"X-Exit": "1"}) == 500
        assert status_of(proxy.url) == 101  # the server still serves another client
        assert proxy.proc.poll() is None
        proxy.wait_log("the auth plugin failed")


def test_hung_auth_calls_past_the_budget_are_refused_at_once_and_capacity_returns(echo_server, tmp_path):
    from websockify.proxy.plugins import AUTH_BUDGET
    with running_proxy("--auth-plugin", "exiting_plugins.HangsUntilFile", "--auth-source", str(tmp_path),
                       "--handshake-timeout", "2", "127.0.0.1:0", echo_server.address, env=PLUGINS) as proxy:
        started = tmp_path / "started"

        async def hung_clients():  # each waits out its deadline (503); its call keeps running
            return await asyncio.gather(*(asyncio.to_thread(status_of, proxy.url) for _ in range(AUTH_BUDGET)))

        assert asyncio.run(hung_clients()) == [503] * AUTH_BUDGET
        assert started.read_text() == "x" * AUTH_BUDGET
        began = time.monotonic()
        assert status_of(proxy.url) == 503  # over the budget: refused at once, the plugin is not called
        assert time.monotonic() - began < 1  # not its 2 s deadline
        assert started.read_text() == "x" * AUTH_BUDGET
        proxy.wait_log("auth plugin busy")
        (tmp_path / "release").touch()  # the backend answers again: the hung calls end
        wait_for(lambda: status_of(proxy.url) == 101, 10, "authentication served again")


# -- Upstream's plugin contracts, as its users wrote against them (issue 18) ---------------


def test_a_basic_auth_subclass_with_its_own_init_and_validate_creds(echo_server, tmp_path):
    """An htpasswd-style subclass: its validate_creds decides, and its own __init__ (no
    super() call) costs nothing (before: the override was ignored and every client got 500)."""
    users = tmp_path / "users"
    users.write_text("jane:s3cret\nbob:hunter2\n")
    with running_proxy("--auth-plugin", "upstream_subclasses.HtpasswdAuth", "--auth-source", str(users),
                       "127.0.0.1:0", echo_server.address, env=PLUGINS) as proxy:
        assert status_of(proxy.url, additional_headers=basic("bob:hunter2")) == 101
        assert status_of(proxy.url, additional_headers=basic("jane:s3cret")) == 101
        assert status_of(proxy.url, additional_headers=basic("bob:s3cret")) == 401
        assert status_of(proxy.url) == 401
        assert "Traceback" not in proxy.log


def token_file(tmp_path, target: str) -> str:
    (tmp_path / "tokens").write_text(f"desk: {target}\n")
    return str(tmp_path / "tokens")


def test_an_auth_plugin_gets_the_target_its_token_chose(echo_server, tmp_path):
    """As upstream: authenticate(headers, target_host, target_port) with the token's target (before:
    None, None, and a plugin computing the VNC display from the port failed: 500); the headers
    are an HTTPMessage (a missing one is None, names keep their case)."""
    display = echo_server.port - 5900
    with running_proxy("--auth-plugin", "upstream_subclasses.DisplayAuth", "--token-plugin", "TokenFile",
                       "--token-source", token_file(tmp_path, echo_server.address), "127.0.0.1:0",
                       env=PLUGINS) as proxy:
        url = proxy.url + "?token=desk"
        assert status_of(url, additional_headers={"X-Display": str(display)}) == 101
        assert status_of(url, additional_headers={"X-Display": str(display + 1)}) == 403
        assert status_of(url) == 400  # "X-Display" not among the names: refused by the plugin, not a 500


def test_only_plugins_that_read_the_target_cost_a_token_lookup(echo_server, tmp_path):
    """BasicHTTPAuth declares needs_target = False: it runs first, and an unauthenticated
    client costs no lookup. A plugin that says nothing (upstream's) gets the target, so the
    token is looked up first, as upstream did."""
    (tmp_path / "target").write_text(echo_server.address)
    lookups = tmp_path / "lookups"
    tokens = ("--token-plugin", "upstream_subclasses.CountingTokens", "--token-source", str(tmp_path))
    with running_proxy("--auth-plugin", "BasicHTTPAuth", "--auth-source", "jane:s3cret", *tokens, "127.0.0.1:0",
                       env=PLUGINS) as proxy:
        url = proxy.url + "?token=desk"
        assert status_of(url) == 401
        assert status_of(url, additional_headers=basic("jane:wrong")) == 401
        assert not lookups.exists()
        assert status_of(url, additional_headers=basic("jane:s3cret")) == 101
        assert lookups.read_text() == "desk\n"
    display = echo_server.port - 5900
    with running_proxy("--auth-plugin", "upstream_subclasses.DisplayAuth", *tokens, "127.0.0.1:0",
                       env=PLUGINS) as proxy:
        assert status_of(proxy.url + "?token=desk", additional_headers={"X-Display": str(display + 1)}) == 403
        assert lookups.read_text() == "desk\ndesk\n"
        assert status_of(proxy.url + "?token=desk", additional_headers={"X-Display": str(display)}) == 101
