"""The small shared core: configuration, the clock, the merchant's settings, the project database (``db``), security."""
