"""The worker-configuration tuner (``tidegate tune``): which GPU, tensor-parallel degree,
vLLM batching limits and replica count serve a trace within a latency SLO for the fewest
dollars, found by replaying the trace over simulated fleets in virtual time.

``space`` (what is swept, what vLLM would refuse), ``fleet`` (one replay), ``outcome``
(percentiles, goodput), ``pareto`` (front, recommendation, verdicts: pure), ``search``
(brute force, bisection with cost bounds), ``prices`` (cited defaults), ``report`` (table,
JSON lines, PNG), ``tuner`` (settings to report), ``cli``, ``daytrace`` (a day-long trace
from a daily rate curve).
"""
