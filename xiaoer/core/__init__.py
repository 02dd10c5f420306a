"""The shared core: configuration, clock, settings and the project database (``db``)."""
