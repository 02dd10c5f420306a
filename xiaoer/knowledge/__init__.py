"""The knowledge base (知识库): the merchant's questions and answers (docs/knowledge.md)."""

from xiaoer.knowledge.answers import answer_for, describe
from xiaoer.knowledge.store import Entry, KnowledgeError, KnowledgeStore, get_knowledge_store

__all__ = [
    "Entry",
    "KnowledgeError",
    "KnowledgeStore",
    "answer_for",
    "describe",
    "get_knowledge_store",
]
