"""Callbacks to producers: the outbox of events, its dispatcher, and the outbound address policy."""
