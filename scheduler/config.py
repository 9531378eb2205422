"""Typed routing configuration, checked when loaded, and the one place plugins are built.

Plugins are declared once by name (a discriminated union on ``type``) and profiles refer to
them by name; a misspelt name, or a scorer used as a filter, fails at start-up with the
profile and the name in the message.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scheduler.framework import Filter, Observer, Picker, Profile, Router, Scorer, WeightedScorer
from scheduler.plugins.affinity import PrefixCostScorer, PrefixIndexScorer, RendezvousScorer
from scheduler.plugins.load import (
    InFlightScorer,
    KvCacheScorer,
    LoadCeilingFilter,
    QueueDepthScorer,
)
from scheduler.plugins.pickers import MaxScorePicker, PowerOfTwoPicker, WeightedRandomPicker

Role = Literal["filter", "scorer", "picker"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: ClassVar[Role]
    observes: ClassVar[bool] = False

    def build(self) -> Any:
        raise NotImplementedError


class LoadCeilingFilterSpec(_Spec):
    role: ClassVar[Role] = "filter"
    type: Literal["load-ceiling-filter"]
    factor: float = Field(1.25, gt=1.0, description="ceiling as a multiple of the mean load")
    slack: float = Field(1.0, ge=0.0, description="requests allowed over the ceiling")

    def build(self) -> Filter:
        return LoadCeilingFilter(factor=self.factor, slack=self.slack)


class QueueDepthScorerSpec(_Spec):
    role: ClassVar[Role] = "scorer"
    type: Literal["queue-depth-scorer"]
    include_in_flight: bool = Field(True, description="add this gateway's in-flight count")

    def build(self) -> Scorer:
        return QueueDepthScorer(include_in_flight=self.include_in_flight)


class InFlightScorerSpec(_Spec):
    role: ClassVar[Role] = "scorer"
    type: Literal["in-flight-scorer"]

    def build(self) -> Scorer:
        return InFlightScorer()


class KvCacheScorerSpec(_Spec):
    role: ClassVar[Role] = "scorer"
    type: Literal["kv-cache-scorer"]

    def build(self) -> Scorer:
        return KvCacheScorer()


class PrefixIndexScorerSpec(_Spec):
    role: ClassVar[Role] = "scorer"
    observes: ClassVar[bool] = True
    type: Literal["prefix-index-scorer"]
    capacity: int = Field(50_000, ge=1, description="prefix blocks remembered per endpoint")

    def build(self) -> PrefixIndexScorer:
        return PrefixIndexScorer(capacity=self.capacity)


class PrefixCostScorerSpec(_Spec):
    role: ClassVar[Role] = "scorer"
    observes: ClassVar[bool] = True
    type: Literal["prefix-cost-scorer"]
    capacity: int = Field(50_000, ge=1, description="prefix blocks remembered per endpoint")

    def build(self) -> PrefixCostScorer:
        return PrefixCostScorer(capacity=self.capacity)


class RendezvousScorerSpec(_Spec):
    role: ClassVar[Role] = "scorer"
    type: Literal["rendezvous-scorer"]
    key: Literal["prefix", "session"] = "prefix"
    group_blocks: int = Field(4, ge=1, description="prefix blocks that name a prefix group")

    def build(self) -> Scorer:
        return RendezvousScorer(key=self.key, group_blocks=self.group_blocks)


class MaxScorePickerSpec(_Spec):
    role: ClassVar[Role] = "picker"
    type: Literal["max-score-picker"]

    def build(self) -> Picker:
        return MaxScorePicker()


class WeightedRandomPickerSpec(_Spec):
    role: ClassVar[Role] = "picker"
    type: Literal["weighted-random-picker"]

    def build(self) -> Picker:
        return WeightedRandomPicker()


class PowerOfTwoPickerSpec(_Spec):
    role: ClassVar[Role] = "picker"
    type: Literal["power-of-two-picker"]

    def build(self) -> Picker:
        return PowerOfTwoPicker()


PluginSpec = Annotated[
    LoadCeilingFilterSpec
    | QueueDepthScorerSpec
    | InFlightScorerSpec
    | KvCacheScorerSpec
    | PrefixIndexScorerSpec
    | PrefixCostScorerSpec
    | RendezvousScorerSpec
    | MaxScorePickerSpec
    | WeightedRandomPickerSpec
    | PowerOfTwoPickerSpec,
    Field(discriminator="type"),
]


class ScorerRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    plugin: str
    weight: float = Field(1.0, ge=0.0)


class ProfileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    filters: tuple[str, ...] = ()
    scorers: tuple[ScorerRef, ...] = ()
    picker: str = "max-score"


def _default_plugins() -> dict[str, PluginSpec]:
    return {
        "queue": QueueDepthScorerSpec(type="queue-depth-scorer"),
        "kv-cache": KvCacheScorerSpec(type="kv-cache-scorer"),
        "in-flight": InFlightScorerSpec(type="in-flight-scorer"),
        "prefix": RendezvousScorerSpec(type="rendezvous-scorer", key="prefix", group_blocks=16),
        "prefix-index": PrefixIndexScorerSpec(type="prefix-index-scorer"),
        "session": RendezvousScorerSpec(type="rendezvous-scorer", key="session"),
        "bounded-load": LoadCeilingFilterSpec(type="load-ceiling-filter", factor=1.5, slack=2.0),
        "max-score": MaxScorePickerSpec(type="max-score-picker"),
    }


def _default_profiles() -> dict[str, ProfileSpec]:
    return {
        "least-queue": ProfileSpec(scorers=(ScorerRef(plugin="queue"),)),
        # Best single-replica prefix routing in the trace replay (docs/routing.md).
        "prefix-aware": ProfileSpec(
            filters=("bounded-load",),
            scorers=(
                ScorerRef(plugin="prefix-index", weight=2.0),
                ScorerRef(plugin="session", weight=1.0),
                ScorerRef(plugin="queue", weight=1.0),
            ),
        ),
        # Placement every gateway replica agrees on without shared state: the rendezvous
        # home leads, the replica's own prefix index (which diverges between replicas)
        # only adds to it, and queue depth keeps a hot home from winning outright.
        "affinity": ProfileSpec(
            filters=("bounded-load",),
            scorers=(
                ScorerRef(plugin="prefix-index", weight=1.0),
                ScorerRef(plugin="prefix", weight=2.0),
                ScorerRef(plugin="session", weight=2.0),
                ScorerRef(plugin="queue", weight=2.0),
            ),
        ),
    }


class SchedulerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    block_chars: int = Field(256, ge=16, description="prompt characters per prefix block")
    plugins: dict[str, PluginSpec] = Field(default_factory=_default_plugins)
    profiles: dict[str, ProfileSpec] = Field(default_factory=_default_profiles)
    default_profile: str = "least-queue"
    gateway_replicas: int = Field(
        1,
        ge=1,
        description="gateway replicas behind one balancer; above 1 each replica estimates "
        "the others' in-flight requests as its own x this (docs/routing.md)",
    )
    slow_start_s: float = Field(
        10.0,
        ge=0.0,
        description="seconds over which a newly healthy worker's share of the load ramps "
        "up from a tenth to a full one, so a worker joining a busy pool is not handed a "
        "burst of prefills at once; 0 turns it off (docs/routing.md, Slow start)",
    )

    @model_validator(mode="after")
    def _check_references(self) -> SchedulerSettings:
        problems = []
        if self.default_profile not in self.profiles:
            problems.append(
                f"default_profile {self.default_profile!r} is not a profile "
                f"(have: {', '.join(sorted(self.profiles))})"
            )
        for name, profile in self.profiles.items():
            uses = [(f, "filter") for f in profile.filters]
            uses += [(s.plugin, "scorer") for s in profile.scorers]
            uses.append((profile.picker, "picker"))
            for plugin, role in uses:
                spec = self.plugins.get(plugin)
                if spec is None:
                    problems.append(f"profile {name!r} uses unknown plugin {plugin!r}")
                elif spec.role != role:
                    problems.append(
                        f"profile {name!r} uses {plugin!r} ({spec.type}, a {spec.role}) as a {role}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self


def build_router(settings: SchedulerSettings, *, also_observe: Observer | None = None) -> Router:
    """Build every plugin once (profiles share them, so a prefix index is shared too).

    ``also_observe`` sees every decision of the profiles that learn from decisions (the
    prefix-index exchange buffers them for the other gateway replicas).
    """
    # Roles were checked at load, so each name is used only where its role fits.
    built: dict[str, Any] = {name: spec.build() for name, spec in settings.plugins.items()}
    profiles = {}
    for name, spec in settings.profiles.items():
        scorers = tuple(WeightedScorer(r.plugin, built[r.plugin], r.weight) for r in spec.scorers)
        observers: tuple[Observer, ...] = tuple(
            built[r.plugin] for r in spec.scorers if settings.plugins[r.plugin].observes
        )
        if observers and also_observe is not None:
            observers = (*observers, also_observe)
        profiles[name] = Profile(
            name=name,
            filters=tuple(built[f] for f in spec.filters),
            scorers=scorers,
            picker=built[spec.picker],
            observers=observers,
        )
    return Router(profiles=profiles, default=settings.default_profile)
