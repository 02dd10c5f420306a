"""Agent accounts: who may log into the console, their role, skill groups and shift.

Rows live in ``agents`` of the project database (:mod:`xiaoer.core.db`); their console
logins in ``console_sessions`` (:mod:`xiaoer.console.web`). Passwords are stored as
argon2 hashes only; there is no default account: the first admin is created from the
command line (``xiaoer create-admin``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Column, Integer, Table, Text, func, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from xiaoer.core.clock import now_beijing
from xiaoer.core.db import Database, database_for, metadata

ROLES = ("agent", "admin")
DEFAULT_GROUPS = ("售前", "售后", "投诉")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
MIN_PASSWORD_CHARS = 10

agents = Table(
    "agents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", Text, nullable=False, unique=True),
    Column("display_name", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False, server_default="agent"),
    Column("groups_json", Text, nullable=False, server_default="[]"),
    Column("on_shift", Integer, nullable=False, server_default="1"),
    Column("active", Integer, nullable=False, server_default="1"),
    Column("created_at", Text, nullable=False),
    sqlite_autoincrement=True,
)
_t = agents

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
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    @staticmethod
    def _row(row: Row) -> Agent:
        return Agent(
            id=row.id,
            username=row.username,
            display_name=row.display_name,
            role=row.role,
            groups=list(json.loads(row.groups_json or "[]")),
            on_shift=bool(row.on_shift),
            active=bool(row.active),
        )

    def _one(self, condition: Any) -> Row | None:
        with self.db.connect() as conn:
            return conn.execute(select(_t).where(condition)).first()

    # --- reading -------------------------------------------------------------------
    def list_agents(self) -> list[Agent]:
        with self.db.connect() as conn:
            rows = conn.execute(select(_t).order_by(_t.c.id)).all()
        return [self._row(r) for r in rows]

    def get(self, agent_id: int) -> Agent | None:
        row = self._one(_t.c.id == agent_id)
        return self._row(row) if row else None

    def by_username(self, username: str) -> Agent | None:
        row = self._one(_t.c.username == username.strip())
        return self._row(row) if row else None

    @staticmethod
    def _count_admins(conn: Connection, lock: bool = False) -> int:
        query = select(_t.c.id).where(_t.c.role == "admin", _t.c.active == 1)
        if lock:  # PostgreSQL: hold the admins' rows until the change commits
            return len(conn.execute(query.with_for_update()).all())
        return int(conn.execute(select(func.count()).select_from(query.subquery())).scalar_one())

    def count_admins(self) -> int:
        with self.db.connect() as conn:
            return self._count_admins(conn)

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
            with self.db.begin() as conn:
                result = conn.execute(
                    _t.insert().values(
                        username=username,
                        display_name=name,
                        password_hash=hash_password(password),
                        role=role,
                        groups_json=json.dumps(list(groups or []), ensure_ascii=False),
                        on_shift=int(on_shift),
                        active=1,
                        created_at=created,
                    )
                )
        except IntegrityError as exc:
            raise AgentError(f"用户名 {username} 已存在") from exc
        agent = self.get(int(result.inserted_primary_key[0]))
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
        fields = {
            "display_name": (display_name or "").strip()[:32] or None,
            "role": role,
            "groups_json": None if groups is None else json.dumps(groups, ensure_ascii=False),
            "on_shift": None if on_shift is None else int(on_shift),
            "active": None if active is None else int(active),
        }
        sets = {k: v for k, v in fields.items() if v is not None}
        # one transaction: two admins demoting each other at once still leave one admin
        with self.db.begin() as conn:
            current = conn.execute(select(_t).where(_t.c.id == agent_id)).first()
            if current is None:
                raise AgentError("没有这个客服账号")
            if role is not None and role not in ROLES:
                raise AgentError("角色只能是 agent（客服）或 admin（管理员）")
            losing_admin = current.role == "admin" and (role == "agent" or active is False)
            if losing_admin and self._count_admins(conn, lock=True) <= 1:
                raise AgentError("至少要保留一个启用的管理员")
            if sets:
                conn.execute(_t.update().where(_t.c.id == agent_id).values(**sets))
            updated = conn.execute(select(_t).where(_t.c.id == agent_id)).one()
        return self._row(updated)

    def set_password(self, agent_id: int, password: str) -> None:
        check_password_rules(password)
        with self.db.begin() as conn:
            conn.execute(
                _t.update().where(_t.c.id == agent_id).values(password_hash=hash_password(password))
            )

    def authenticate(self, username: str, password: str) -> Agent | None:
        """The active agent with these credentials, else None (same cost either way)."""
        row = self._one(_t.c.username == username.strip())
        stored = row.password_hash if row else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or not row.active:
            return None
        if _hasher.check_needs_rehash(stored):
            with self.db.begin() as conn:
                conn.execute(
                    _t.update()
                    .where(_t.c.id == row.id, _t.c.password_hash == stored)
                    .values(password_hash=hash_password(password))
                )
        return self._row(row)


_DUMMY_HASH = _hasher.hash("not-a-real-password-0")


def get_agent_store() -> AgentStore:
    """The store of the project database (cheap: the database is cached per process)."""
    return AgentStore()
