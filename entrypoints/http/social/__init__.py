"""The social routes (issue #17)."""
