"""Agent accounts: who may log into the console, their role, skill groups and shift.

Rows live in ``agents`` of ``xiaoer.db`` under the data folder. Passwords are stored as
argon2 hashes only; there is no default account: the first admin is created from the
command line (``xiaoer create-admin``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from xiaoer.core.clock import now_beijing
from xiaoer.core.config import get_settings

ROLES = ("agent", "admin")
DEFAULT_GROUPS = ("售前", "售后", "投诉")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
MIN_PASSWORD_CHARS = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL DEFAULT 'agent',
  groups_json TEXT NOT NULL DEFAULT '[]',
  on_shift INTEGER NOT NULL DEFAULT 1,
  active INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL
);
"""

_hasher = PasswordHasher()


class AgentError(ValueError):
    """Bad input for an agent account (the message is shown to the admin, in Chinese)."""


@dataclass(frozen=True)
class Agent:
    id: int
    username: str
    display_name: str
    role: str  # "agent" | "admin"
    groups: list[str] = field(default_factory=list)  # 售前 / 售后 / 投诉 (merchant-editable)
    on_shift: bool = True
    active: bool = True

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AgentError(f"密码至少 {MIN_PASSWORD_CHARS} 个字符")
    if password.strip() != password or password.isdigit() or password.isalpha():
        raise AgentError("密码需同时包含字母和数字（或符号），且首尾不能是空格")


class AgentStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=5)) as conn, conn:
            conn.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5)
        conn.row_factory = sqlite3.Row
        return conn

    @staticmethod
    def _row(row: sqlite3.Row) -> Agent:
        return Agent(
            id=row["id"],
            username=row["username"],
            display_name=row["display_name"],
            role=row["role"],
            groups=list(json.loads(row["groups_json"] or "[]")),
            on_shift=bool(row["on_shift"]),
            active=bool(row["active"]),
        )

    # --- reading -------------------------------------------------------------------
    def list_agents(self) -> list[Agent]:
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT * FROM agents ORDER BY id").fetchall()
        return [self._row(r) for r in rows]

    def get(self, agent_id: int) -> Agent | None:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)).fetchone()
        return self._row(row) if row else None

    def by_username(self, username: str) -> Agent | None:
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT * FROM agents WHERE username = ?", (username.strip(),)
            ).fetchone()
        return self._row(row) if row else None

    def count_admins(self) -> int:
        with closing(self._connect()) as conn:
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM agents WHERE role = 'admin' AND active = 1"
                ).fetchone()[0]
            )

    def on_shift(self, group: str | None = None) -> list[Agent]:
        """Active agents on shift (of ``group`` when given)."""
        return [
            a
            for a in self.list_agents()
            if a.active and a.on_shift and (group is None or group in a.groups)
        ]

    # --- changes -------------------------------------------------------------------
    def create(
        self,
        username: str,
        password: str,
        *,
        display_name: str = "",
        role: str = "agent",
        groups: list[str] | None = None,
        on_shift: bool = True,
    ) -> Agent:
        username = username.strip()
        if not USERNAME_RE.match(username):
            raise AgentError("用户名需为 3-32 位字母、数字、下划线、点或横线")
        if role not in ROLES:
            raise AgentError("角色只能是 agent（客服）或 admin（管理员）")
        check_password_rules(password)
        name = (display_name or username).strip()[:32]
        created = now_beijing().isoformat(timespec="seconds")
        try:
            with closing(self._connect()) as conn, conn:
                cur = conn.execute(
                    "INSERT INTO agents (username, display_name, password_hash, role, groups_json,"
                    " on_shift, active, created_at) VALUES (?,?,?,?,?,?,1,?)",
                    (
                        username,
                        name,
                        hash_password(password),
                        role,
                        json.dumps(list(groups or []), ensure_ascii=False),
                        int(on_shift),
                        created,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise AgentError(f"用户名 {username} 已存在") from exc
        agent = self.get(int(cur.lastrowid or 0))
        assert agent is not None
        return agent

    def update(
        self,
        agent_id: int,
        *,
        display_name: str | None = None,
        role: str | None = None,
        groups: list[str] | None = None,
        on_shift: bool | None = None,
        active: bool | None = None,
    ) -> Agent:
        current = self.get(agent_id)
        if current is None:
            raise AgentError("没有这个客服账号")
        if role is not None and role not in ROLES:
            raise AgentError("角色只能是 agent（客服）或 admin（管理员）")
        losing_admin = current.is_admin and (role == "agent" or active is False)
        if losing_admin and self.count_admins() <= 1:
            raise AgentError("至少要保留一个启用的管理员")
        fields = {
            "display_name": (display_name or "").strip()[:32] or None,
            "role": role,
            "groups_json": None if groups is None else json.dumps(groups, ensure_ascii=False),
            "on_shift": None if on_shift is None else int(on_shift),
            "active": None if active is None else int(active),
        }
        sets = {k: v for k, v in fields.items() if v is not None}
        if sets:
            with closing(self._connect()) as conn, conn:
                conn.execute(
                    f"UPDATE agents SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                    (*sets.values(), agent_id),
                )
        updated = self.get(agent_id)
        assert updated is not None
        return updated

    def set_password(self, agent_id: int, password: str) -> None:
        check_password_rules(password)
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "UPDATE agents SET password_hash = ? WHERE id = ?",
                (hash_password(password), agent_id),
            )

    def authenticate(self, username: str, password: str) -> Agent | None:
        """The active agent with these credentials, else None (same cost either way)."""
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT * FROM agents WHERE username = ?", (username.strip(),)
            ).fetchone()
        stored = row["password_hash"] if row else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or not row["active"]:
            return None
        if _hasher.check_needs_rehash(stored):
            with closing(self._connect()) as conn, conn:
                conn.execute(
                    "UPDATE agents SET password_hash = ? WHERE id = ?",
                    (hash_password(password), row["id"]),
                )
        return self._row(row)


_DUMMY_HASH = _hasher.hash("not-a-real-password-0")


def get_agent_store() -> AgentStore:
    """The store of the configured data folder (its schema is created once per process)."""
    return _store_at(get_settings().data_dir / "xiaoer.db")


@lru_cache(maxsize=8)
def _store_at(path: Path) -> AgentStore:
    return AgentStore(path)
