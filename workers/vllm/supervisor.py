"""Run vLLM as a child process: forward signals, drain on SIGTERM, exit as vLLM did.

Signals, in this process:

- SIGTERM (pod termination, spot notice): create the drain file at once, from the signal
  handler, so vLLM's ``/health`` turns 503 and new work is refused; then poll until
  :func:`workers.vllm.drain.decide` says stop, and send vLLM SIGTERM.
- SIGINT, or SIGTERM again while draining: stop now (SIGINT is passed on as SIGINT).
- SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2: passed on to vLLM unchanged.

vLLM runs in its own process group, so a terminal's Ctrl-C reaches it only through this
wrapper, and whatever is left of the group when vLLM ends is killed. If this process is
killed outright, the kernel sends vLLM SIGTERM (Linux parent-death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from workers.vllm.drain import Decision, Observation, Reading, decide, engine_load, http_in_flight
from workers.vllm.middleware import STATUS_PATH

log = logging.getLogger(__name__)

FORWARDED = (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class DrainTiming:
    grace_s: float
    poll_s: float
    stop_timeout_s: float


def observe(base_url: str, timeout_s: float = 2.0) -> Observation:
    """Ask the server how busy it is: the middleware's count, then the engine's gauges."""
    try:
        status = _get(base_url + STATUS_PATH, timeout_s)
        page = _get(base_url + "/metrics", timeout_s)
        return Observation(
            Reading.OK,
            http_in_flight=http_in_flight(status),
            engine_load=engine_load(page.decode("utf-8", "replace")),
        )
    except urllib.error.URLError as exc:
        refused = isinstance(exc.reason, ConnectionRefusedError)
        return Observation(Reading.REFUSED if refused else Reading.FAILED)
    except ConnectionRefusedError:
        return Observation(Reading.REFUSED)
    except (OSError, ValueError):
        return Observation(Reading.FAILED)


def _get(url: str, timeout_s: float) -> bytes:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    with direct.open(url, timeout=timeout_s) as response:
        body: bytes = response.read()
        return body


class Supervisor:
    """One run of a child server under the signal rules above."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        base_url: str,
        drain_file: Path,
        timing: DrainTiming,
        clock: Callable[[], float] = time.monotonic,
        observe_server: Callable[[str], Observation] = observe,
    ) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._base_url = base_url
        self._drain_file = drain_file
        self._timing = timing
        self._clock = clock
        self._observe = observe_server
        self._pending: list[int] = []
        self._drain_started: float | None = None
        self._stop_sent: float | None = None
        self._killed = False
        self._sigterms = 0

    # -- signal handling (runs between bytecodes of the main loop) -------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM and self._drain_started is None:
            self._mark_draining()
        self._pending.append(signum)

    def _mark_draining(self) -> None:
        self._drain_file.touch()
        self._drain_started = self._clock()

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> int:
        """Start the child, supervise it to its end; its return code (negative: its signal)."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        handled = (signal.SIGTERM, signal.SIGINT, *FORWARDED)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            process = subprocess.Popen(
                self._argv, env=self._env, process_group=0, preexec_fn=_die_with_parent
            )
            log.info("started vLLM as pid %d", process.pid)
            try:
                return self._supervise(process, wake_r)
            finally:
                _reap_group(process, self._timing.stop_timeout_s)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)

    def _supervise(self, process: subprocess.Popen[bytes], wake_fd: int) -> int:
        pidfd = _pidfd(process.pid)
        try:
            while (code := process.poll()) is None:
                self._handle_signals(process)
                self._advance_drain(process)
                self._escalate(process)
                draining = self._drain_started is not None and self._stop_sent is None
                timeout = self._timing.poll_s if draining or self._stop_sent else 5.0
                fds = [wake_fd] if pidfd is None else [wake_fd, pidfd]
                ready, _, _ = select.select(fds, [], [], timeout)
                if wake_fd in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_fd, 512)
            log.info("vLLM exited with %s", _describe(code))
            return code
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def _handle_signals(self, process: subprocess.Popen[bytes]) -> None:
        pending, self._pending = self._pending, []
        for signum in pending:
            name = signal.Signals(signum).name
            if signum in FORWARDED:
                log.info("passing %s on to vLLM", name)
                _signal(process, signum)
            elif signum == signal.SIGINT or self._sigterms > 0:
                log.info("%s: stopping vLLM now", name)
                self._stop(process, signum)
            else:
                log.info(
                    "SIGTERM: draining; new requests get 503, in-flight ones have up to %gs",
                    self._timing.grace_s,
                )
            if signum == signal.SIGTERM:
                self._sigterms += 1

    def _advance_drain(self, process: subprocess.Popen[bytes]) -> None:
        if self._drain_started is None or self._stop_sent is not None:
            return
        observation = self._observe(self._base_url)
        elapsed = self._clock() - self._drain_started
        decision = decide(observation, elapsed_s=elapsed, grace_s=self._timing.grace_s)
        if decision is Decision.WAIT:
            return
        log.info("drain done after %.1fs (%s); stopping vLLM", elapsed, decision.value)
        self._stop(process, signal.SIGTERM)

    def _stop(self, process: subprocess.Popen[bytes], signum: int) -> None:
        if self._drain_started is None:
            self._mark_draining()
        _signal(process, signum)
        if self._stop_sent is None:
            self._stop_sent = self._clock()

    def _escalate(self, process: subprocess.Popen[bytes]) -> None:
        if self._stop_sent is None or self._killed:
            return
        if self._clock() - self._stop_sent >= self._timing.stop_timeout_s:
            log.warning(
                "vLLM still running %gs after SIGTERM; killing it", self._timing.stop_timeout_s
            )
            _kill_group(process.pid)
            self._killed = True


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


def _reap_group(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Give what is left of vLLM's process group (engine processes) time to end, then kill
    it; kill everything at once if vLLM itself is still running (this wrapper failed)."""
    if process.poll() is None:
        _kill_group(process.pid)
        process.wait()
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # As PID 1 in a container this process inherits the orphans; reap them.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(-1, os.WNOHANG)
        try:
            os.killpg(process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    _kill_group(process.pid)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the wrapper dies (Linux only)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _describe(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"


def exit_like(code: int) -> int:
    """Make this process end the way the child did: same status, or same signal."""
    if code >= 0:
        return code
    signum = -code
    with contextlib.suppress(OSError, ValueError):  # SIGKILL's action cannot be changed
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum


@contextlib.contextmanager
def drain_flag_dir() -> Iterator[Path]:
    """A private directory for the drain file, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="tidegate-worker-"))
    try:
        yield directory / "draining"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
