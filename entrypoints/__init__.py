"""Composition roots: the HTTP app, the worker, the CLI, and the containers wiring them."""
