"""Real pages in a real browser (headless Chromium) through websockify."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys

import pytest
from browser import Browser, visit
from helpers import ROOT, reserved_port, running_proxy, timeout


@pytest.fixture(scope="module")
def browser():
    instance = Browser()
    yield instance
    instance.close()


def test_demo_chat_page_talks_to_the_wrapped_tcp_server(browser, tmp_path):
    # A wrapped program is told a fixed port; the reservation keeps anyone else off it.
    with reserved_port() as port, running_proxy(
            "--web", os.path.join(ROOT, "demo", "web"), str(port), "--",
            sys.executable, os.path.join(ROOT, "demo", "chat_server.py"), "--port", str(port)) as proxy:
        proxy.wait_log("service ready")

        async def scenario():
            async with asyncio.timeout(timeout(60)):
                async with visit(browser, f"http://127.0.0.1:{port}/", str(tmp_path / "demo.png")) as page:
                    status = await page.wait_for(
                        "document.getElementById('status')?.textContent.startsWith('connected') && "
                        "document.getElementById('status').textContent", 20, "the page to connect")
                    assert status == "connected (subprotocol: binary)"
                    await page.evaluate("document.getElementById('line').value = 'hello from the browser';"
                                        "document.getElementById('form').requestSubmit(); true")
                    log = await page.wait_for(
                        "document.getElementById('log').textContent.includes('user1: hello from the browser') && "
                        "document.getElementById('log').textContent", 20, "the chat line to come back")
                    return log
        log = asyncio.run(scenario())
        assert "* welcome, you are user1" in log
        assert (tmp_path / "demo.png").stat().st_size > 1000


def test_novnc_connects_to_a_wrapped_xvnc(browser, tmp_path):
    novnc = "/usr/share/novnc"
    xvnc = shutil.which("Xvnc")
    if not os.path.exists(os.path.join(novnc, "vnc.html")) or xvnc is None:
        pytest.fail("noVNC and Xvnc are needed (.ci/run installs novnc and tigervnc-standalone-server)")
    display = next(n for n in range(60, 99) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    with reserved_port() as port, running_proxy(
            "--web", novnc, str(port), "--", xvnc, f":{display}", "-rfbport", str(port),
            "-SecurityTypes", "None", "-geometry", "640x480") as proxy:
        proxy.wait_log("service ready", 30)

        async def scenario():
            url = f"http://127.0.0.1:{port}/vnc.html?autoconnect=true&path=websockify"
            async with asyncio.timeout(timeout(90)):
                async with visit(browser, url, str(tmp_path / "novnc.png")) as page:
                    size = await page.wait_for(
                        "(() => { const c = document.querySelector('#noVNC_container canvas');"
                        " return c && c.width > 0 ? [c.width, c.height] : null; })()", 60, "the VNC canvas")
                    assert await page.evaluate("document.documentElement.classList.contains('noVNC_connected')")
                    return size
        assert asyncio.run(scenario()) == [640, 480]
        assert re.search(r"GET /vnc.html\S* -> 200", proxy.log)


def test_novnc_reaches_its_desktop_by_token(browser, tmp_path):
    """noVNC's own way to pass a token: vnc.html?path=websockify?token=... (URL-encoded)."""
    novnc = "/usr/share/novnc"
    xvnc = shutil.which("Xvnc")
    if not os.path.exists(os.path.join(novnc, "vnc.html")) or xvnc is None:
        pytest.fail("noVNC and Xvnc are needed (.ci/run installs novnc and tigervnc-standalone-server)")
    display = next(n for n in range(60, 99) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    with reserved_port() as vnc_port:
        server = subprocess.Popen([xvnc, f":{display}", "-rfbport", str(vnc_port), "-SecurityTypes", "None",
                                   "-geometry", "800x600"], stderr=subprocess.DEVNULL)
    try:
        (tmp_path / "tokens").write_text(f"desk-42: 127.0.0.1:{vnc_port}\nother: 127.0.0.1:1\n")
        with running_proxy("--web", novnc, "--token-plugin", "TokenFile", "--token-source",
                           str(tmp_path / "tokens"), "127.0.0.1:0") as proxy:
            async def scenario():
                url = (f"http://127.0.0.1:{proxy.port}/vnc.html?autoconnect=true"
                       "&path=websockify%3Ftoken%3Ddesk-42")
                async with asyncio.timeout(timeout(90)):
                    async with visit(browser, url, str(tmp_path / "novnc-token.png")) as page:
                        return await page.wait_for(
                            "(() => { const c = document.querySelector('#noVNC_container canvas');"
                            " return c && c.width > 0 ? [c.width, c.height] : null; })()", 60, "the VNC canvas")
            assert asyncio.run(scenario()) == [800, 600]  # the geometry of this desktop
            proxy.wait_log(r"GET /vnc\.html\?autoconnect=true&path=websockify%3Ftoken%3Ddesk… -> 200")
            assert "desk-42" not in proxy.log  # tokens are shortened in every log line
    finally:
        server.terminate()
        server.wait(timeout(20))
