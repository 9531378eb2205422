"""A simulated vLLM worker: the same OpenAI routes, SSE format and ``vllm:`` metrics as
vLLM's server, with a pluggable timing engine instead of a GPU.

Public surface: ``SimSettings``; the engine seam in ``workers.sim.engine``; the app
factory ``workers.sim.server.create_app``; the command ``workers.sim.cli.main``; the
batching model ``workers.sim.core.EngineCore`` with its profiles
(``workers.sim.profiles``); and virtual-time replay in ``workers.sim.replay``
(``simulate``, ``run_fleet``) with traces from ``workers.sim.trace``.
"""

from workers.sim.settings import SimSettings

__all__ = ["SimSettings"]
