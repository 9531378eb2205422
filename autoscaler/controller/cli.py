"""``tidegate autoscaler``: reconcile ModelScalers, scaling each pool through its ``/scale``.

The composition root: settings in, the Kubernetes adapter, the signal source, the leader
elector and the loop wired together, a ``/healthz`` for the kubelet, and SIGTERM handled
(the lease is released so a standby takes over at once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from autoscaler.controller.api import KubeError, LeaseApi
from autoscaler.controller.settings import ControllerSettings, SettingsError, load_settings
from autoscaler.signals.source import SignalSource

log = logging.getLogger("tidegate.autoscaler")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tidegate autoscaler", description=__doc__)
    p.add_argument("--config", type=Path, help="YAML settings file")
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster)")
    p.add_argument("--context", help="kubeconfig context")
    p.add_argument("--namespace", help="ModelScalers' namespace (default: all namespaces)")
    p.add_argument("--interval-s", type=float, help="seconds between passes (default 15)")
    p.add_argument("--prometheus-url", help="read signals from this Prometheus")
    p.add_argument("--scrape-gateways", help="or scrape these gateways (comma-separated URLs)")
    p.add_argument("--scrape-workers", help="and these workers' /metrics (comma-separated)")
    p.add_argument("--no-leader-election", action="store_true", help="act without a Lease")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return p


def _urls(value: str) -> list[str]:
    return [u.strip() for u in value.split(",") if u.strip()]


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags given, shaped like the settings."""
    out: dict[str, Any] = {}
    for flag, key in (
        ("namespace", "namespace"),
        ("interval_s", "interval_s"),
        ("context", "context"),
        ("log_level", "log_level"),
    ):
        if getattr(args, flag) is not None:
            out[key] = getattr(args, flag)
    if args.kubeconfig is not None:
        out |= {"kubeconfig": args.kubeconfig, "auth": "kubeconfig"}
    if args.prometheus_url:
        out["signals"] = {"prometheus": {"url": args.prometheus_url}, "scrape": None}
    elif args.scrape_gateways:
        scrape = {
            "gateways": _urls(args.scrape_gateways),
            "workers": _urls(args.scrape_workers or ""),
        }
        out["signals"] = {"scrape": scrape, "prometheus": None}
    if args.no_leader_election or args.once:
        out["leader_election"] = {"enabled": False}
    return out


def signal_source(settings: ControllerSettings) -> SignalSource:
    s = settings.signals
    if s.prometheus is not None:
        from autoscaler.signals.prometheus import PrometheusSource

        p = s.prometheus
        return PrometheusSource(
            p.url, window_s=p.window_s, timeout_s=p.timeout_s, down_query=p.down_query
        )
    from autoscaler.signals.scrape import ScrapeSource

    assert s.scrape is not None  # settings guarantee exactly one
    return ScrapeSource(
        s.scrape.gateways,
        s.scrape.workers,
        window_s=s.scrape.window_s,
        timeout_s=s.scrape.timeout_s,
    )


class Health:
    """``/healthz`` answers 200 while the loop keeps ticking."""

    def __init__(self, stale_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._last = clock()
        self.leading = False

    def tick(self) -> None:
        self._last = self._clock()

    async def handle(self, _: web.Request) -> web.Response:
        age = self._clock() - self._last
        body = f"last pass {age:.0f}s ago; {'leader' if self.leading else 'standby'}\n"
        return web.Response(status=200 if age < self._stale_after_s else 503, text=body)


async def serve(settings: ControllerSettings, once: bool = False) -> int:
    from autoscaler.controller.kube import KubeScalers, KubeWatch, close, connect
    from autoscaler.controller.leader import LeaderElector
    from autoscaler.controller.loop import Controller, elect, run
    from autoscaler.controller.watch import Stream, watch_disruptions

    try:
        client = connect(settings.auth, settings.kubeconfig, settings.context)
    except KubeError as exc:
        log.error("%s", exc)
        return 2
    signals = signal_source(settings)
    d = settings.disruptions
    watcher = None
    if d.enabled and not once:
        watcher = KubeWatch(client, settings.namespace, d.pod_selector, d.watch_timeout_s)
    controller = Controller(
        KubeScalers(client),
        signals,
        time.time,
        namespace=settings.namespace,
        signal_timeout_s=settings.signals.timeout_s,
        pods=watcher if d.mark_leaving else None,
    )
    try:
        if once:
            results = await controller.reconcile_all()
            return 1 if any(r.error for r in results) else 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        health = Health(stale_after_s=max(60.0, 4 * settings.interval_s))
        runner = await _health_server(settings, health)
        le = settings.leader_election
        elector = None
        tasks = []
        if le.enabled:
            elector = LeaderElector(
                lease_api(client, settings),
                le.lease_name,
                le.identity,
                time.time,
                lease_duration_s=le.lease_duration_s,
                renew_deadline_s=le.renew_deadline_s,
            )
            tasks.append(asyncio.create_task(elect(elector, le.retry_period_s, stop)))

        wake = asyncio.Event()
        if watcher is not None:
            streams: dict[Literal["pod", "node"], Stream] = {"pod": watcher.pods}
            if d.watch_nodes:
                streams["node"] = watcher.nodes
            tasks.append(asyncio.create_task(watch_disruptions(streams, controller, wake, stop)))

        def tick() -> None:
            health.tick()
            health.leading = elector is None or elector.is_leader()

        log.info(
            "reconciling ModelScalers in %s every %gs",
            settings.namespace or "every namespace",
            settings.interval_s,
        )
        tasks.append(
            asyncio.create_task(run(controller, settings.interval_s, stop, elector, tick, wake))
        )
        await asyncio.gather(*tasks)
        if runner is not None:
            await runner.cleanup()
        return 0
    finally:
        await signals.close()
        close(client)


def lease_api(client: Any, settings: ControllerSettings) -> LeaseApi:
    """The Lease adapter at the configured group/version/resource."""
    from autoscaler.controller.kube import KubeLeases
    from scheduler.discovery.kube import ApiResource

    r = settings.leader_election.lease_resource
    return KubeLeases(client, settings.lease_namespace, ApiResource(r.group, r.version, r.resource))


async def _health_server(settings: ControllerSettings, health: Health) -> web.AppRunner | None:
    if not settings.health.port:
        return None
    app = web.Application()
    app.router.add_get("/healthz", health.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.health.host, settings.health.port).start()
    return runner


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, overrides_from(args))
    except SettingsError as exc:
        print(f"tidegate autoscaler: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(settings, once=args.once))
    return 130
