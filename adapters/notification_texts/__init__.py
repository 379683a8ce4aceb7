"""Notification texts: templates per event kind and language (English, German,
Spanish), rendered at the edge from a notification's kind, data and count."""

from genstudio.adapters.notification_texts.templates import TemplateTexts

__all__ = ["TemplateTexts"]
