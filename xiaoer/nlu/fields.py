"""Names the NLU components put into a parse result, for code that reads them without
loading Rasa's graph (the actions: the action server must not import TensorFlow)."""

KEYWORD_INTENT = "complain"
KEYWORD_FIELD = "handoff_keyword"  # the merchant keyword that forced a human (keywords.py)
RULE_FIELD = "keyword_rule"  # the id of the keyword rule that matched (xiaoer/keywords)
NEGATED_FIELD = "negated"  # a handoff word the message only mentions negated
REPLY_INTENT = "keyword_reply"  # a keyword rule's preset reply
