from scheduler.endpoint import EngineStats
from scheduler.vllm_metrics import parse_engine_stats

PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
vllm:num_requests_running{engine="1",model_name="llama"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 4.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 1.0
vllm:num_requests_waiting{engine="0",model_name="qwen"} 7.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="llama"} 0.5
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="llama"} 0.0
vllm:num_requests_running_extra{model_name="llama"} 99.0
"""


def test_sums_queues_over_engines_and_takes_highest_kv_use():
    stats = parse_engine_stats(PAGE)
    assert stats["llama"] == EngineStats(running=5.0, waiting=5.0, kv_cache_usage=0.5)
    assert stats["qwen"] == EngineStats(running=0.0, waiting=7.0, kv_cache_usage=0.0)


def test_empty_or_foreign_page_gives_no_stats():
    assert parse_engine_stats("") == {}
    assert parse_engine_stats("process_cpu_seconds_total 1.0\n") == {}
