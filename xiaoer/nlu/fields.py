"""Names the NLU components put into a parse result, for code that reads them without
loading Rasa's graph (the actions: the action server must not import TensorFlow)."""

KEYWORD_INTENT = "complain"
KEYWORD_FIELD = "handoff_keyword"  # the merchant keyword that forced a human (keywords.py)
