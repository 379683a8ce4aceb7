"""Telling the user (issue #18): notifications written with what caused them
(``emit``), the push outbox delivered at least once (``delivery``), and the user's
side: preferences, the inbox, push tokens (``settings``)."""
