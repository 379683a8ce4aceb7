"""OpenAI's moderation endpoint behind the Classifier port (off unless configured)."""

from genstudio.adapters.openai_moderation.client import OpenAIModerationClassifier

__all__ = ["OpenAIModerationClassifier"]
