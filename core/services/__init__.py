"""Use cases: plain async functions over ports."""
