"""The small shared core: configuration, the clock, the merchant's settings, persistence, security."""
