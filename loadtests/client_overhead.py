"""Load-generator CPU per streamed request: raw HTTP (what the locustfile does) against the
official ``openai`` client, both under gevent as inside Locust, one after the other.

    python -m loadtests.client_overhead --base-url http://127.0.0.1:8001 --model NAME

Point it at a simulated worker with no delays (``tidegate sim-worker --port 8001 --model
NAME``), ideally pinned to another core, so the numbers are the client's own cost.
"""

from __future__ import annotations

from gevent import monkey  # type: ignore[import-untyped]

monkey.patch_all()

import argparse  # noqa: E402  (after monkey-patching, as Locust does)
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import orjson  # noqa: E402
from geventhttpclient import HTTPClient  # noqa: E402
from geventhttpclient.url import URL  # noqa: E402
from openai import OpenAI  # noqa: E402

from loadtests.prompts import filler_text  # noqa: E402
from loadtests.sse import StreamTimer  # noqa: E402


def raw_http(base_url: str, model: str, n: int, tokens: int) -> None:
    body = orjson.dumps(_payload(model, tokens))
    client = HTTPClient.from_url(URL(base_url), concurrency=1, network_timeout=60)
    for _ in range(n):
        start = time.perf_counter()
        response = client.post(
            "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"}
        )
        timer = StreamTimer(start)
        while line := response.readline(b"\n"):
            timer.feed(line, time.perf_counter())
        if timer.finish(time.perf_counter()).output_tokens != tokens:
            raise RuntimeError("short stream")


def official_client(base_url: str, model: str, n: int, tokens: int) -> None:
    client = OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0)
    for _ in range(n):
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": filler_text(100, seed=0)}],
            max_tokens=tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        usage = None
        for chunk in stream:
            usage = chunk.usage or usage
        if usage is None or usage.completion_tokens != tokens:
            raise RuntimeError("short stream")


def _payload(model: str, tokens: int) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": filler_text(100, seed=0)}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def measure(run: Callable[[str, str, int, int], None], args: argparse.Namespace) -> float:
    """CPU milliseconds of this process per streamed request."""
    run(args.base_url, args.model, 5, args.tokens)  # warm up: imports, connections
    cpu = time.process_time()
    run(args.base_url, args.model, args.requests, args.tokens)
    return (time.process_time() - cpu) * 1000 / float(args.requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args(argv)
    for name, run in (("raw HTTP + SSE parsing", raw_http), ("openai client", official_client)):
        per_request = measure(run, args)
        print(f"{name}: {per_request:.2f} ms CPU per {args.tokens}-token stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
