"""Learning from the assistant's history: the inbox of what it did not understand
(:mod:`xiaoer.learning.inbox`) and reply variants chosen by their outcomes
(:mod:`xiaoer.learning.variants`)."""
