"""Headless Chromium driven over the DevTools protocol, with the websockets client.

Enough to load a page, run JavaScript in it and take a screenshot; no extra
dependency. Chromium comes from Debian (.ci/run installs it).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from helpers import timeout, ws_connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--window-size=1024,768"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self) -> None:
        path = chromium_path()
        if path is None:
            raise AssertionError("chromium is not installed (.ci/run installs it)")
        self._profile = tempfile.mkdtemp(prefix="chromium-test-")
        self._proc = subprocess.Popen([path, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self._profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout(30)
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.close()
                raise AssertionError("chromium did not start")
            time.sleep(0.05)
        self.port = int(open(port_file).read().split()[0])

    def page_ws_url(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=timeout(10)) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        return pages[0]["webSocketDebuggerUrl"]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout(10))
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """One DevTools session on the browser's first page."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict:
        message_id = next(self._ids)
        await self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self._ws.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply["result"]

    async def goto(self, url: str) -> None:
        await self.call("Page.enable")
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float, what: str) -> Any:
        deadline = time.monotonic() + timeout(seconds)
        value = None
        while time.monotonic() < deadline:
            try:
                value = await self.evaluate(expression)
            except AssertionError:
                value = None
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last value {value!r}")

    async def screenshot(self, path: str) -> None:
        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))


@contextlib.asynccontextmanager
async def visit(browser: Browser, url: str, screenshot: str):
    """Open `url` in the browser's page; save a screenshot when the block ends.

    WEBSOCKIFY_TEST_SCREENSHOTS=DIR keeps a copy of each screenshot there.
    """
    async with ws_connect(browser.page_ws_url(), max_size=None) as ws:
        page = Page(ws)
        await page.goto(url)
        yield page
        await page.screenshot(screenshot)
        keep = os.environ.get("WEBSOCKIFY_TEST_SCREENSHOTS")
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(screenshot, keep)
