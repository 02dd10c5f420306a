"""Proactive notifications to buyers: the outbox and its sender."""
