"""Real pages in a real browser (headless Chromium) through websockify."""
from __future__ import annotations

import asyncio
import os
import shutil
import sys

import pytest

from browser import Browser, Page, open_page
from helpers import ROOT, free_port, running_proxy, timeout


@pytest.fixture(scope="module")
def browser():
    instance = Browser()
    yield instance
    instance.close()


def test_demo_chat_page_talks_to_the_wrapped_tcp_server(browser, tmp_path):
    port = free_port()
    with running_proxy("--web", os.path.join(ROOT, "demo", "web"), str(port), "--",
                       sys.executable, os.path.join(ROOT, "demo", "chat_server.py"), "--port", str(port)) as proxy:
        proxy.wait_log("service ready")

        async def scenario():
            async with asyncio.timeout(timeout(60)):
                async with await open_page(browser) as ws:
                    page = Page(ws)
                    await page.goto(f"http://127.0.0.1:{port}/")
                    status = await page.wait_for(
                        "document.getElementById('status')?.textContent.startsWith('connected') && "
                        "document.getElementById('status').textContent", 20, "the page to connect")
                    assert status == "connected (subprotocol: binary)"
                    await page.evaluate("document.getElementById('line').value = 'hello from the browser';"
                                        "document.getElementById('form').requestSubmit(); true")
                    log = await page.wait_for(
                        "document.getElementById('log').textContent.includes('user1: hello from the browser') && "
                        "document.getElementById('log').textContent", 20, "the chat line to come back")
                    await page.screenshot(str(tmp_path / "demo.png"))
                    if os.environ.get("WEBSOCKIFY_TEST_SCREENSHOTS"):
                        shutil.copy(tmp_path / "demo.png", os.environ["WEBSOCKIFY_TEST_SCREENSHOTS"])
                    return log
        log = asyncio.run(scenario())
        assert "* welcome, you are user1" in log
        assert (tmp_path / "demo.png").stat().st_size > 1000
