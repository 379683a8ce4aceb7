"""Moderation's use cases: layered classifiers, the policy's decision, strikes."""
