"""Recorded EndpointSlice list and watch answers, and a scripted API to replay them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).resolve().parent / "recorded"

Json = dict[str, Any]


def recorded_list() -> Json:
    loaded: Json = json.loads((RECORDED / "list.json").read_text())
    return loaded


def recorded_events(name: str) -> list[Json]:
    lines = (RECORDED / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def endpoint(ip: str, *, ready: bool | None = True, terminating: bool | None = False) -> Json:
    conditions: Json = {}
    if ready is not None:
        conditions["ready"] = ready
    if terminating is not None:
        conditions["terminating"] = terminating
    return {"addresses": [ip], "conditions": conditions}


def slice_obj(
    name: str,
    endpoints: Sequence[Json],
    *,
    rv: str = "1",
    ports: Sequence[Json] = ({"name": "http", "port": 8000, "protocol": "TCP"},),
    address_type: str = "IPv4",
) -> Json:
    return {
        "metadata": {"name": name, "namespace": "llm", "resourceVersion": rv},
        "addressType": address_type,
        "endpoints": list(endpoints),
        "ports": list(ports),
    }


class ScriptedApi:
    """A SliceApi that answers from a script: each list() and watch() takes the next entry.

    A watch entry is a list of events, or an exception (raised at once), or a list whose
    last element is an exception (raised after the events before it)."""

    def __init__(self, lists: Iterable[Any], watches: Iterable[Any]) -> None:
        self.lists = list(lists)
        self.watches = list(watches)
        self.list_calls = 0
        self.watched_from: list[str] = []
        self.exhausted = False

    def list(self) -> tuple[Sequence[Json], str]:
        self.list_calls += 1
        answer = self.lists.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer["items"], answer["metadata"]["resourceVersion"]

    def watch(self, resource_version: str) -> Iterator[Json]:
        self.watched_from.append(resource_version)
        if not self.watches:
            self.exhausted = True
            return
        answer = self.watches.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        for item in answer:
            if isinstance(item, BaseException):
                raise item
            yield item


class ScriptStop:
    """A stop flag that never sleeps: records each wait; set once the watch script ran out."""

    def __init__(self, api: ScriptedApi) -> None:
        self.api = api
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return self.api.exhausted

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()
