"""The admission section of the gateway's settings: when requests are held, shed or let
through, and which models may scale to zero (their requests held while no replica is
ready). Validated at load with the rest (``gateway.settings``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeldModel(_Section):
    """One model scaled to zero; unset fields take the section's values."""

    hold_timeout_s: float | None = Field(
        None, gt=0, description="longest a request waits for this model's first replica"
    )


class ScaleToZeroSettings(_Section):
    """Models allowed to run no replica at all: their requests are held while none is
    healthy (the autoscaler sees them and starts one) instead of being answered 503.

    ``models`` is a list of names or a mapping of name to per-model settings."""

    models: dict[str, HeldModel] = Field(
        default_factory=dict, description="models held for while they have no healthy worker"
    )
    hold_timeout_s: float = Field(
        120.0, gt=0, description="longest a request waits for a replica to become ready"
    )
    retry_after_s: int = Field(10, ge=1, description="Retry-After sent when the hold times out")

    @field_validator("models", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            value = {name: {} for name in value}
        if isinstance(value, dict):
            value = {
                str(name).strip(): {} if held is None else held for name, held in value.items()
            }
            if "" in value:
                raise ValueError("model names must not be empty")
        return value

    def hold_timeout(self, model: str) -> float | None:
        """How long to hold ``model``'s requests for a replica; None: not scaled to zero."""
        held = self.models.get(model)
        if held is None:
            return None
        return held.hold_timeout_s if held.hold_timeout_s is not None else self.hold_timeout_s


class AdmissionSettings(_Section):
    """When requests are held, shed or let through (docs/routing.md, Admission)."""

    enabled: bool = True
    queue_threshold: float = Field(8.0, gt=0, description="waiting requests that fill a worker")
    kv_threshold: float = Field(0.95, gt=0, le=1, description="KV-cache use that fills a worker")
    max_running_per_worker: int | None = Field(
        None,
        ge=1,
        description="requests a worker may run before the gate holds the rest; set it a "
        "little below the engines' max_num_seqs (counts our queueing the probes have not seen)",
    )
    priority_headroom: dict[int, int] = Field(
        default_factory=lambda: {2: 32},
        description="priority value -> requests per worker a request of at least that "
        "priority may run beyond max_running_per_worker (no effect while that is unset)",
    )
    slots_only_at_or_above: int | None = Field(
        None,
        description="priority value from which requests are admitted on free slots alone "
        "(max_running_per_worker plus headroom), whatever the engines' queues and KV use; "
        "for engines run with --scheduling-policy priority and upstream.engine_priority on",
    )
    max_prefill_tokens_per_worker: int | None = Field(
        None,
        ge=1,
        description="prompt tokens a worker may have waiting for their first token (sent "
        "by this gateway, no first token back yet) before it counts as full, for every "
        "priority: the gate holds requests while every worker is over it and routing skips "
        "the workers that are; unset: no bound",
    )
    max_queue: int = Field(1000, ge=1, description="requests held per model, at most")
    max_wait_s: float = Field(30.0, gt=0, description="longest a request is held")
    ttft_slo_s: float = Field(10.0, gt=0, description="shed when the predicted wait exceeds it")
    priority_header: str = "x-priority"
    tenant_header: str = "x-tenant"
    priorities: dict[str, int] = Field(
        default_factory=lambda: {"critical": 2, "standard": 1, "sheddable": 0}
    )
    default_priority: str = "standard"
    shed_at_or_below: int = Field(0, description="priorities shed at once when saturated")
    scale_to_zero: ScaleToZeroSettings = ScaleToZeroSettings()

    @model_validator(mode="after")
    def _default_priority_exists(self) -> AdmissionSettings:
        if self.default_priority not in self.priorities:
            known = ", ".join(sorted(self.priorities))
            raise ValueError(f"default_priority {self.default_priority!r} is not one of {known}")
        return self

    @model_validator(mode="after")
    def _headroom_for_known_priorities(self) -> AdmissionSettings:
        values = set(self.priorities.values())
        known = ", ".join(f"{n}={v}" for n, v in sorted(self.priorities.items()))
        for priority, extra in self.priority_headroom.items():
            if priority not in values:
                raise ValueError(
                    f"priority_headroom names priority {priority}, which is not a value of "
                    f"admission.priorities ({known}); key it by one of those values"
                )
            if extra < 0:
                raise ValueError(
                    f"priority_headroom for priority {priority} is {extra}; it must be >= 0"
                )
        slots_only = self.slots_only_at_or_above
        if slots_only is not None and slots_only not in values:
            raise ValueError(
                f"slots_only_at_or_above is {slots_only}, which is not a value of "
                f"admission.priorities ({known})"
            )
        return self

    @model_validator(mode="after")
    def _holding_needs_admission(self) -> AdmissionSettings:
        if self.scale_to_zero.models and not self.enabled:
            raise ValueError(
                "scale_to_zero holds requests through admission control: "
                "set admission.enabled to true or list no scale_to_zero models"
            )
        return self
