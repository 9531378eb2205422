"""A tiny random-weight Llama checkpoint, built locally, for running real vLLM without
downloading a model: deterministic, a few MB, built in seconds.

Public surface: ``TinyModelRecipe`` and ``DEFAULT_DIR`` (``workers.tinymodel.recipe``),
``ensure_tiny_model`` (``workers.tinymodel.build``, imports torch and transformers), and the
command ``workers.tinymodel.cli.main``.
"""

from workers.tinymodel.recipe import DEFAULT_DIR, TinyModelRecipe

__all__ = ["DEFAULT_DIR", "TinyModelRecipe"]
