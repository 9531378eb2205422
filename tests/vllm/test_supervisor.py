"""The worker wrapper's signal and drain rules, around a fake vLLM (real processes, real
signals, loopback HTTP), so they are checked in seconds without vLLM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import wait_until
from tidegate.localproc import LocalWorker, free_port, wait_healthy

RUNNER = Path(__file__).with_name("run_supervised.py")


class Wrapped:
    def __init__(self, grace_s: float, stop_timeout_s: float, *fake_args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(RUNNER),
                str(self.port),
                str(grace_s),
                str(stop_timeout_s),
                *fake_args,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if "started vLLM as pid" in line:
                self.started.set()

    def wait_started(self) -> None:
        """Until the wrapper has its signal handlers and has started the server."""
        assert self.started.wait(30), "".join(self.lines)

    def wait_ready(self) -> None:
        wait_healthy([LocalWorker(self.url, self.process)], timeout_s=30)

    def in_flight(self) -> int:
        count: int = httpx.get(self.url + "/tidegate/drain").json()["in_flight"]
        return count

    def finish(self, timeout_s: float = 30) -> tuple[int, str]:
        code = self.process.wait(timeout_s)
        self._reader.join(timeout_s)
        return code, "".join(self.lines)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture
def wrapped_factory() -> Iterator[list[Wrapped]]:
    started: list[Wrapped] = []
    yield started
    for wrapped in started:
        wrapped.close()


def start(factory: list[Wrapped], grace_s: float, stop_timeout_s: float, *args: str) -> Wrapped:
    wrapped = Wrapped(grace_s, stop_timeout_s, *args)
    factory.append(wrapped)
    return wrapped


def slow_request(url: str, seconds: float, results: list[httpx.Response | Exception]) -> None:
    try:
        results.append(httpx.post(url + "/v1/completions", json={"seconds": seconds}, timeout=60))
    except httpx.HTTPError as exc:
        results.append(exc)


def test_sigterm_turns_away_new_work_and_lets_in_flight_finish(wrapped_factory):
    wrapped = start(wrapped_factory, 20, 10)
    wrapped.wait_ready()
    results: list[httpx.Response | Exception] = []
    request = threading.Thread(target=slow_request, args=(wrapped.url, 1.5, results))
    request.start()
    wait_until(lambda: wrapped.in_flight() == 1, timeout_s=10)

    signalled = time.monotonic()
    wrapped.process.send_signal(signal.SIGTERM)
    wait_until(lambda: httpx.get(wrapped.url + "/health").status_code == 503, timeout_s=2)
    refused = httpx.post(wrapped.url + "/v1/completions", json={"seconds": 0})
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "ServiceUnavailableError"
    assert refused.headers["retry-after"] == "1"
    assert httpx.get(wrapped.url + "/metrics").status_code == 200  # scrapes still work
    assert httpx.get(wrapped.url + "/tidegate/live").status_code == 200  # not restarted

    code, err = wrapped.finish()
    took = time.monotonic() - signalled
    request.join()
    assert isinstance(results[0], httpx.Response) and results[0].status_code == 200
    assert code == 0, err
    assert "stop_idle" in err
    assert 1.0 < took < 10


def test_grace_period_bounds_the_wait(wrapped_factory):
    wrapped = start(wrapped_factory, 1.0, 10)
    wrapped.wait_ready()
    results: list[httpx.Response | Exception] = []
    request = threading.Thread(target=slow_request, args=(wrapped.url, 30, results), daemon=True)
    request.start()
    wait_until(lambda: wrapped.in_flight() == 1, timeout_s=10)
    signalled = time.monotonic()
    wrapped.process.send_signal(signal.SIGTERM)
    code, err = wrapped.finish()
    assert code == 0, err
    assert "stop_grace_over" in err
    assert 1.0 <= time.monotonic() - signalled < 8


def test_sigterm_before_the_server_listens_stops_at_once(wrapped_factory, tmp_path):
    started = tmp_path / "started"
    wrapped = start(
        wrapped_factory, 20, 10, "--listen-after-s", "30", "--started-file", str(started)
    )
    wait_until(started.exists, timeout_s=30)
    signalled = time.monotonic()
    wrapped.process.send_signal(signal.SIGTERM)
    code, err = wrapped.finish()
    assert code == -signal.SIGTERM, err
    assert "stop_gone" in err
    assert time.monotonic() - signalled < 8


def test_a_second_sigterm_stops_without_waiting(wrapped_factory):
    wrapped = start(wrapped_factory, 60, 10)
    wrapped.wait_ready()
    results: list[httpx.Response | Exception] = []
    threading.Thread(target=slow_request, args=(wrapped.url, 30, results), daemon=True).start()
    wait_until(lambda: wrapped.in_flight() == 1, timeout_s=10)
    wrapped.process.send_signal(signal.SIGTERM)
    wait_until(lambda: httpx.get(wrapped.url + "/health").status_code == 503, timeout_s=2)
    signalled = time.monotonic()
    wrapped.process.send_signal(signal.SIGTERM)
    code, err = wrapped.finish()
    assert code == 0, err
    assert "stopping vLLM now" in err
    assert time.monotonic() - signalled < 8


def test_other_signals_are_passed_on(wrapped_factory, tmp_path):
    marker = tmp_path / "usr1"
    wrapped = start(wrapped_factory, 5, 10, "--usr1-file", str(marker))
    wrapped.wait_ready()
    wrapped.process.send_signal(signal.SIGUSR1)
    wait_until(marker.exists, timeout_s=5)
    assert wrapped.process.poll() is None
    wrapped.process.send_signal(signal.SIGINT)
    code, err = wrapped.finish()
    assert code == 0, err


@pytest.mark.parametrize(
    ("fake_args", "expected"),
    [
        (("--exit-at-once", "7"), 7),
        (("--exit-code", "3"), 3),
        (("--die-by-signal",), -signal.SIGTERM),
    ],
)
def test_the_exit_status_is_the_servers(wrapped_factory, fake_args, expected):
    wrapped = start(wrapped_factory, 5, 10, *fake_args)
    if expected != 7:
        wrapped.wait_ready()
        wrapped.process.send_signal(signal.SIGTERM)
    code, err = wrapped.finish()
    assert code == expected, err


def test_a_server_that_ignores_sigterm_is_killed(wrapped_factory, tmp_path):
    started = tmp_path / "started"
    wrapped = start(wrapped_factory, 5, 0.5, "--ignore-sigterm", "--started-file", str(started))
    wait_until(started.exists, timeout_s=30)
    signalled = time.monotonic()
    wrapped.process.send_signal(signal.SIGTERM)
    code, err = wrapped.finish()
    assert code == -signal.SIGKILL, err
    assert "killing it" in err
    assert time.monotonic() - signalled < 8
