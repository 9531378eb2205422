"""Locust load test for OpenAI-compatible chat servers (Tidegate, vLLM, ...).

    locust -f loadtests/locustfile.py --headless -H http://127.0.0.1:8000 \\
        --shape replay --speedup 2 --slo 'ttft_p95_ms=500,itl_p95_ms=50,error_rate=0.01' \\
        --csv .run/loadtest/run --html .run/loadtest/run.html

Users speak raw HTTP through Locust's ``FastHttpUser`` (geventhttpclient) and parse SSE
themselves: the load generator should spend its CPU on sending load, and the official
client's per-chunk model validation costs several times more per token (see
docs/loadtests.md). What each user sends comes from ``loadtests.traffic``; how many users
run, from ``loadtests.shapes``; the verdict, from ``loadtests.slo``; the run's lifecycle
(options, state, verdict, report) is ``loadtests.lifecycle``. This file holds the user and
the shape.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # loaded by path: make ``loadtests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
from locust import FastHttpUser, LoadTestShape, events, task
from locust.exception import StopUser

from loadtests import names
from loadtests.lifecycle import api_key, register, workload_of
from loadtests.sse import StreamResult, StreamTimer
from loadtests.traffic import Conversation, RequestPlan

CHAT_PATH = "/v1/chat/completions"


class ChatUser(FastHttpUser):
    """One person chatting: sends a turn, reads the answer, continues the conversation."""

    network_timeout = 600.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.workload = workload_of(self.environment)
        if self.workload.spec is None:
            raise StopUser()  # no model to ask for (logged); the run is quitting
        self.planner, self.sampler = self.workload.user_traffic()
        self.conversation: Conversation | None = None
        key = api_key(self.workload.config)
        self.auth = {"Authorization": f"Bearer {key}"} if key else {}

    def wait_time(self) -> float:
        return 0.0 if self.workload.replay else self.workload.config.think_time

    @task
    def chat(self) -> None:
        workload = self.workload
        job = workload.next_request(self.sampler)
        if job is None:
            time.sleep(1.0)  # nothing left to send: idle until the shape ends the run
            return
        sent = False
        try:
            if job.due_s is not None:
                self._wait_until(job.due_s)
            conversation, plan = self.planner.plan(self.conversation, job.row)
            workload.sending()
            sent = True
            reply = self._send(plan)
        finally:
            workload.finished(sent)
        if reply is None:
            self.conversation = None  # a failed turn ends the conversation
        else:
            conversation.add_reply(*reply)
            self.conversation = conversation

    def _wait_until(self, due_s: float) -> None:
        """Sleep until ``due_s`` after the shape started; note how late it is if past."""
        shape = self.environment.shape_class
        now = time.perf_counter() - shape.start_time if shape is not None else due_s
        if due_s > now:
            time.sleep(due_s - now)
        elif self.workload.schedule is not None:
            self.workload.schedule.record_lag(now - due_s)

    def _send(self, plan: RequestPlan) -> tuple[str, int] | None:
        """Send one request and record it; the reply's text and tokens, or None."""
        name = names.CHAT_STREAM if plan.stream else names.CHAT
        start = time.perf_counter()
        with self.client.post(
            CHAT_PATH,
            data=plan.body,  # type: ignore[arg-type]  # bytes are sent as they are
            headers={**plan.headers, **self.auth},
            name=name,
            stream=plan.stream,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(_http_error(response))
                return None
            if not plan.stream:
                return _record_body(response, start)
            try:
                result = _read_stream(response, start)
            except Exception as exc:  # the connection broke mid-stream
                response.request_meta["response_time"] = (time.perf_counter() - start) * 1000
                response.failure(f"stream broken: {type(exc).__name__}: {exc}"[:200])
                return None
            response.request_meta["response_time"] = result.e2e_s * 1000
            response.request_meta["response_length"] = result.output_tokens
            problem = _stream_problem(result)
            if problem:
                response.failure(problem)
                return None
            response.success()
        self._record_stream(result)
        return result.content, result.output_tokens

    def _record_stream(self, result: StreamResult) -> None:
        fire = self.environment.events.request.fire
        assert result.ttft_s is not None
        fire(
            request_type=names.TTFT,
            name=names.CHAT_STREAM,
            response_time=result.ttft_s * 1000,
            response_length=result.prompt_tokens or 0,
            exception=None,
            context={},
        )
        if self.workload.config.itl_events == "token":
            for gap in result.gaps_s:
                fire(
                    request_type=names.ITL,
                    name=names.CHAT_STREAM,
                    response_time=gap * 1000,
                    response_length=0,
                    exception=None,
                    context={},
                )
        elif result.mean_itl_s is not None:
            fire(
                request_type=names.ITL,
                name=names.CHAT_STREAM,
                response_time=result.mean_itl_s * 1000,
                response_length=result.output_tokens,
                exception=None,
                context={},
            )


def _read_stream(response: Any, start: float) -> StreamResult:
    timer = StreamTimer(start)
    raw = response._response  # geventhttpclient's response: readline returns each line as
    # it arrives (iter_content would wait for a whole buffer and blur the timings)
    while line := raw.readline(b"\n"):
        timer.feed(line, time.perf_counter())
    return timer.finish(time.perf_counter())


def _stream_problem(result: StreamResult) -> str | None:
    if result.error:
        return f"error event: {result.error}"[:200]
    if result.ttft_s is None:
        return "stream ended without a token"
    if not result.done:
        return "stream ended without [DONE]"
    return None


def _record_body(response: Any, start: float) -> tuple[str, int] | None:
    try:
        body = orjson.loads(response.content or b"")
        text = body["choices"][0]["message"].get("content") or ""
        tokens = int(body.get("usage", {}).get("completion_tokens", 0))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        response.failure(f"unexpected body: {type(exc).__name__}")
        return None
    response.request_meta["response_time"] = (time.perf_counter() - start) * 1000
    response.request_meta["response_length"] = tokens
    response.success()
    return text, tokens


def _http_error(response: Any) -> str:
    """``HTTP 429: <message>``; kept short and free of ids so Locust groups failures."""
    status = response.status_code
    if not status:
        error = getattr(response, "error", None)
        return f"connection error: {type(error).__name__}" if error else "connection error"
    message = ""
    try:
        body = orjson.loads(response.content or b"")
        message = str(body.get("error", {}).get("message", ""))
    except (ValueError, AttributeError):
        pass
    return f"HTTP {status}: {message}"[:120].rstrip(": ")


class ConfiguredShape(LoadTestShape):
    """The shape chosen with ``--shape``; reads ``-u``, ``-r`` and ``-t`` itself."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        if self.runner is None:
            return None
        workload = workload_of(self.runner.environment)
        run_time = time.perf_counter() - self.start_time
        return workload.tick(run_time, self.runner.user_count)


register(events)
