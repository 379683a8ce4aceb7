"""Reports, blocks, moderators' actions and account deletion over HTTP (issue #17)."""
