"""The knowledge base (知识库): the merchant's questions and answers (docs/knowledge.md).

``describe`` and ``answer_for`` (xiaoer/knowledge/answers.py), the store
(xiaoer/knowledge/store.py). Loaded lazily: importing the package (e.g. for the ``xiaoer kb``
command's parser) does not declare the knowledge base's tables.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Entry",
    "KnowledgeError",
    "KnowledgeStore",
    "answer_for",
    "describe",
    "get_knowledge_store",
]


def __getattr__(name: str) -> Any:
    if name in ("answer_for", "describe"):
        from xiaoer.knowledge import answers

        return getattr(answers, name)
    if name in ("Entry", "KnowledgeError", "KnowledgeStore", "get_knowledge_store"):
        from xiaoer.knowledge import store

        return getattr(store, name)
    raise AttributeError(f"module 'xiaoer.knowledge' has no attribute {name!r}")
