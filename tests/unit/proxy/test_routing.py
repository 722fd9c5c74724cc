"""Token routing: each kind of plugin (loop-safe, async, blocking), and what a client
gets for each answer: a connector, 404, 500 or 503, never a hang."""
from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from fakes import run

from websockify.addresses import TcpAddress, UnixAddress
from websockify.errors import HttpError
from websockify.proxy.routing import RoutedTargets, TokenRouter
from websockify.proxy.target import AddressConnector
from websockify.proxy.tokens.base import TokenBackendUnavailable

TABLE: dict[str, Any] = {
    "vnc1": ("10.0.0.1", 5901),
    "strport": ["10.0.0.2", "5902"],
    "sock": ("unix_socket", "/run/vnc.sock"),
    "bad": ("10.0.0.3",),
}


class LoopSafe:
    loop_safe = True

    def __init__(self) -> None:
        self.calls = 0
        self.reloaded = 0
        self.closed = 0

    def lookup(self, token: str) -> Any:
        self.calls += 1
        if token == "down":
            raise TokenBackendUnavailable("the store is down")
        if token == "boom":
            raise RuntimeError("plugin bug")
        return TABLE.get(token)

    def reload(self) -> None:
        self.reloaded += 1

    def close(self) -> None:
        self.closed += 1


class Async:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.closed = 0

    async def lookup(self, token: str) -> Any:
        if token == "slow":
            await self.release.wait()
        return TABLE.get(token)

    async def aclose(self) -> None:
        self.closed += 1


class Blocking:
    """Upstream's kind: a lookup that may block, run on a thread."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: set[str] = set()

    def lookup(self, token: str) -> Any:
        self.threads.add(threading.current_thread().name)
        if token == "slow":
            self.release.wait(10)
        return TABLE.get(token)


def router(plugin: Any, tls: Any | None = None) -> TokenRouter:
    return TokenRouter(plugin, connect_timeout_s=5, tls=tls)


def status_of(call: Any) -> int:
    with pytest.raises(HttpError) as caught:
        call()
    return caught.value.status


# -- a loop-safe plugin: answered at once ----------------------------------------------

def test_a_loop_safe_plugin_is_answered_now_with_one_connector_per_target():
    plugin = LoopSafe()
    routes = router(plugin)
    assert routes.immediate
    first = routes.resolve_now("vnc1")
    assert isinstance(first, AddressConnector) and first.address == TcpAddress("10.0.0.1", 5901)
    assert routes.resolve_now("vnc1") is first  # cached: a connector per target, not per client
    assert routes.resolve_now("strport").address == TcpAddress("10.0.0.2", 5902)
    assert routes.resolve_now("sock").address == UnixAddress("/run/vnc.sock")


@pytest.mark.parametrize("token,status", [("nobody", 404), ("down", 503), ("boom", 500), ("bad", 500)])
def test_what_a_client_gets_for_each_answer(token, status):
    routes = router(LoopSafe())
    assert status_of(lambda: routes.resolve_now(token)) == status
    assert status_of(lambda: run(lambda: routes.resolve(token, timeout_s=5))) == status


def test_a_tls_target_context_goes_to_tcp_targets_only():
    tls = object()
    routes = router(LoopSafe(), tls=tls)
    assert routes.resolve_now("vnc1").description.endswith("(TLS)")
    assert not routes.resolve_now("sock").description.endswith("(TLS)")


def test_reload_and_close_reach_the_plugin():
    plugin = LoopSafe()
    routes = router(plugin)
    routes.reload()
    run(routes.close)
    assert plugin.reloaded == 1 and plugin.closed == 1


# -- an async plugin: awaited on the loop, within the deadline ----------------------------

def test_an_async_plugin_is_awaited_and_times_out_with_503():
    plugin = Async()
    routes = router(plugin)
    assert not routes.immediate

    async def scenario() -> None:
        connector = await routes.resolve("vnc1", timeout_s=5)
        assert connector.address == TcpAddress("10.0.0.1", 5901)
        with pytest.raises(HttpError) as caught:
            await routes.resolve("slow", timeout_s=0.01)
        assert caught.value.status == 503 and "timed out" in str(caught.value)
        await routes.close()
        assert plugin.closed == 1

    run(scenario)


# -- a blocking plugin: on a lookup thread, never on the loop ----------------------------

def test_a_blocking_plugin_runs_on_a_lookup_thread_and_times_out_with_503():
    plugin = Blocking()
    routes = router(plugin)
    assert not routes.immediate

    async def scenario() -> None:
        assert (await routes.resolve("vnc1", timeout_s=5)).address == TcpAddress("10.0.0.1", 5901)
        with pytest.raises(HttpError) as caught:
            await routes.resolve("slow", timeout_s=0.01)
        assert caught.value.status == 503
        plugin.release.set()
        await routes.close()

    run(scenario)
    assert plugin.threads and threading.current_thread().name not in plugin.threads
    assert all(name.startswith("token-") for name in plugin.threads)


def test_without_a_token_there_is_no_target():
    async def scenario() -> None:
        targets = RoutedTargets("TokenFile")
        assert "TokenFile" in targets.description
        with pytest.raises(Exception, match="no target chosen"):
            await targets.connect(lambda: None)

    run(scenario)


# -- whatever a plugin raises, the process goes on ---------------------------------------

EXITS = {"exit": SystemExit(1), "interrupt": KeyboardInterrupt(), "cancelled": asyncio.CancelledError()}


class Exits:
    """Raises what is not an Exception, in each way a plugin may run."""

    def __init__(self, kind: str) -> None:
        self.loop_safe = kind == "loop_safe"
        self.kind = kind

    def lookup(self, token: str) -> Any:
        raise EXITS[token]


class AsyncExits:
    async def lookup(self, token: str) -> Any:
        await asyncio.sleep(0)
        raise EXITS[token]


@pytest.mark.parametrize("kind", ["loop_safe", "blocking", "async"])
@pytest.mark.parametrize("token", sorted(EXITS))
def test_a_plugin_raising_system_exit_or_keyboard_interrupt_is_a_failed_lookup(kind, token):
    routes = router(AsyncExits() if kind == "async" else Exits(kind))

    async def scenario() -> str:
        with pytest.raises(HttpError) as caught:
            await routes.resolve(token, timeout_s=5)
        assert caught.value.status == 500
        if routes.immediate:
            assert status_of(lambda: routes.resolve_now(token)) == 500
        await routes.close()
        return "still running"

    assert run(scenario) == "still running"


def test_the_tasks_own_cancellation_still_cancels_it():
    plugin = Async()
    routes = router(plugin)

    async def scenario() -> None:
        lookup = asyncio.ensure_future(routes.resolve("slow", timeout_s=60))
        await asyncio.sleep(0)
        lookup.cancel()
        with pytest.raises(asyncio.CancelledError):
            await lookup

    run(scenario)


def test_past_its_budget_a_blocking_plugin_answers_503_at_once():
    from websockify.proxy.routing import LOOKUP_BUDGET
    plugin = Blocking()
    routes = router(plugin)

    async def scenario() -> None:
        hung = [asyncio.ensure_future(routes.resolve("slow", timeout_s=60)) for _ in range(LOOKUP_BUDGET)]
        async with asyncio.timeout(10):
            while len(plugin.threads) < min(LOOKUP_BUDGET, 16):
                await asyncio.sleep(0.01)
        for call in hung:  # the clients gave up; the calls still hold their threads
            call.cancel()
        await asyncio.gather(*hung, return_exceptions=True)
        with pytest.raises(HttpError) as caught:
            await routes.resolve("vnc1", timeout_s=60)
        assert caught.value.status == 503 and "busy" in (caught.value.log_message or "")
        plugin.release.set()  # the backend answers again: capacity returns
        async with asyncio.timeout(10):
            while True:
                try:
                    connector = await routes.resolve("vnc1", timeout_s=5)
                    break
                except HttpError:
                    await asyncio.sleep(0.01)
        assert connector.address == TcpAddress("10.0.0.1", 5901)
        await routes.close()

    run(scenario)
