"""Keep a :class:`SliceView` current with list-then-watch, relisting when the watch expires.

This is the protocol every Kubernetes informer follows, written out small: list once, then
watch from the list's ``resourceVersion``; when the server ends a watch (its timeout), watch
again from the last version seen; on 410 Gone, list again. Any other failure waits
(exponential backoff with jitter) and tries again, keeping the workers known so far: the
prober still notices a worker that is down, so a blind spot in discovery never empties the
pool.

It blocks (the Kubernetes client does), so it runs in a thread; the API, the stop flag and
the randomness are passed in, and tests drive it with recorded events and no sleeping.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from scheduler.discovery.slices import Json, SliceView, WatchExpired

log = logging.getLogger(__name__)

Publish = Callable[[frozenset[str]], None]


class SliceApi(Protocol):
    def list(self) -> tuple[Sequence[Json], str]:
        """Every watched slice, and the list's resourceVersion."""
        ...

    def watch(self, resource_version: str) -> Iterable[Json]:
        """Raw watch events after ``resource_version``, until the server ends the watch.

        Raises :class:`WatchExpired` when the server answers 410 Gone."""
        ...


class StopFlag(Protocol):
    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after ``failures`` failures in a row: half fixed, half jitter."""
        ceiling = min(self.max_s, self.initial_s * 2.0 ** max(failures - 1, 0))
        return ceiling / 2 + rng.random() * ceiling / 2


def follow(
    api: SliceApi,
    view: SliceView,
    publish: Publish,
    stop: StopFlag,
    *,
    backoff: Backoff = Backoff(),
    rng: random.Random | None = None,
) -> SliceView:
    """Publish the ready URLs after the first list and whenever they change, until ``stop``.

    Returns the last view (for tests and for a clean log line at shutdown)."""
    rng = rng if rng is not None else random.Random()
    published: frozenset[str] | None = None
    failures = 0

    def emit(current: SliceView) -> None:
        nonlocal published
        if current.urls != published:
            published = current.urls
            publish(published)

    while not stop.is_set():
        try:
            if view.resource_version is None:
                items, version = api.list()
                view = view.relisted(items, version)
                log.info("discovery listed %d slices, %d ready workers", len(items), len(view.urls))
                emit(view)
            events = 0
            for event in api.watch(view.resource_version or ""):
                if stop.is_set():
                    return view
                view = view.apply(event)
                emit(view)
                events += 1
            failures = 0
            # A quiet watch ends at its timeout; one that ends at once must not spin.
            if events == 0 and stop.wait(backoff.initial_s):
                return view
        except WatchExpired as exc:
            log.info("discovery watch expired (%s); listing again", exc)
            view = view.expired()
        except Exception as exc:  # the API, the network, a malformed object: try again
            failures += 1
            delay = backoff.delay(failures, rng)
            log.warning(
                "discovery failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay
            )
            if stop.wait(delay):
                return view
    return view
