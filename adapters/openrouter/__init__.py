"""OpenRouter (OpenAI-compatible chat completions): image captions with a vision model,
prompt enhancement with a text model.

``OpenRouterClient`` implements ``ports.ai.Captioner`` and ``ports.ai.PromptEnhancer``;
``base_url`` (OPENROUTER_BASE_URL) can point it at a stand-in.
"""

from genstudio.adapters.openrouter.client import DEFAULT_BASE_URL, OpenRouterClient

__all__ = ["DEFAULT_BASE_URL", "OpenRouterClient"]
