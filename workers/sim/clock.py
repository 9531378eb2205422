"""The time source an engine runs on, passed in so tests and replays control it.

Engines never call ``time`` or ``asyncio.sleep`` for their timing decisions; they ask a
``Clock``. ``LoopClock`` is real time on the running event loop; a test or a virtual-time
replay supplies its own implementation.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and a way to wait until a given moment."""

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline``; return at once if it already is."""
        ...


class LoopClock:
    """Real time: the running event loop's monotonic clock and timers."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
