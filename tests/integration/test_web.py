"""--web: static files on the proxy port, and the traversal suite."""
from __future__ import annotations

import os
import ssl

import pytest
from certs import make_all
from helpers import get, running_proxy


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("web")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "app.js").write_text("console.log(1)")
    (root / "mod.mjs").write_text("export {}")
    (root / "style.css").write_text("body{}")
    (root / "pic.svg").write_text("<svg/>")
    (root / "data.json").write_text("{}")
    (root / "a file.txt").write_text("spaced")
    (root / ".secret").write_text("dotfile")
    (root / "sub" / "index.html").write_text("sub index")
    (base / "outside.txt").write_text("OUTSIDE")
    (base / "rootsibling").mkdir()
    (base / "rootsibling" / "x.txt").write_text("SIBLING")
    os.symlink(base / "outside.txt", root / "link-out.txt")
    os.symlink(base, root / "link-dir")
    os.symlink(root / "app.js", root / "link-in.js")
    return root


@pytest.fixture(scope="module", params=["http", "https"])
def web_proxy(request, site, tmp_path_factory):
    """The same site over http:// and over https:// (TLS sniffed on the same port)."""
    tls_args, context = [], None
    if request.param == "https":
        certs = make_all(tmp_path_factory.mktemp("webcerts"))
        tls_args = ["--cert", str(certs / "server.pem")]
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with running_proxy("--web", str(site), *tls_args, "127.0.0.1:0", "127.0.0.1:9") as proxy:
        proxy.client_tls = context
        yield proxy


@pytest.mark.parametrize("path,ctype,body", [
    ("/", "text/html; charset=utf-8", b"<h1>home</h1>"),
    ("/index.html", "text/html; charset=utf-8", b"<h1>home</h1>"),
    ("/app.js", "text/javascript; charset=utf-8", b"console.log(1)"),
    ("/mod.mjs", "text/javascript; charset=utf-8", b"export {}"),
    ("/style.css", "text/css; charset=utf-8", b"body{}"),
    ("/pic.svg", "image/svg+xml", b"<svg/>"),
    ("/data.json", "application/json", b"{}"),
    ("/sub/", "text/html; charset=utf-8", b"sub index"),
    ("/a%20file.txt", "text/plain; charset=utf-8", b"spaced"),
    ("/app.js?v=3", "text/javascript; charset=utf-8", b"console.log(1)"),
    ("/link-in.js", "text/javascript; charset=utf-8", b"console.log(1)"),
])
def test_files_are_served_with_their_type(web_proxy, path, ctype, body):
    status, headers, content = get(web_proxy, path)
    assert status == 200
    assert headers["content-type"] == ctype
    assert headers["content-length"] == str(len(body))
    assert headers["x-content-type-options"] == "nosniff"
    assert content == body


def test_head_has_headers_but_no_body(web_proxy):
    status, headers, content = get(web_proxy, "/app.js", "HEAD")
    assert status == 200 and headers["content-length"] == "14" and content == b""


def test_directory_without_slash_redirects(web_proxy):
    status, headers, _ = get(web_proxy, "/sub")
    assert status == 301 and headers["location"] == "/sub/"


@pytest.mark.parametrize("path", ["//sub", "///sub"])
def test_a_redirect_never_leaves_the_site(web_proxy, path):
    """`Location: //sub/` would send the browser to the host "sub" (the open redirect nova's
    send_head override guards upstream against)."""
    status, headers, _ = get(web_proxy, path)
    assert status == 301 and headers["location"] == "/sub/"


@pytest.mark.parametrize("path", ["/missing.html", "/empty/", "/sub/nothing"])
def test_missing_is_404(web_proxy, path):
    assert get(web_proxy, path)[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_405(web_proxy, method):
    status, headers, _ = get(web_proxy, "/index.html", method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", [
    "/../outside.txt",
    "/sub/../../outside.txt",
    "/%2e%2e/outside.txt",
    "/%2E%2E/outside.txt",
    "/.%2e/outside.txt",
    "/sub/%2e%2e%2f%2e%2e%2foutside.txt",
    "/..%2foutside.txt",
    "/..%5coutside.txt",
    "/../rootsibling/x.txt",
    "//etc/passwd",
    "/etc/passwd",
    "/%2fetc%2fpasswd",
    "/app.js%00.html",
    "/index.html%00",
    "/link-out.txt",
    "/link-dir/outside.txt",
    "/link-dir/rootsibling/x.txt",
    "/.secret",
    "/%2esecret",
])
def test_nothing_outside_the_root_is_served(web_proxy, path):
    status, _, body = get(web_proxy, path)
    assert status == 404, (path, status)  # the same answer as a missing file: nothing to probe
    assert b"OUTSIDE" not in body and b"SIBLING" not in body and b"root:" not in body


def test_absolute_form_and_garbage_targets_are_refused(web_proxy):
    assert get(web_proxy, "http://x/../outside.txt")[0] == 400
    assert get(web_proxy, "*")[0] == 400


def test_not_modified(web_proxy):
    status, headers, _ = get(web_proxy, "/app.js")
    etag, modified = headers["etag"], headers["last-modified"]
    assert get(web_proxy, "/app.js", extra=f"If-None-Match: {etag}\r\n")[0] == 304
    assert get(web_proxy, "/app.js", extra=f"If-Modified-Since: {modified}\r\n")[0] == 304
    assert get(web_proxy, "/app.js", extra='If-None-Match: "other"\r\n')[0] == 200
    assert get(web_proxy, "/app.js", extra="If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n")[0] == 200


def test_without_web_plain_http_is_told_to_upgrade(echo_proxy):
    status, headers, _ = get(echo_proxy, "/")
    assert status == 426 and headers["upgrade"] == "websocket"


def test_large_file_is_streamed_whole(web_proxy, site):
    blob = os.urandom(5 * 1024 * 1024 + 3)
    (site / "big.bin").write_bytes(blob)
    status, headers, body = get(web_proxy, "/big.bin")
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert body == blob
