"""The social side's use cases (issue #17): profiles, publishing, feed, reactions."""
