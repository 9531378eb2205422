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

from gateway.admission_settings import AdmissionSettings
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
