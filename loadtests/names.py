"""How the load test's measurements are named in Locust's statistics.

Each row of Locust's tables, charts and CSVs is a (type, name) pair. Requests are ``POST``
rows; the stream measurements have their own types, so ``TTFT`` and ``ITL`` get their own
percentiles beside end-to-end latency. Sizes are tokens, as the server's ``usage`` counts
them: a request row's (and a per-stream ITL row's) "average size" is completion tokens, a
TTFT row's is prompt tokens.
"""

from __future__ import annotations

REQUEST = "POST"
TTFT = "TTFT"
ITL = "ITL"
CHAT = "chat"
CHAT_STREAM = "chat stream"

METRIC_TYPES = {"e2e": REQUEST, "ttft": TTFT, "itl": ITL}
"""SLO metric -> the Locust row type whose histogram it reads."""
