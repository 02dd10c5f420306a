"""What the agents know about a customer across conversations: the nickname (from Douyin
events), the merchant's tags (defined in 设置, usable as segments) and a note that stays
with the customer from one handoff to the next. Rows live in ``customer_profiles``,
keyed by the conversation id (``rest:<sender>`` / the Douyin open id)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Column, Table, Text, or_, select

from xiaoer.core.clock import now_beijing
from xiaoer.core.db import Database, database_for, metadata

MAX_NOTE_CHARS = 2000
MAX_NICKNAME_CHARS = 40

customer_profiles = Table(
    "customer_profiles",
    metadata,
    Column("sender_id", Text, primary_key=True),
    Column("nickname", Text, nullable=False, server_default=""),
    Column("tags_json", Text, nullable=False, server_default="[]"),
    Column("note", Text, nullable=False, server_default=""),
    Column("updated_at", Text, nullable=False),
    Column("updated_by", Text, nullable=False, server_default=""),
)
_t = customer_profiles


@dataclass(frozen=True)
class CustomerProfile:
    sender_id: str
    nickname: str = ""
    tags: list[str] = field(default_factory=list)
    note: str = ""
    updated_at: str = ""
    updated_by: str = ""


def customer_tags() -> list[str]:
    """The merchant's tags (设置 → 客户标签)."""
    from xiaoer.core.settings import get_settings_store

    saved = get_settings_store().overrides().get("customer_tags")
    if isinstance(saved, list):
        return [str(t) for t in saved if str(t).strip()]
    return ["老客户", "VIP", "批发", "易投诉"]


class CustomerStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    @staticmethod
    def _profile(row: object) -> CustomerProfile:
        data = dict(row._mapping)  # type: ignore[attr-defined]
        tags = json.loads(data.pop("tags_json") or "[]")
        return CustomerProfile(tags=tags, **data)

    def get(self, sender_id: str) -> CustomerProfile:
        with self.db.connect() as conn:
            row = conn.execute(select(_t).where(_t.c.sender_id == sender_id)).first()
        return self._profile(row) if row else CustomerProfile(sender_id)

    def many(self, sender_ids: list[str]) -> dict[str, CustomerProfile]:
        if not sender_ids:
            return {}
        with self.db.connect() as conn:
            rows = conn.execute(select(_t).where(_t.c.sender_id.in_(sender_ids))).all()
        return {r.sender_id: self._profile(r) for r in rows}

    def _save(self, sender_id: str, by: str, **values: object) -> None:
        row = {"sender_id": sender_id, "updated_at": now_beijing().isoformat(), "updated_by": by}
        with self.db.begin() as conn:
            self.db.upsert(
                conn, _t, {**row, **values}, ["sender_id"], [*values, "updated_at", "updated_by"]
            )

    def set_nickname(self, sender_id: str, nickname: str) -> None:
        nickname = nickname.strip()[:MAX_NICKNAME_CHARS]
        if nickname and self.get(sender_id).nickname != nickname:
            self._save(sender_id, "", nickname=nickname)

    def update(self, sender_id: str, by: str, *, tags: list[str], note: str) -> CustomerProfile:
        """An agent saves the customer's tags (only the merchant's) and note."""
        allowed = customer_tags()
        kept = [t for t in dict.fromkeys(tags) if t in allowed]
        self._save(
            sender_id,
            by,
            tags_json=json.dumps(kept, ensure_ascii=False),
            note=note.strip()[:MAX_NOTE_CHARS],
        )
        return self.get(sender_id)

    def search(self, query: str, limit: int = 50) -> list[CustomerProfile]:
        like = f"%{query}%"
        with self.db.connect() as conn:
            rows = conn.execute(
                select(_t)
                .where(
                    or_(_t.c.nickname.like(like), _t.c.note.like(like), _t.c.tags_json.like(like))
                )
                .limit(limit)
            ).all()
        return [self._profile(r) for r in rows]

    def with_tag(self, tag: str) -> list[str]:
        """The customers carrying a tag (a segment)."""
        needle = json.dumps(tag, ensure_ascii=False)
        with self.db.connect() as conn:
            rows = conn.execute(select(_t).where(_t.c.tags_json.like(f"%{needle}%"))).all()
        return [r.sender_id for r in rows if tag in self._profile(r).tags]


def get_customer_store() -> CustomerStore:
    return CustomerStore()
