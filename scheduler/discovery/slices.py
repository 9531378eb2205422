"""From EndpointSlice list and watch events to the set of worker URLs the gateway may use.

Pure: no client, no clock, no I/O. Objects are the API's own JSON (camelCase mappings),
as a list or a watch returns them, so recorded events replay exactly as they came.

An endpoint counts while its ``ready`` condition is true or unset (the API defines unset as
ready) and it is not ``terminating``. A pod that starts terminating leaves the set on the
event that says so, even behind a Service that publishes not-ready addresses, so no new
request is sent to a worker that is draining.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

Json = Mapping[str, Any]

GONE = 410


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (HTTP 410 Gone): list again from scratch."""


class WatchFailed(Exception):
    """The server ended the watch with an error other than 410."""


@dataclass(frozen=True, slots=True)
class PortChoice:
    """Which port of a slice is the worker's HTTP port."""

    name: str | None = "http"
    """The port's name in the slice; ``None`` takes a slice's only port."""
    scheme: str = "http"


def slice_key(obj: Json) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name') or metadata.get('uid', '')}"


def _port(obj: Json, choice: PortChoice) -> int | None:
    ports = [p for p in obj.get("ports") or () if isinstance(p.get("port"), int)]
    if choice.name is None:
        return ports[0]["port"] if len(ports) == 1 else None
    for port in ports:
        if port.get("name") == choice.name:
            return int(port["port"])
    return None


def _counts(endpoint: Json) -> bool:
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False and conditions.get("terminating") is not True


def ready_urls(obj: Json, choice: PortChoice) -> frozenset[str]:
    """The URLs of one slice's ready, non-terminating endpoints (the first address of each,
    which the API says is as good as any other)."""
    port = _port(obj, choice)
    if port is None:
        return frozenset()
    ipv6 = obj.get("addressType") == "IPv6"
    urls = set()
    for endpoint in obj.get("endpoints") or ():
        addresses = endpoint.get("addresses") or ()
        if addresses and _counts(endpoint):
            host = f"[{addresses[0]}]" if ipv6 else addresses[0]
            urls.add(f"{choice.scheme}://{host}:{port}")
    return frozenset(urls)


def _resource_version(obj: Json) -> str | None:
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


@dataclass(frozen=True, slots=True)
class SliceView:
    """What the gateway knows of the watched slices, and where the watch should resume.

    ``resource_version`` is ``None`` until the first list, and again after the watch
    expired; the slices known until then are kept, so routing goes on while relisting.
    """

    port: PortChoice = PortChoice()
    by_slice: Mapping[str, frozenset[str]] = field(default_factory=dict)
    resource_version: str | None = None

    @property
    def urls(self) -> frozenset[str]:
        return frozenset().union(*self.by_slice.values())

    def relisted(self, items: Iterable[Json], resource_version: str) -> SliceView:
        """The state a fresh list shows; slices deleted while unwatched are gone from it."""
        by_slice = {slice_key(obj): ready_urls(obj, self.port) for obj in items}
        return replace(self, by_slice=by_slice, resource_version=resource_version)

    def expired(self) -> SliceView:
        return replace(self, resource_version=None)

    def apply(self, event: Json) -> SliceView:
        """The state after one watch event; raises on an ``ERROR`` event."""
        kind = event.get("type")
        obj: Json = event.get("object") or {}
        if kind == "ERROR":
            message = obj.get("message") or obj.get("reason") or "unknown error"
            if obj.get("code") == GONE:
                raise WatchExpired(message)
            raise WatchFailed(f"watch error {obj.get('code')}: {message}")
        version = _resource_version(obj) or self.resource_version
        if kind == "BOOKMARK":
            return replace(self, resource_version=version)
        by_slice = dict(self.by_slice)
        if kind in ("ADDED", "MODIFIED"):
            by_slice[slice_key(obj)] = ready_urls(obj, self.port)
        elif kind == "DELETED":
            by_slice.pop(slice_key(obj), None)
        else:
            raise WatchFailed(f"unknown watch event type {kind!r}")
        return replace(self, by_slice=by_slice, resource_version=version)
