"""Run a real vLLM OpenAI server as a Tidegate worker, with graceful drain.

``tidegate worker`` builds vLLM's command line from typed settings, starts it, forwards
signals, and on SIGTERM drains: the worker answers not-ready at once, new requests get 503
(the gateway retries them elsewhere), in-flight ones finish up to a grace period, then vLLM
stops. Its exit status is vLLM's.

Public surface: ``VllmWorkerSettings``; ``vllm_command`` and ``vllm_environment``
(``workers.vllm.command``); the drain policy (``workers.vllm.drain``); the ASGI middleware
loaded into vLLM (``workers.vllm.middleware.DrainMiddleware``); the command
``workers.vllm.cli.main``. Nothing here imports vLLM itself: it runs in its own process.
"""

from workers.vllm.settings import VllmWorkerSettings

__all__ = ["VllmWorkerSettings"]
