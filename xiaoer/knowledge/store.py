"""The knowledge base (知识库): entries of a standard question, similar phrasings, an answer.

One table, ``kb_entries``, on the project database. An entry's key (``kb<id>``) names its
retrieval intent ``faq/kb<id>``: the model learns the questions at training time
(:mod:`xiaoer.knowledge.training_data`), while the answer, the image, the buttons and the
on/off switch are read from this table when the bot answers (``action_kb_answer``), so an
edit is live at once, without retraining.

An entry is identified for imports by its standard question (normalised: width, case,
Traditional/Simplified, punctuation and spaces ignored) and its product scope: the same
question may have one answer per product.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Column, Integer, Table, Text, UniqueConstraint, select

from xiaoer.core.db import Database, database_for, metadata
from xiaoer.text.normalize import normalize_text

kb_entries = Table(
    "kb_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("question", Text, nullable=False),
    # the standard question normalised (match_key): what an import matches entries by
    Column("question_key", Text, nullable=False),
    # product id of the scope ("" = every product)
    Column("product", Text, nullable=False, server_default=""),
    Column("phrasings", Text, nullable=False, server_default="[]"),  # JSON list of str
    Column("answer", Text, nullable=False),
    Column("image_url", Text, nullable=False, server_default=""),
    Column("buttons", Text, nullable=False, server_default="[]"),  # JSON [{title, payload}]
    Column("category", Text, nullable=False, server_default=""),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("updated_by", Text, nullable=False, server_default=""),
    UniqueConstraint("question_key", "product"),
)

KEY_PREFIX = "kb"
RETRIEVAL_INTENT = "faq"

_STRIP = re.compile(r"[\s\W_]+", re.UNICODE)


def match_key(text: str) -> str:
    """The text as entries and examples are compared: normalised (full width, case,
    Traditional Chinese), without punctuation, spaces or emoji."""
    norm = normalize_text(unicodedata.normalize("NFKC", text or ""))
    return _STRIP.sub("", norm)


def entry_key(entry_id: int) -> str:
    return f"{KEY_PREFIX}{entry_id}"


def parse_key(value: str) -> int | None:
    """The entry id of ``kb12``, ``faq/kb12`` or ``utter_faq/kb12`` (None otherwise)."""
    tail = (value or "").rsplit("/", 1)[-1]
    if tail.startswith(KEY_PREFIX) and tail[len(KEY_PREFIX) :].isdigit():
        return int(tail[len(KEY_PREFIX) :])
    return None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Button:
    title: str
    payload: str

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass
class Entry:
    """One knowledge-base entry."""

    question: str
    answer: str
    phrasings: list[str] = field(default_factory=list)
    product: str = ""
    category: str = ""
    image_url: str = ""
    buttons: list[Button] = field(default_factory=list)
    enabled: bool = True
    id: int | None = None
    created_at: str = ""
    updated_at: str = ""
    updated_by: str = ""

    @property
    def key(self) -> str:
        if self.id is None:
            raise ValueError("an entry that is not stored has no key")
        return entry_key(self.id)

    @property
    def intent(self) -> str:
        """Its retrieval intent, e.g. ``faq/kb12``."""
        return f"{RETRIEVAL_INTENT}/{self.key}"

    @property
    def question_key(self) -> str:
        return match_key(self.question)

    def examples(self) -> list[str]:
        """The question and its phrasings, without repeats (normalised)."""
        seen: set[str] = set()
        out: list[str] = []
        for text in [self.question, *self.phrasings]:
            k = match_key(text)
            if k and k not in seen:
                seen.add(k)
                out.append(text.strip())
        return out

    def content(self) -> tuple[Any, ...]:
        """What an import compares to decide "unchanged"."""
        return (
            self.question.strip(),
            tuple(p.strip() for p in self.phrasings),
            self.answer.strip(),
            self.product,
            self.category.strip(),
            self.image_url.strip(),
            tuple(self.buttons),
            self.enabled,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key if self.id is not None else None,
            "intent": self.intent if self.id is not None else None,
            "question": self.question,
            "phrasings": list(self.phrasings),
            "answer": self.answer,
            "product": self.product,
            "category": self.category,
            "image_url": self.image_url,
            "buttons": [b.as_dict() for b in self.buttons],
            "enabled": self.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            "edit_url": f"/knowledge/{self.id}" if self.id is not None else None,
        }


def _row_to_entry(row: Any) -> Entry:
    return Entry(
        id=int(row.id),
        question=row.question,
        answer=row.answer,
        phrasings=[str(p) for p in json.loads(row.phrasings or "[]")],
        product=row.product or "",
        category=row.category or "",
        image_url=row.image_url or "",
        buttons=[
            Button(str(b["title"]), str(b["payload"])) for b in json.loads(row.buttons or "[]")
        ],
        enabled=bool(row.enabled),
        created_at=row.created_at,
        updated_at=row.updated_at,
        updated_by=row.updated_by or "",
    )


def _values(entry: Entry) -> dict[str, Any]:
    return {
        "question": entry.question.strip(),
        "question_key": entry.question_key,
        "product": entry.product,
        "phrasings": json.dumps([p.strip() for p in entry.phrasings], ensure_ascii=False),
        "answer": entry.answer.strip(),
        "image_url": entry.image_url.strip(),
        "buttons": json.dumps([b.as_dict() for b in entry.buttons], ensure_ascii=False),
        "category": entry.category.strip(),
        "enabled": bool(entry.enabled),
    }


class KnowledgeError(ValueError):
    """An entry cannot be saved as it is (the message is Simplified Chinese, for merchants)."""


class KnowledgeStore:
    """The entries of the knowledge base."""

    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    # --- reading ---------------------------------------------------------------------------
    def all(self, *, enabled_only: bool = False) -> list[Entry]:
        stmt = select(kb_entries).order_by(kb_entries.c.id)
        if enabled_only:
            stmt = stmt.where(kb_entries.c.enabled.is_(True))
        with self.db.connect() as conn:
            return [_row_to_entry(r) for r in conn.execute(stmt)]

    def get(self, entry_id: int) -> Entry | None:
        with self.db.connect() as conn:
            row = conn.execute(select(kb_entries).where(kb_entries.c.id == entry_id)).first()
        return _row_to_entry(row) if row else None

    def by_key(self, key: str) -> Entry | None:
        entry_id = parse_key(key)
        return self.get(entry_id) if entry_id is not None else None

    def search(self, query: str = "", category: str = "") -> list[Entry]:
        """Entries whose question, phrasings or answer contain ``query`` (normalised), in
        ``category`` when given."""
        wanted = match_key(query)
        out = []
        for entry in self.all():
            if category and entry.category != category:
                continue
            if wanted and not any(
                wanted in match_key(t) for t in [entry.question, entry.answer, *entry.phrasings]
            ):
                continue
            out.append(entry)
        return out

    def categories(self) -> list[str]:
        with self.db.connect() as conn:
            rows = conn.execute(select(kb_entries.c.category).distinct())
            return sorted(r[0] for r in rows if r[0])

    def fingerprint(self) -> str:
        """Hash of what the model learns from the knowledge base (enabled entries' keys and
        examples): equal fingerprints need no retraining."""
        digest = hashlib.sha256()
        for entry in self.all(enabled_only=True):
            digest.update(json.dumps([entry.key, entry.examples()], ensure_ascii=False).encode())
        return digest.hexdigest()[:16]

    # --- writing ---------------------------------------------------------------------------
    def check(self, entry: Entry) -> None:
        """The checks of one entry saved from the console (KnowledgeError)."""
        if not entry.question.strip():
            raise KnowledgeError("问题不能为空")
        if not entry.answer.strip():
            raise KnowledgeError("答案不能为空")
        from xiaoer.knowledge.collisions import CollisionIndex

        index = CollisionIndex.build(self.all(), skip_id=entry.id)
        clashes = index.collisions(entry)
        if clashes:
            raise KnowledgeError("；".join(c.message() for c in clashes))

    def save(self, entry: Entry, by: str = "") -> Entry:
        """Add (``entry.id`` None) or update an entry after :meth:`check`."""
        self.check(entry)
        with self.db.begin() as conn:
            saved = self._write(conn, entry, by)
        return saved

    def _write(self, conn: Any, entry: Entry, by: str) -> Entry:
        now = now_iso()
        values = {**_values(entry), "updated_at": now, "updated_by": by}
        if entry.id is None:
            values["created_at"] = now
            entry.id = int(
                conn.execute(kb_entries.insert().values(**values)).inserted_primary_key[0]
            )
            entry.created_at = now
        else:
            result = conn.execute(
                kb_entries.update().where(kb_entries.c.id == entry.id).values(**values)
            )
            if result.rowcount != 1:
                raise KnowledgeError(f"条目 {entry.id} 不存在")
        entry.updated_at, entry.updated_by = now, by
        return entry

    def set_enabled(self, entry_id: int, enabled: bool, by: str = "") -> bool:
        with self.db.begin() as conn:
            result = conn.execute(
                kb_entries.update()
                .where(kb_entries.c.id == entry_id)
                .values(enabled=enabled, updated_at=now_iso(), updated_by=by)
            )
        return bool(result.rowcount == 1)

    def write_many(self, entries: Sequence[Entry], by: str = "") -> None:
        """Add or update ``entries`` in ONE transaction (an import): all or nothing."""
        with self.db.begin() as conn:
            for entry in entries:
                self._write(conn, entry, by)

    def delete(self, entry_id: int) -> bool:
        with self.db.begin() as conn:
            return bool(
                conn.execute(kb_entries.delete().where(kb_entries.c.id == entry_id)).rowcount
            )

    def clear(self) -> int:
        with self.db.begin() as conn:
            return int(conn.execute(kb_entries.delete()).rowcount)


def get_knowledge_store() -> KnowledgeStore:
    return KnowledgeStore()


def entries_by_key(entries: Iterable[Entry]) -> dict[str, Entry]:
    return {e.key: e for e in entries}
