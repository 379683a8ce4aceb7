"""Trust and safety (issue #17): reports, blocks, moderators' actions, account deletion."""
