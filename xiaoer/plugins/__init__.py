"""Rasa plug-ins (lock store)."""
