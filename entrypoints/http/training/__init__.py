"""Training: photo sets (and, later, training jobs and models)."""
