"""Routing around workers whose prefill backlog is full.

A worker's prefill backlog is the prompt tokens a gateway has sent it that have no first
token back yet. With ``SaturationPolicy.max_prefill_tokens`` set, the gate holds requests
while every worker is at that bound; a request it lets in should then go to a worker under
it, so the backlog an engine prefills in its next steps (and with it the step an urgent
request waits out) stays short. Pure: callers pass the live backlog.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from scheduler.admission import SaturationPolicy, prefill_saturation
from scheduler.framework import RoutingContext, eligible


def over_prefill_bound(
    prefill_tokens: Mapping[str, int], policy: SaturationPolicy
) -> frozenset[str]:
    """The endpoints whose backlog is at or over the policy's bound (none when unset)."""
    if policy.max_prefill_tokens is None:
        return frozenset()
    return frozenset(
        url for url, tokens in prefill_tokens.items() if prefill_saturation(tokens, policy) >= 1
    )


def skipping_full(ctx: RoutingContext, full: Collection[str]) -> RoutingContext:
    """``ctx`` with the ``full`` endpoints excluded as well, unless that would leave no
    eligible endpoint: then ``ctx`` unchanged, since a request already let in (or sent with
    admission off) is better queued at a busy worker than refused."""
    if not full:
        return ctx
    if all(endpoint.url in full for endpoint in eligible(ctx)):
        return ctx
    return replace(ctx, exclude=frozenset(ctx.exclude) | frozenset(full))
