"""Auth plugins: upstream's contract and built-ins, without upstream's header-forging hole."""
from __future__ import annotations

import asyncio
import base64
import os
import ssl

import pytest
from certs import make_all
from helpers import ROOT, assert_one_line_error, get, running_proxy, timeout, ws_connect
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
