"""Read the engine gauges routing needs out of a vLLM ``/metrics`` page.

Only the lines of the gauges we use are handed to prometheus-client's parser: a vLLM page
holds hundreds of histogram lines and the gateway scrapes every worker every second.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from scheduler.endpoint import EngineStats

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
_WANTED = (RUNNING, WAITING, KV_CACHE_USAGE)


def parse_engine_stats(page: str) -> dict[str, EngineStats]:
    """Per ``model_name``: running and waiting summed over engines, KV use the highest."""
    lines = [line for line in page.splitlines() if line.startswith(_WANTED)]
    running: dict[str, float] = {}
    waiting: dict[str, float] = {}
    kv: dict[str, float] = {}
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for sample in family.samples:
            model = sample.labels.get("model_name", "")
            if sample.name == RUNNING:
                running[model] = running.get(model, 0.0) + sample.value
            elif sample.name == WAITING:
                waiting[model] = waiting.get(model, 0.0) + sample.value
            elif sample.name == KV_CACHE_USAGE:
                kv[model] = max(kv.get(model, 0.0), sample.value)
    models = running.keys() | waiting.keys() | kv.keys()
    return {
        m: EngineStats(
            running=running.get(m, 0.0), waiting=waiting.get(m, 0.0), kv_cache_usage=kv.get(m, 0.0)
        )
        for m in models
    }
