"""Developer tooling: local stacks, private services, the scale-out profile on one machine."""
