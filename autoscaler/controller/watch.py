"""Pod and node watches feeding the controller: the thread side of the spot reaction.

Each blocking watch (:class:`autoscaler.controller.kube.KubeWatch`) runs in a daemon
thread (a watch may block for minutes; shutdown must not wait for it) and hands events to
the event loop, which folds them into the controller's pure state; a new loss wakes the
reconcile loop at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from autoscaler.controller.api import Json
from autoscaler.controller.loop import Controller

log = logging.getLogger(__name__)
Stream = Callable[[], Iterable[tuple[str, Json]]]
"""A blocking watch: (event type, object) pairs until it times out or fails."""


async def watch_disruptions(
    streams: Mapping[Literal["pod", "node"], Stream],
    controller: Controller,
    wake: asyncio.Event,
    stop: asyncio.Event,
    retry_s: float = 5.0,
) -> None:
    """Feed pod and node watch events to the controller; wake the loop on a loss.

    Each blocking watch runs in a daemon thread (a watch may block for minutes; shutdown
    must not wait for it) and hands events to the event loop, which folds them in."""
    loop = asyncio.get_running_loop()

    def deliver(kind: Literal["pod", "node"], event: str, obj: Json) -> None:
        if controller.observe(kind, event, obj):
            wake.set()

    def pump(kind: Literal["pod", "node"], stream: Stream) -> None:
        while not stop.is_set():
            try:
                for event, obj in stream():
                    loop.call_soon_threadsafe(deliver, kind, event, obj)
            except RuntimeError:  # the event loop closed: shutting down
                return
            except Exception as exc:  # a watch that failed is started again
                log.warning("watching %ss failed: %r; again in %gs", kind, exc, retry_s)
                time.sleep(retry_s)

    for kind, stream in streams.items():
        threading.Thread(
            target=pump, args=(kind, stream), name=f"watch-{kind}", daemon=True
        ).start()
    await stop.wait()
