"""The run's lifecycle in Locust: options, per-process state, the verdict and the report.

Registered on Locust's events by ``register`` (from the locustfile). At ``init`` the options
are checked and the trace loaded, so a bad value stops the run before any load; the
workload is built on first use (Locust asks the shape for a tick before ``test_start``);
at ``quitting`` the verdict sets the exit code and the PNG is drawn; at ``quit``, after
Locust's own tables, the verdict table is printed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import locust.stats
import orjson
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from loadtests import names
from loadtests.options import ConfigError, LoadTestConfig, add_arguments, load_config
from loadtests.report import load_history, plot_history
from loadtests.slo import Observations, StatsRow, Verdict, collect, format_verdict, judge
from loadtests.tracefile import Trace, TraceError, load_trace
from loadtests.workload import CommonOptions, Workload, build_spec

logger = logging.getLogger("tidegate.loadtest")


class RunState:
    """What this process's listeners, users and shape share, kept on the environment."""

    def __init__(self, config: LoadTestConfig, trace: Trace) -> None:
        self.config = config
        self.trace = trace
        self.workload: Workload | None = None
        self.last_workload: Workload | None = None
        self.verdict: Verdict | None = None
        self.report: Path | None = None


def state_of(environment: Environment) -> RunState:
    state = getattr(environment, "tidegate_loadtest", None)
    if not isinstance(state, RunState):
        raise RuntimeError("the Tidegate load test was not initialised (run it with Locust)")
    return state


def workload_of(environment: Environment) -> Workload:
    """This run's workload, built on first use: Locust asks the shape for its first tick
    before it fires ``test_start``."""
    state = state_of(environment)
    if state.workload is None:
        state.workload = _build_workload(environment, state)
        state.last_workload = state.workload
    return state.workload


def _listen(hook: Any, handler: Callable[..., Any]) -> None:
    """``hook.add_listener``, behind a typed signature (Locust's hooks are untyped)."""
    hook.add_listener(handler)


def _add_options(parser: Any) -> None:
    add_arguments(parser)
    _csv_implies_full_history(parser)


def _csv_implies_full_history(parser: Any) -> None:
    """Make ``--csv`` also turn on ``--csv-full-history``: a history row per request type,
    so TTFT and ITL can be plotted over time. (Locust refuses the latter without ``--csv``,
    so it cannot simply default to on.)"""
    for action in getattr(parser, "_actions", ()):
        if getattr(action, "dest", None) != "csv_prefix":
            continue
        base: type[Any] = type(action)

        class CsvWithHistory(base):  # type: ignore[misc]
            def __call__(self, parser: Any, namespace: Any, values: Any, *args: Any) -> None:
                super().__call__(parser, namespace, values, *args)
                namespace.stats_history_enabled = True

        action.__class__ = CsvWithHistory


def _init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:  # used as a library without Locust's parser: nothing to set up
        return
    try:
        config = load_config(options)
        trace = load_trace(config.trace)
    except (ConfigError, TraceError) as exc:
        sys.stderr.write(f"tidegate load test: {exc}\n")
        sys.exit(2)
    if config.shape == "replay" and (options.master or options.worker):
        sys.stderr.write(
            "tidegate load test: replay runs in one process; raise --speedup "
            "instead of adding workers\n"
        )
        sys.exit(2)
    state = RunState(config, trace)
    environment.tidegate_loadtest = state  # type: ignore[attr-defined]
    _listen(environment.events.test_start, _test_start)
    _listen(environment.events.test_stop, _test_stop)
    if not isinstance(environment.runner, WorkerRunner):
        _listen(environment.events.quitting, _judge)
        _listen(environment.events.quit, lambda **_: _print_verdict(environment))
        if options.csv_prefix:
            # Flush on every write (once a second), so the files are whole when we read them.
            locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 0
            png = config.report_png or Path(f"{options.csv_prefix}_report.png")
            history = Path(f"{options.csv_prefix}_stats_history.csv")
            _listen(environment.events.quitting, lambda **_: _write_report(state, history, png))


def _build_workload(environment: Environment, state: RunState) -> Workload:
    options = environment.parsed_options
    config = state.config
    if options is not None:  # the web UI may have changed the options since start-up
        try:
            config = load_config(options)
            trace = state.trace
            if str(config.trace) != trace.source:
                trace = load_trace(config.trace)
            state.config, state.trace = config, trace
        except (ConfigError, TraceError) as exc:
            logger.error("options not applied, keeping the previous ones: %s", exc)
            config = state.config
    common = CommonOptions(
        users=getattr(options, "num_users", None) or 1,
        spawn_rate=getattr(options, "spawn_rate", None) or 1.0,
        run_time_s=getattr(options, "run_time", None) or None,
    )
    spec = None
    if not isinstance(environment.runner, MasterRunner):  # a master sends nothing
        served = () if config.models else _served_models(environment.host or "", api_key(config))
        try:
            spec = build_spec(config, served)
        except ValueError as exc:
            logger.error("%s", exc)
            environment.process_exit_code = 2
            workload = Workload(config, state.trace, None, common)
            workload.broken = str(exc)  # the shape ends the run at its next tick
            return workload
    return Workload(config, state.trace, spec, common)


def _test_start(environment: Environment, **_: Any) -> None:
    workload_of(environment)


def _test_stop(environment: Environment, **_: Any) -> None:
    state_of(environment).workload = None  # a next run (web UI) starts afresh


def api_key(config: LoadTestConfig) -> str:
    return config.api_key or os.environ.get("OPENAI_API_KEY", "")


def _served_models(host: str, api_key: str) -> tuple[str, ...]:
    request = urllib.request.Request(host.rstrip("/") + "/v1/models")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data = orjson.loads(response.read()).get("data", [])
    except (OSError, ValueError) as exc:
        logger.error("cannot list models at %s/v1/models: %s", host, exc)
        return ()
    return tuple(m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str))


def observations(environment: Environment) -> Observations:
    """This run's numbers as the verdict reads them, from Locust's (merged) statistics."""
    rows = (
        StatsRow(entry.method or "", entry.response_times, entry.num_requests, entry.num_failures)
        for entry in environment.stats.entries.values()
    )
    return collect(rows, names.METRIC_TYPES)


def _judge(environment: Environment, **_: Any) -> None:
    state = state_of(environment)
    if not state.config.slo:
        return
    state.verdict = judge(state.config.slo, observations(environment))
    crashed = environment.runner is not None and bool(environment.runner.exceptions)
    code = 0 if state.verdict.passed and not crashed else 1
    environment.process_exit_code = max(environment.process_exit_code or 0, code)


def _print_verdict(environment: Environment) -> None:
    state = state_of(environment)
    workload = state.last_workload
    schedule = workload.schedule if workload else None
    if schedule is not None and schedule.late:
        print(
            f"\nreplay: {schedule.late} of {len(schedule)} arrivals went out late (max "
            f"{schedule.max_lag_s:.2f} s): raise --replay-users or --replay-max-users"
        )
    if state.verdict is not None:
        print("\n" + format_verdict(state.verdict), flush=True)
    if state.report is not None:
        print(f"report: {state.report}", flush=True)


def _write_report(state: RunState, history: Path, png: Path) -> None:
    """The PNG, from the stats history CSV. Locust writes its CSVs once a second and not
    again at exit, so first wait for one more pass: the run's last second is in it."""
    time.sleep(CSV_STATS_INTERVAL_SEC + 0.2)
    try:
        plot_history(load_history(history), png)
    except Exception as exc:  # a missing plot must not hide the verdict's exit code
        logger.error("no PNG report: %s", exc)
        return
    state.report = png


def register(events: Any) -> None:
    """Hook the lifecycle onto Locust's (module-level) events."""
    _listen(events.init_command_line_parser, _add_options)
    _listen(events.init, _init)
