"""Typed gateway settings, validated once at start-up.

Sources, highest precedence first: explicit overrides (command-line flags), environment
variables (``TIDEGATE_`` prefix, ``__`` between nested names, e.g.
``TIDEGATE_TIMEOUTS__CONNECT_S=1``), a YAML file, defaults. Unknown keys are errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from scheduler.config import SchedulerSettings
from scheduler.discovery.settings import KubernetesDiscoverySettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutSettings(_Section):
    connect_s: float = Field(3.0, gt=0, description="TCP connect to a worker")
    first_byte_s: float = Field(
        600.0,
        gt=0,
        description="until the worker's response starts (for streams: its first event)",
    )
    idle_stream_s: float = Field(120.0, gt=0, description="longest gap between stream events")


class DiscoverySettings(_Section):
    """Where the workers are: a static list (``workers``) or Kubernetes (``kubernetes``)."""

    workers: tuple[str, ...] = Field((), description="worker base URLs, e.g. http://10.0.0.5:8000")
    kubernetes: KubernetesDiscoverySettings | None = Field(
        None, description="watch the workers' EndpointSlices instead of a static list"
    )
    probe_interval_s: float = Field(1.0, gt=0)
    probe_timeout_s: float = Field(2.0, gt=0)
    stale_after_s: float = Field(5.0, gt=0, description="route only on probes younger than this")
    models_refresh_s: float = Field(30.0, gt=0)

    @field_validator("workers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return value

    @field_validator("workers")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = []
        for url in value:
            url = url.strip().rstrip("/")
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError(f"worker URL {url!r} must look like http://host:port")
            cleaned.append(url)
        return tuple(cleaned)

    @model_validator(mode="after")
    def _one_source(self) -> DiscoverySettings:
        if self.workers and self.kubernetes is not None:
            raise ValueError("give workers or kubernetes, not both")
        return self

    @property
    def configured(self) -> bool:
        """Whether a source of workers is given (start-up refuses to run without one)."""
        return bool(self.workers) or self.kubernetes is not None


class RetrySettings(_Section):
    max_attempts: int = Field(3, ge=1, le=10, description="workers tried before the first byte")
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with 503s")


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


class UpstreamSettings(_Section):
    """How a request is forwarded to its worker."""

    engine_priority: bool = Field(
        False,
        description="set the request body's `priority` to the engine priority of the "
        "request's class; only for workers run with vLLM's --scheduling-policy priority "
        "(vLLM rejects a non-zero priority under its default fcfs policy)",
    )


class RedisSettings(_Section):
    """The Redis server gateway replicas share state through; unset: all state in-process."""

    url: str = Field(description="redis://host:port/db, rediss://... or unix:///path")
    connect_timeout_s: float = Field(2.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(f"redis URL {value!r} must start with redis://, rediss:// or unix://")
        return value


class PrefixExchangeSettings(_Section):
    """Gateway replicas swap their routing decisions so each prefix index learns the others'
    (docs/routing.md, "Three gateway replicas"); asynchronous, never on the request path."""

    enabled: bool = False
    interval_s: float = Field(1.0, gt=0, description="how often a replica publishes a batch")
    channel: str = Field("tidegate:prefix-index", min_length=1, description="Redis channel")
    max_batch: int = Field(
        500, ge=1, description="records per published message, at most (same on every replica)"
    )
    buffer: int = Field(
        20_000, ge=1, description="records held for publishing; the oldest drop when full"
    )
    max_blocks: int = Field(4096, ge=1, description="blocks per record accepted from a peer")
    replica_id: str | None = Field(
        None, min_length=1, description="this replica's name on the channel; None draws one"
    )
    reconnect_max_s: float = Field(10.0, gt=0, description="longest wait between reconnects")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    graceful_shutdown_s: float = Field(
        30.0, gt=0, description="on SIGTERM, how long open requests and streams may finish"
    )


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIDEGATE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerSettings = ServerSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    timeouts: TimeoutSettings = TimeoutSettings()
    retries: RetrySettings = RetrySettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    admission: AdmissionSettings = AdmissionSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    redis: RedisSettings | None = None
    prefix_exchange: PrefixExchangeSettings = PrefixExchangeSettings()
    models: tuple[str, ...] = Field(
        (), description="models the gateway is meant to serve; empty means whatever workers offer"
    )
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    seed: int | None = Field(None, description="seed for tie-breaking; None draws one")

    @model_validator(mode="after")
    def _exchange_needs_redis(self) -> GatewaySettings:
        if self.prefix_exchange.enabled and self.redis is None:
            raise ValueError(
                "prefix_exchange.enabled needs a Redis server the replicas share: "
                "set redis.url (e.g. redis://redis:6379/0) or disable prefix_exchange"
            )
        return self


class SettingsError(Exception):
    """Settings failed validation; the message lists every problem, one a line."""


def load_settings(
    config_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> GatewaySettings:
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist")

    class _Sourced(GatewaySettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources = [init_settings, env_settings]
            if config_file is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
            return tuple(sources)

    try:
        loaded = _Sourced(**dict(overrides or {}))
    except ValidationError as exc:
        problems = [
            f"  {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise SettingsError("invalid gateway settings:\n" + "\n".join(problems)) from None
    return GatewaySettings.model_validate(loaded.model_dump())
