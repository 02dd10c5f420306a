"""Handoff requests: who wants a human, why, what the bot already knows, and who holds it.

A request goes ``waiting`` (in the queue of its skill group) -> ``active`` (an agent took
it; the bot is paused for that conversation) -> ``closed`` (handed back to the bot, or
closed). A conversation has at most one open (waiting or active) request. Rows live in
``handoff_requests`` of ``xiaoer.db`` under the data folder; older databases get the new
columns added on first use.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from xiaoer.core.clock import BEIJING, now_beijing
from xiaoer.core.config import get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS handoff_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  details TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'waiting',
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS handoff_by_status ON handoff_requests (status, created_at);
"""

# columns added after the first version (name, declaration)
EXTRA_COLUMNS = (
    ("priority", "INTEGER NOT NULL DEFAULT 0"),
    ("group_name", "TEXT NOT NULL DEFAULT ''"),
    ("intent", "TEXT NOT NULL DEFAULT ''"),
    ("summary_json", "TEXT NOT NULL DEFAULT '{}'"),
    ("agent_id", "INTEGER"),
    ("taken_at", "TEXT"),
    ("closed_at", "TEXT"),
    ("note", "TEXT NOT NULL DEFAULT ''"),
    ("in_hours", "INTEGER NOT NULL DEFAULT 1"),
    ("last_agent_reply_at", "TEXT"),
    ("announced_at", "TEXT"),
    ("announce_count", "INTEGER NOT NULL DEFAULT 0"),
    ("updated_at", "TEXT"),
)

OPEN = ("waiting", "active")


def _now() -> str:
    return now_beijing().isoformat(timespec="seconds")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=BEIJING)


@dataclass(frozen=True)
class HandoffRequest:
    id: int
    sender_id: str
    reason: str
    details: str
    status: str
    created_at: str
    priority: int = 0
    group_name: str = ""
    intent: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    agent_id: int | None = None
    taken_at: str | None = None
    closed_at: str | None = None
    note: str = ""
    in_hours: bool = True
    last_agent_reply_at: str | None = None
    announced_at: str | None = None
    announce_count: int = 0
    updated_at: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def waiting_seconds(self, now: datetime | None = None) -> int:
        created = parse_time(self.created_at)
        if created is None:
            return 0
        return max(0, int(((now or now_beijing()) - created).total_seconds()))


class HandoffStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.executescript(SCHEMA)
            have = {r[1] for r in conn.execute("PRAGMA table_info(handoff_requests)")}
            for name, decl in EXTRA_COLUMNS:
                if name not in have:
                    conn.execute(f"ALTER TABLE handoff_requests ADD COLUMN {name} {decl}")
            conn.execute(
                "CREATE INDEX IF NOT EXISTS handoff_by_sender ON handoff_requests (sender_id, status)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5)
        conn.row_factory = sqlite3.Row
        return conn

    @staticmethod
    def _row(row: sqlite3.Row) -> HandoffRequest:
        data = dict(row)
        summary = json.loads(data.pop("summary_json") or "{}")
        data["in_hours"] = bool(data["in_hours"])
        return HandoffRequest(summary=summary, **data)

    # --- the bot's side --------------------------------------------------------------
    def request(
        self,
        sender_id: str,
        reason: str,
        details: str = "",
        *,
        priority: int = 0,
        group: str = "",
        intent: str = "",
        summary: dict[str, Any] | None = None,
        in_hours: bool = True,
    ) -> HandoffRequest:
        """Record a request; a conversation has at most one open request.

        A second request for an open one raises its priority when needed and refreshes its
        summary, so the agent sees the latest state."""
        now = _now()
        with closing(self._connect()) as conn, conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT * FROM handoff_requests WHERE sender_id = ? AND status IN ('waiting','active')"
                " ORDER BY id DESC LIMIT 1",
                (sender_id,),
            ).fetchone()
            if row:
                conn.execute(
                    "UPDATE handoff_requests SET priority = MAX(priority, ?), updated_at = ?,"
                    " summary_json = CASE WHEN ? = '{}' THEN summary_json ELSE ? END"
                    " WHERE id = ?",
                    (
                        priority,
                        now,
                        *(2 * [json.dumps(summary or {}, ensure_ascii=False)]),
                        row["id"],
                    ),
                )
                fresh = conn.execute(
                    "SELECT * FROM handoff_requests WHERE id = ?", (row["id"],)
                ).fetchone()
                return self._row(fresh)
            cur = conn.execute(
                "INSERT INTO handoff_requests (sender_id, reason, details, created_at, priority,"
                " group_name, intent, summary_json, in_hours, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    sender_id,
                    reason,
                    details,
                    now,
                    priority,
                    group,
                    intent,
                    json.dumps(summary or {}, ensure_ascii=False),
                    int(in_hours),
                    now,
                ),
            )
            fresh = conn.execute(
                "SELECT * FROM handoff_requests WHERE id = ?", (cur.lastrowid,)
            ).fetchone()
            return self._row(fresh)

    def active_for(self, sender_id: str) -> HandoffRequest | None:
        """The open (waiting or taken) request of a conversation, if any."""
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT * FROM handoff_requests WHERE sender_id = ? AND status IN ('waiting','active')"
                " ORDER BY id DESC LIMIT 1",
                (sender_id,),
            ).fetchone()
        return self._row(row) if row else None

    # --- the queue -------------------------------------------------------------------
    def waiting(self, group: str | None = None) -> list[HandoffRequest]:
        """Waiting requests, highest priority first, then longest waiting."""
        return [r for r in self.open_requests(group) if r.status == "waiting"]

    def open_requests(self, group: str | None = None) -> list[HandoffRequest]:
        query = "SELECT * FROM handoff_requests WHERE status IN ('waiting','active')"
        args: tuple[Any, ...] = ()
        if group is not None:
            query += " AND group_name = ?"
            args = (group,)
        with closing(self._connect()) as conn:
            rows = conn.execute(query + " ORDER BY priority DESC, created_at, id", args).fetchall()
        return [self._row(r) for r in rows]

    def recent_closed(self, limit: int = 20) -> list[HandoffRequest]:
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT * FROM handoff_requests WHERE status = 'closed'"
                " ORDER BY closed_at DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [self._row(r) for r in rows]

    def get(self, request_id: int) -> HandoffRequest | None:
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT * FROM handoff_requests WHERE id = ?", (request_id,)
            ).fetchone()
        return self._row(row) if row else None

    def position(self, request: HandoffRequest) -> int:
        """How many waiting requests of the same group are served before this one."""
        ahead = 0
        for other in self.waiting(request.group_name):
            if other.id == request.id:
                break
            ahead += 1
        return ahead

    def revision(self) -> str:
        """Changes whenever the queue changes (cheap; polled by the console's live feed)."""
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT COUNT(*), MAX(id), MAX(updated_at), SUM(status = 'waiting')"
                " FROM handoff_requests"
            ).fetchone()
            open_rows = conn.execute(
                "SELECT id, status, agent_id, group_name, priority, updated_at"
                " FROM handoff_requests WHERE status IN ('waiting','active') ORDER BY id"
            ).fetchall()
        digest = hashlib.sha1(repr((tuple(row), [tuple(r) for r in open_rows])).encode())
        return digest.hexdigest()[:16]

    # --- the agents' side ------------------------------------------------------------
    def _update(self, request_id: int, where: str, args: tuple[Any, ...], **sets: Any) -> bool:
        sets["updated_at"] = _now()
        with closing(self._connect()) as conn, conn:
            cur = conn.execute(
                f"UPDATE handoff_requests SET {', '.join(f'{k} = ?' for k in sets)}"
                f" WHERE id = ? AND {where}",
                (*sets.values(), request_id, *args),
            )
            return cur.rowcount == 1

    def take(self, request_id: int, agent_id: int) -> bool:
        """An agent takes a waiting request (or one they already hold)."""
        return self._update(
            request_id,
            "(status = 'waiting' OR (status = 'active' AND agent_id = ?))",
            (agent_id,),
            status="active",
            agent_id=agent_id,
            taken_at=_now(),
        )

    def reassign(
        self, request_id: int, *, group: str | None = None, agent_id: int | None = None
    ) -> bool:
        """A supervisor moves an open request to another group (back to its queue) or
        straight to an agent."""
        sets: dict[str, Any] = {}
        if group is not None:
            sets["group_name"] = group
        if agent_id is not None:
            sets.update(status="active", agent_id=agent_id, taken_at=_now())
        elif group is not None:
            sets.update(status="waiting", agent_id=None, taken_at=None)
        if not sets:
            return False
        return self._update(request_id, "status IN ('waiting','active')", (), **sets)

    def agent_replied(self, request_id: int) -> None:
        self._update(request_id, "1 = 1", (), last_agent_reply_at=_now())

    def close(self, request_id: int, note: str = "") -> bool:
        """Hand back to the bot (or close): the request leaves the queue."""
        return self._update(
            request_id,
            "status IN ('waiting','active')",
            (),
            status="closed",
            closed_at=_now(),
            note=note[:1000],
        )

    def unanswered(self, after_seconds: float) -> list[HandoffRequest]:
        """Open requests in hours whose customer has heard nothing from a human (nor an
        announcement) for ``after_seconds``."""
        now = now_beijing()
        due: list[HandoffRequest] = []
        for r in self.open_requests():
            if not r.in_hours:
                continue
            last = max(
                t
                for t in (
                    parse_time(r.created_at),
                    parse_time(r.last_agent_reply_at),
                    parse_time(r.announced_at),
                )
                if t is not None
            )
            if (now - last).total_seconds() >= after_seconds:
                due.append(r)
        return due

    def mark_announced(self, request_id: int) -> None:
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "UPDATE handoff_requests SET announced_at = ?, announce_count = announce_count + 1,"
                " updated_at = ? WHERE id = ?",
                (_now(), _now(), request_id),
            )

    def mark_in_hours(self, request_id: int) -> None:
        self._update(request_id, "1 = 1", (), in_hours=1)


def get_handoff_store() -> HandoffStore:
    """The store of the configured data folder (its schema is created once per process)."""
    return _store_at(get_settings().data_dir / "xiaoer.db")


@lru_cache(maxsize=8)
def _store_at(path: Path) -> HandoffStore:
    return HandoffStore(path)
