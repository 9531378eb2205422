"""One controller pass, and the loop that repeats it while this replica leads.

A pass: list the ModelScalers -> read every pool's target (/scale, readiness, paused
annotation) -> ask the signal source once for every model -> for each ModelScaler, decide
(pure, :func:`autoscaler.controller.reconcile.reconcile`) -> patch the targets that must
change -> write the status -> log one line naming the step that set the number. One
ModelScaler failing (a bad spec, an unreachable target) never stops the others.

The Kubernetes calls block, so they run in a worker thread; the clock is injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from autoscaler.controller.act import apply_replicas
from autoscaler.controller.api import Json, KubeError, NotFound, PodApi, ScalerApi
from autoscaler.controller.disruption import (
    DELETION_COST,
    Disruptions,
    Loss,
    forget_before,
    observe_node,
    observe_pod,
)
from autoscaler.controller.drain import deletion_costs
from autoscaler.controller.leader import LeaderElector
from autoscaler.controller.reconcile import (
    Memory,
    Reconciled,
    ScalerObject,
    TargetState,
    ready_total,
    reconcile,
)
from autoscaler.controller.spec import SpecError, is_paused, parse_spec
from autoscaler.controller.status import Outcome, PoolAction, build_status, invalid_status
from autoscaler.policy.observation import Observation
from autoscaler.signals.source import SignalSource, unknown

log = logging.getLogger(__name__)
T = TypeVar("T")
LOSS_WINDOW_S = 3600.0
"""Losses this far back count towards a pool's observed preemption rate."""


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did to one ModelScaler (for logs and tests)."""

    key: str
    reconciled: Reconciled | None
    actions: tuple[PoolAction, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Read:
    scaler: ScalerObject
    uid: str
    targets: dict[str, TargetState | None]
    unreadable: dict[str, PoolAction]


class Controller:
    def __init__(
        self,
        api: ScalerApi,
        signals: SignalSource,
        clock: Callable[[], float],
        *,
        namespace: str | None = None,
        signal_timeout_s: float = 10.0,
        pods: PodApi | None = None,
    ) -> None:
        """``pods``: where to mark the pods that should go on scale-down (None: the
        ReplicaSet picks alone). Marking needs the pods, so the pod watch too."""
        self._api = api
        self._signals = signals
        self._clock = clock
        self._namespace = namespace
        self._signal_timeout_s = signal_timeout_s
        self._pods = pods
        self._memory: dict[str, Memory] = {}
        self._disruptions = Disruptions()

    @property
    def disruptions(self) -> Disruptions:
        return self._disruptions

    def observe(self, kind: Literal["pod", "node"], event: str, obj: Json) -> tuple[Loss, ...]:
        """Fold one watch event in; the losses it newly reports (a reason to act now)."""
        fold = observe_pod if kind == "pod" else observe_node
        self._disruptions, lost = fold(self._disruptions, event, obj, self._clock())
        for loss in lost:
            log.warning(
                "%s/%s lost pod %s: %s", loss.namespace, loss.workload, loss.pod, loss.reason
            )
        return lost

    def forget(self) -> None:
        """Drop what earlier passes remembered (after losing leadership: another replica
        acted meanwhile; the next pass reseeds from the statuses)."""
        self._memory.clear()

    async def reconcile_all(self) -> list[PassResult]:
        now = self._clock()
        self._disruptions = forget_before(self._disruptions, now - LOSS_WINDOW_S)
        try:
            raw = await _io(self._api.list_scalers, self._namespace)
        except KubeError as exc:
            log.warning("listing ModelScalers failed: %s", exc)
            return []
        results: list[PassResult] = []
        reads: list[_Read] = []
        for obj in raw:
            read = await self._read(obj, now)
            if isinstance(read, _Read):
                reads.append(read)
            else:
                results.append(read)
        listed = {r.uid for r in reads}
        self._memory = {uid: m for uid, m in self._memory.items() if uid in listed}
        observations = await self._observe(reads, now)
        for read in reads:
            results.append(await self._reconcile(read, observations[read.scaler.spec.model], now))
        return results

    async def _read(self, obj: Mapping[str, Any], now: float) -> _Read | PassResult:
        """The object and its targets; a PassResult saying why not when its spec is bad."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        status = obj.get("status") or {}
        generation = int(meta.get("generation") or 0)
        try:
            spec = parse_spec(obj.get("spec") or {})
        except SpecError as exc:
            log.warning("%s/%s: invalid spec: %s", namespace, name, exc)
            body = invalid_status(status, generation, str(exc), now)
            await self._write_status(namespace, name, body)
            return PassResult(f"{namespace}/{name}", None, (), f"invalid spec: {exc}")
        scaler = ScalerObject(namespace, name, spec, generation, is_paused(meta), status)
        targets: dict[str, TargetState | None] = {}
        unreadable: dict[str, PoolAction] = {}
        for pool in spec.pools:
            try:
                targets[pool.name] = await _io(
                    self._api.read_target, namespace, pool.scale_target_ref
                )
            except KubeError as exc:
                targets[pool.name] = None
                outcome: Outcome = "missing" if isinstance(exc, NotFound) else "failed"
                unreadable[pool.name] = PoolAction(pool.name, outcome, str(exc))
                log.warning("%s pool %s: %s", scaler.key, pool.name, exc)
        return _Read(scaler, str(meta.get("uid") or scaler.key), targets, unreadable)

    async def _observe(self, reads: Sequence[_Read], now: float) -> dict[str, Observation]:
        ready: dict[str, int] = {}
        for read in reads:
            model = read.scaler.spec.model
            ready[model] = ready.get(model, 0) + ready_total(read.targets)
        if not ready:
            return {}
        try:
            seen = await asyncio.wait_for(
                self._signals.observe(ready, now), timeout=self._signal_timeout_s
            )
        except (TimeoutError, OSError) as exc:
            log.warning("reading signals failed: %r", exc)
            seen = {}
        fallback = unknown(ready, now)
        return {m: seen.get(m, fallback[m]) for m in ready}

    async def _reconcile(self, read: _Read, obs: Observation, now: float) -> PassResult:
        scaler = read.scaler
        reconciled = reconcile(
            scaler, read.targets, obs, self._memory.get(read.uid), now, self._disruptions
        )
        self._memory[read.uid] = reconciled.memory
        actions = list(read.unreadable.values())
        for pool in scaler.spec.pools:
            target = read.targets.get(pool.name)
            if target is None:
                continue
            if scaler.paused or target.paused:
                actions.append(
                    PoolAction(pool.name, "paused", f"paused: left at {target.spec_replicas}")
                )
                continue
            if self._pods is not None:
                remove = target.spec_replicas - reconciled.desired[pool.name]
                await self._mark_leaving(scaler.namespace, pool.scale_target_ref.name, remove)
            actions.append(
                await _io(
                    apply_replicas,
                    self._api,
                    scaler.namespace,
                    pool.name,
                    pool.scale_target_ref,
                    reconciled.desired[pool.name],
                    target,
                )
            )
        status = build_status(scaler, reconciled, obs, read.targets, actions, now)
        await self._write_status(scaler.namespace, scaler.name, status)
        log.info(reconciled.log_line(scaler))
        return PassResult(scaler.key, reconciled, tuple(actions))

    async def _mark_leaving(self, namespace: str, workload: str, remove: int) -> None:
        """Lowest deletion costs on the pods that should go (marks cleared when none
        should), before /scale is lowered; a failure leaves the choice to the ReplicaSet."""
        assert self._pods is not None
        pods = self._disruptions.pods_of(namespace, workload)
        for name, cost in deletion_costs(pods, remove).items():
            try:
                await _io(self._pods.annotate_pod, namespace, name, {DELETION_COST: cost})
            except KubeError as exc:
                log.warning("%s/%s: marking pod %s failed: %s", namespace, workload, name, exc)

    async def _write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            await _io(self._api.write_status, namespace, name, status)
        except NotFound:
            pass  # deleted during the pass
        except KubeError as exc:
            log.warning("%s/%s: writing the status failed: %s", namespace, name, exc)


async def _io(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


async def run(
    controller: Controller,
    interval_s: float,
    stop: asyncio.Event,
    elector: LeaderElector | None = None,
    on_tick: Callable[[], None] = lambda: None,
    wake: asyncio.Event | None = None,
) -> None:
    """Reconcile every ``interval_s`` while leading (always, without an elector), and at
    once when ``wake`` is set (capacity lost)."""
    leading = elector is None
    while not stop.is_set():
        if wake is not None:
            wake.clear()  # a loss reported during this pass wakes the next one
        if elector is not None:
            now_leading = elector.is_leader()
            if leading and not now_leading:
                log.warning("lost leadership: stopped acting")
                controller.forget()
            leading = now_leading
        if leading:
            try:
                await controller.reconcile_all()
            except Exception:  # a bug in one pass must not end the controller
                log.exception("reconcile pass failed")
        on_tick()
        await _pause(interval_s, stop, wake)


async def _pause(interval_s: float, stop: asyncio.Event, wake: asyncio.Event | None) -> None:
    waits = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    _, pending = await asyncio.wait(waits, timeout=interval_s, return_when="FIRST_COMPLETED")
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def elect(elector: LeaderElector, retry_period_s: float, stop: asyncio.Event) -> None:
    """Keep trying to acquire or renew the lease until stopped, then release it."""
    while not stop.is_set():
        await asyncio.to_thread(elector.try_acquire_or_renew)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=retry_period_s)
    await asyncio.to_thread(elector.release)
