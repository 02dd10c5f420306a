"""Channel-independent conversation services: typed buttons, the REST inbox."""
