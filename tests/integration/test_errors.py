"""Bad input gets an OpenAI-style error and the right status; nothing reaches a worker."""

from __future__ import annotations

import httpx
import pytest

from tests.harness import MODEL, run_gateway, sim_workers
from tidegate.localproc import free_port


@pytest.fixture(scope="module")
def gateway():
    with sim_workers(1) as workers, run_gateway(workers, max_body_bytes=4096) as gw:
        yield gw


def assert_openai_error(response: httpx.Response, status: int, code_or_type: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert code_or_type in (error["code"], error["type"])
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{bad json", 400, "invalid_request_error"),
        (b"", 400, "invalid_request_error"),
        (b'"just a string"', 400, "invalid_request_error"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "invalid_request_error"),
        (b'{"model": "nope", "messages": []}', 404, "model_not_found"),
        (b'{"model": "' + MODEL.encode() + b'", "stream": "yes"}', 400, "invalid_request_error"),
    ],
)
def test_bad_requests(gateway, content, status, code):
    before = gateway.metric("tidegate_upstream_attempts_total")
    response = httpx.post(
        gateway.base_url + "/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert_openai_error(response, status, code)
    assert gateway.metric("tidegate_upstream_attempts_total") == before


def test_missing_model_names_the_param(gateway):
    response = httpx.post(gateway.base_url + "/completions", json={"prompt": "x"})
    assert assert_openai_error(response, 400, "invalid_request_error")["param"] == "model"


def test_body_over_limit_is_413_by_header_and_by_size(gateway):
    big = b'{"model": "' + MODEL.encode() + b'", "prompt": "' + b"x" * 5000 + b'"}'
    response = httpx.post(gateway.base_url + "/completions", content=big)
    assert_openai_error(response, 413, "request_too_large")

    def chunked():  # no content-length: the limit is enforced while reading
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    response = httpx.post(gateway.base_url + "/completions", content=chunked())
    assert_openai_error(response, 413, "request_too_large")


def test_worker_errors_keep_the_workers_status_and_body(gateway):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "n": 2}
    direct = httpx.post(
        gateway.app.services.pool.snapshot.endpoints[0].url  # type: ignore[attr-defined]
        + "/v1/chat/completions",
        json=body,
    )
    proxied = httpx.post(gateway.base_url + "/chat/completions", json=body)
    assert direct.status_code >= 400
    assert proxied.status_code == direct.status_code
    assert proxied.json() == direct.json()


def test_wrong_method_and_unknown_route(gateway):
    assert_openai_error(
        httpx.get(gateway.base_url + "/chat/completions"), 405, "method_not_allowed"
    )
    assert_openai_error(httpx.get(gateway.url + "/v1/nothing"), 404, "not_found")


def test_no_healthy_worker_is_503_with_retry_after():
    dead = f"http://127.0.0.1:{free_port()}"
    with run_gateway([dead], models=[MODEL], retries={"retry_after_s": 3}) as gw:
        response = httpx.post(
            gw.base_url + "/chat/completions", json={"model": MODEL, "messages": []}
        )
        assert_openai_error(response, 503, "no_healthy_worker")
        assert response.headers["retry-after"] == "3"
        ready = httpx.get(gw.url + "/readyz")
        assert ready.status_code == 503
        assert httpx.get(gw.base_url + "/models").json()["data"] == []
