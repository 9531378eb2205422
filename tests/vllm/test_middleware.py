"""The drain middleware that runs inside vLLM's server, driven as plain ASGI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from workers.vllm.middleware import (
    LIVE_PATH,
    STATUS_PATH,
    DrainMiddleware,
    Verdict,
    verdict_for,
)


@pytest.mark.parametrize(
    ("method", "path", "draining", "verdict"),
    [
        ("GET", "/health", False, Verdict.PASS),
        ("POST", "/v1/chat/completions", False, Verdict.PASS),
        ("GET", STATUS_PATH, False, Verdict.STATUS),
        ("GET", STATUS_PATH, True, Verdict.STATUS),
        ("GET", "/health", True, Verdict.NOT_READY),
        ("GET", "/ping", True, Verdict.NOT_READY),
        ("POST", "/v1/chat/completions", True, Verdict.REFUSE),
        ("POST", "/v1/completions", True, Verdict.REFUSE),
        ("POST", "/v1/embeddings", True, Verdict.REFUSE),
        ("POST", "/tokenize", True, Verdict.REFUSE),
        ("GET", LIVE_PATH, False, Verdict.LIVE),
        ("GET", LIVE_PATH, True, Verdict.LIVE),
        ("GET", "/metrics", True, Verdict.PASS),
        ("GET", "/v1/models", True, Verdict.PASS),
    ],
)
def test_verdict_for(method, path, draining, verdict):
    assert verdict_for(method, path, draining) is verdict


class HeldApp:
    """An inner app whose requests stay inside until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.calls: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls.append(scope["path"])
        self.entered.set()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, method: str, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": method, "path": path}, receive, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


@pytest.fixture
def flag(tmp_path):
    return tmp_path / "draining"


async def test_counts_work_in_flight_and_turns_new_work_away_once_draining(flag):
    inner = HeldApp()
    app = DrainMiddleware(inner, drain_file=str(flag))
    held = asyncio.create_task(call(app, "POST", "/v1/completions"))
    await inner.entered.wait()
    status, _, body = await call(app, "GET", STATUS_PATH)
    assert json.loads(body) == {"draining": False, "in_flight": 1}

    flag.touch()
    status, headers, body = await call(app, "POST", "/v1/chat/completions")
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert headers[b"x-tidegate-draining"] == b"1"
    error = json.loads(body)["error"]
    assert error["type"] == "ServiceUnavailableError" and error["code"] == 503
    status, _, _ = await call(app, "GET", "/health")
    assert status == 503
    assert json.loads((await call(app, "GET", STATUS_PATH))[2]) == {
        "draining": True,
        "in_flight": 1,
    }

    inner.release.set()
    assert (await held)[0] == 200
    assert app.in_flight == 0
    assert inner.calls == ["/v1/completions"]


async def test_reads_and_scrapes_are_not_counted_and_pass_while_draining(flag):
    inner = HeldApp()
    inner.release.set()
    app = DrainMiddleware(inner, drain_file=str(flag))
    flag.touch()
    assert (await call(app, "GET", "/metrics"))[0] == 200
    assert (await call(app, "GET", "/v1/models"))[0] == 200
    assert app.in_flight == 0


async def test_liveness_is_vllms_health_even_while_draining(flag):
    inner = HeldApp()
    inner.release.set()
    app = DrainMiddleware(inner, drain_file=str(flag))
    flag.touch()
    assert (await call(app, "GET", "/health"))[0] == 503
    assert (await call(app, "GET", LIVE_PATH))[0] == 200
    assert inner.calls == ["/health"]


async def test_in_flight_is_released_when_the_inner_app_fails(flag):
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("engine died")

    app = DrainMiddleware(failing, drain_file=str(flag))
    with pytest.raises(RuntimeError):
        await call(app, "POST", "/v1/completions")
    assert app.in_flight == 0


async def test_without_a_drain_file_it_never_drains(monkeypatch):
    monkeypatch.delenv("TIDEGATE_DRAIN_FILE", raising=False)
    inner = HeldApp()
    inner.release.set()
    app = DrainMiddleware(inner)
    assert not app.draining
    assert (await call(app, "GET", "/health"))[0] == 200


async def test_other_scopes_pass_through(flag):
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    flag.touch()
    await DrainMiddleware(inner, drain_file=str(flag))({"type": "lifespan"}, None, None)
    assert seen == ["lifespan"]
