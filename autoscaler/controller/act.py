"""Setting one pool's replicas: idempotent, optimistic, retried on conflict.

The patch carries the resourceVersion the decision was made on. If the target changed in
between (a rollout, a human, another controller) the server answers 409; the target is read
again and, unless it was paused meanwhile or already holds the number, the same number is
applied on the new version. A target already at the number is not written at all.
"""

from __future__ import annotations

from autoscaler.controller.api import Conflict, KubeError, NotFound, ScalerApi
from autoscaler.controller.reconcile import TargetState
from autoscaler.controller.spec import ScaleTargetRef
from autoscaler.controller.status import PoolAction

MAX_ATTEMPTS = 5


def apply_replicas(
    api: ScalerApi,
    namespace: str,
    pool: str,
    ref: ScaleTargetRef,
    replicas: int,
    read: TargetState,
    max_attempts: int = MAX_ATTEMPTS,
) -> PoolAction:
    state = read
    conflicts = 0
    target = f"{ref.kind}/{ref.name}"
    while True:
        retried = f" after {conflicts} conflict{'s' * (conflicts != 1)}" if conflicts else ""
        if state.paused:
            return PoolAction(pool, "paused", f"{target} paused: left at {state.spec_replicas}")
        if state.spec_replicas == replicas:
            return PoolAction(pool, "unchanged", f"{target} at {replicas}{retried}")
        try:
            api.set_replicas(namespace, ref, replicas, state.resource_version)
        except Conflict:
            conflicts += 1
            if conflicts >= max_attempts:
                return PoolAction(pool, "failed", f"{target}: gave up after {conflicts} conflicts")
            try:
                state = api.read_target(namespace, ref)
            except NotFound:
                return PoolAction(pool, "missing", f"{target} not found")
            except KubeError as exc:
                return PoolAction(pool, "failed", f"{target}: {exc}")
            continue
        except NotFound:
            return PoolAction(pool, "missing", f"{target} not found")
        except KubeError as exc:
            return PoolAction(pool, "failed", f"{target}: {exc}")
        return PoolAction(pool, "scaled", f"{target} {state.spec_replicas} -> {replicas}{retried}")
