"""Which engine a worker runs, built from its settings (the composition of the engine).

No profile: the fixed-delay engine. A profile: the batching model (``EngineCore``) with
that profile's step times and KV capacity, driven in real time by ``ModeledEngine``.
"""

from __future__ import annotations

from workers.sim.clock import Clock
from workers.sim.core import EngineCore
from workers.sim.engine import Engine, EngineObserver
from workers.sim.fixed_delay import FixedDelayConfig, FixedDelayEngine
from workers.sim.modeled import ModeledEngine
from workers.sim.profiles import Profile, ProfileError, ProfileRegistry, builtin_registry
from workers.sim.settings import SimSettings


def build_engine(
    settings: SimSettings,
    *,
    clock: Clock,
    observer: EngineObserver,
    profiles: ProfileRegistry | None = None,
) -> tuple[Engine, dict[str, str]]:
    """The engine ``settings`` ask for, and the labels of ``vllm:cache_config_info``."""
    if settings.profile is None:
        fixed = FixedDelayEngine(
            FixedDelayConfig(
                ttft_s=settings.ttft_s,
                token_delay_s=settings.token_delay_s,
                max_num_seqs=settings.max_num_seqs,
                natural_tokens=settings.output_tokens,
                max_model_len=settings.max_model_len,
            ),
            clock=clock,
            observer=observer,
        )
        return fixed, {}
    profile, num_blocks = resolve_profile(settings, profiles)
    config = settings.engine_config()
    core = EngineCore(
        config,
        num_blocks=num_blocks,
        max_model_len=profile.max_len(config),
        step_time=profile.step_time,
    )
    modeled = ModeledEngine(
        core, clock=clock, natural_tokens=settings.output_tokens, observer=observer
    )
    cache_info = {
        "block_size": str(config.block_size),
        "num_gpu_blocks": str(num_blocks),
        "gpu_memory_utilization": str(config.gpu_memory_utilization),
        "enable_prefix_caching": str(config.enable_prefix_caching),
        "cache_dtype": "auto",
    }
    return modeled, cache_info


def resolve_profile(
    settings: SimSettings, profiles: ProfileRegistry | None = None
) -> tuple[Profile, int]:
    """The profile ``settings`` name and its number of KV blocks; ``ProfileError`` (or
    ``OSError`` for an unreadable profile file) when it does not resolve or cannot hold
    one request of ``max_model_len`` tokens."""
    if settings.profile is None:
        raise ProfileError("no profile given")
    profiles = builtin_registry() if profiles is None else profiles
    if settings.profile_file is not None:
        profiles = profiles.with_file(settings.profile_file)
    profile = profiles.get(settings.profile)
    config = settings.engine_config()
    num_blocks = profile.num_blocks(config)
    if num_blocks * config.block_size < profile.max_len(config):
        raise ProfileError(
            f"profile {profile.name!r}: {num_blocks} KV blocks of {config.block_size} "
            f"tokens cannot hold one request of max_model_len={profile.max_len(config)}"
        )
    return profile, num_blocks
