"""Keyword rules (关键词回复): preset replies and forced handoffs, applied before the model.

``store``: the rules (table ``keyword_rules``), validation, the one-time migration of the
old handoff keywords; ``matching``: which rule a message triggers and why, with negation.
"""

from xiaoer.keywords.matching import Explanation, Match, explain, match, negated
from xiaoer.keywords.store import KeywordRule, KeywordRuleStore, RuleError, get_keyword_store

__all__ = [
    "Explanation",
    "KeywordRule",
    "KeywordRuleStore",
    "Match",
    "RuleError",
    "explain",
    "get_keyword_store",
    "match",
    "negated",
]
