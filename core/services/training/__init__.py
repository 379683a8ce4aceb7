"""Use cases of personal models: photo sets (and, later, training)."""
