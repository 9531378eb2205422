"""The thread that runs blocking discovery hands its answers to the event loop."""

from __future__ import annotations

import asyncio
import threading

from scheduler.discovery.bridge import Publish, ThreadedDiscovery


async def test_answers_arrive_on_the_event_loop_thread_and_start_waits_for_the_first():
    seen: list[tuple[frozenset[str], int]] = []

    def body(publish: Publish, stop: threading.Event) -> None:
        publish(frozenset({"http://a:1"}))
        publish(frozenset({"http://a:1", "http://b:2"}))
        stop.wait()

    discovery = ThreadedDiscovery(body, lambda urls: seen.append((urls, threading.get_ident())))
    assert await discovery.start(first_sync_timeout_s=5)
    await asyncio.sleep(0.05)
    await discovery.stop()
    assert [urls for urls, _ in seen] == [{"http://a:1"}, {"http://a:1", "http://b:2"}]
    assert {thread for _, thread in seen} == {threading.get_ident()}


async def test_start_gives_up_waiting_but_a_late_answer_still_lands():
    release = threading.Event()
    seen: list[frozenset[str]] = []

    def body(publish: Publish, stop: threading.Event) -> None:
        release.wait(5)
        publish(frozenset({"http://late:1"}))
        stop.wait()

    discovery = ThreadedDiscovery(body, seen.append)
    assert not await discovery.start(first_sync_timeout_s=0.05)
    release.set()
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    await discovery.stop()
    assert seen == [{"http://late:1"}]
    assert discovery.synced


async def test_stop_interrupts_the_blocking_call_and_joins_the_thread():
    blocked = threading.Event()
    unblock = threading.Event()

    def body(publish: Publish, stop: threading.Event) -> None:
        publish(frozenset())
        blocked.set()
        unblock.wait(10)  # a socket read, until interrupt() closes it

    discovery = ThreadedDiscovery(body, lambda urls: None, interrupt=unblock.set)
    await discovery.start(first_sync_timeout_s=5)
    assert blocked.wait(5)
    await discovery.stop(join_timeout_s=5)
    assert unblock.is_set()
    assert not any(t.name == "tidegate-discovery" for t in threading.enumerate())


async def test_an_unexpected_error_in_the_thread_is_logged_not_raised(caplog):
    def body(publish: Publish, stop: threading.Event) -> None:
        raise RuntimeError("boom")

    discovery = ThreadedDiscovery(body, lambda urls: None)
    assert not await discovery.start(first_sync_timeout_s=0.2)
    await discovery.stop()
    assert "discovery stopped on an unexpected error" in caplog.text
