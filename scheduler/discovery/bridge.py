"""Run a blocking discovery loop in a thread and hand its answers to the event loop.

The Kubernetes client is synchronous, and a watch blocks on its socket for minutes; on the
gateway's event loop that would stall every request. So the loop runs in a daemon thread
and each new set of URLs crosses over with ``call_soon_threadsafe``: the pool is only ever
touched on the event loop, as everywhere else in the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Publish = Callable[[frozenset[str]], None]
Loop = Callable[[Publish, threading.Event], object]
"""The blocking loop: publishes URL sets until the event is set."""


class ThreadedDiscovery:
    def __init__(
        self,
        loop_body: Loop,
        on_change: Callable[[frozenset[str]], None],
        *,
        interrupt: Callable[[], None] = lambda: None,
        name: str = "tidegate-discovery",
    ) -> None:
        """``interrupt`` unblocks the loop's current call (closes its socket) at stop."""
        self._loop_body = loop_body
        self._on_change = on_change
        self._interrupt = interrupt
        self._name = name
        self._stop = threading.Event()
        self._synced = asyncio.Event()
        self._thread: threading.Thread | None = None

    @property
    def synced(self) -> bool:
        """Whether a first answer has arrived."""
        return self._synced.is_set()

    async def start(self, first_sync_timeout_s: float) -> bool:
        """Start the thread; wait up to ``first_sync_timeout_s`` for the first answer."""
        loop = asyncio.get_running_loop()

        def publish(urls: frozenset[str]) -> None:
            try:
                loop.call_soon_threadsafe(self._deliver, urls)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                self._stop.set()

        self._thread = threading.Thread(
            target=self._run, args=(publish,), name=self._name, daemon=True
        )
        self._thread.start()
        try:
            await asyncio.wait_for(self._synced.wait(), first_sync_timeout_s)
        except TimeoutError:
            return False
        return True

    def _deliver(self, urls: frozenset[str]) -> None:
        if self._stop.is_set():
            return
        self._on_change(urls)
        self._synced.set()

    def _run(self, publish: Publish) -> None:
        try:
            self._loop_body(publish, self._stop)
        except Exception:
            log.exception("discovery stopped on an unexpected error")

    async def stop(self, join_timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._interrupt()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, join_timeout_s)
            if thread.is_alive():
                log.warning("discovery thread still running after %.0fs", join_timeout_s)
