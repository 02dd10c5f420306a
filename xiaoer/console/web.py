"""Shared helpers of the console's blueprints: sessions, login, roles, CSRF, rendering.

Blueprints (``xiaoer/console/*_views.py``) use only this module::

    from xiaoer.console.web import login_required, render

    bp = Blueprint("leads", url_prefix="/leads")

    @bp.get("/")
    @login_required()                 # any logged-in agent; role="admin" for admins only
    async def index(request):
        return render(request, "leads.html", leads=...)   # extends layout.html (nav, CSRF)

Every POST/PUT/PATCH/DELETE is checked for the session's CSRF token by the app itself
(form field ``csrf_token`` or header ``X-CSRF-Token``); templates get it as
``{{ csrf_token }}`` (``{{ csrf_field() }}`` renders the hidden input), scripts read it from
``<meta name="csrf-token">``. ``request.ctx.agent`` is the logged-in ``Agent``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy import Column, Float, Integer, Table, Text, delete, select

from xiaoer.agents import Agent, get_agent_store
from xiaoer.core.clock import BEIJING
from xiaoer.core.config import get_settings
from xiaoer.core.db import Database, database_for, metadata

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "xiaoer_console"
LOGIN_CSRF_COOKIE = "xiaoer_login_csrf"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

# the navigation bar: (path, label, role or None); blueprints may append their entries
NAV_ITEMS: list[tuple[str, str, str | None]] = [
    ("/workspace", "我的会话", None),
    ("/", "排队中", None),
    ("/history", "已处理", None),
    ("/admin/agents", "客服账号", "admin"),
    ("/admin/settings", "设置", "admin"),
]

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("agent_id", Integer, nullable=False),
    Column("csrf", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)


def console_settings() -> dict[str, Any]:
    return get_settings().section("console")


# --- templates ----------------------------------------------------------------------------
_env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _beijing(value: str | float | None) -> str:
    if value in (None, ""):
        return ""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, BEIJING).strftime("%m-%d %H:%M")
    try:
        return datetime.fromisoformat(str(value)).astimezone(BEIJING).strftime("%m-%d %H:%M")
    except ValueError:
        return str(value)


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}秒"
    if seconds < 3600:
        return f"{seconds // 60}分钟"
    return f"{seconds // 3600}小时{seconds % 3600 // 60}分"


_env.filters["bj"] = _beijing
_env.filters["duration"] = _duration


def template_env() -> Environment:
    return _env


def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTTPResponse:
    """Render a template with the layout's context (who is logged in, nav, CSRF token)."""
    agent: Agent | None = getattr(request.ctx, "agent", None)
    token = csrf_token(request)
    nav = [
        (path, label)
        for path, label, role in NAV_ITEMS
        if agent and (role is None or (role == "admin" and agent.is_admin))
    ]
    html = _env.get_template(template).render(
        me=agent,
        nav=nav,
        path=request.path,
        csrf_token=token,
        csrf_field=lambda: Markup(f'<input type="hidden" name="csrf_token" value="{token}">'),
        shop_name=(get_settings().shop or {}).get("name", "店小二"),
        **ctx,
    )
    return response.html(html, status=status)


def csrf_token(request: Request) -> str:
    session = getattr(request.ctx, "session", None)
    if session is not None:
        return str(session.csrf)
    return str(getattr(request.ctx, "login_csrf", ""))


# --- sessions -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    token_hash: str
    agent_id: int
    csrf: str
    expires_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, db: Database | str | Path | None, lifetime_seconds: float) -> None:
        self.db = database_for(db)
        self.lifetime = lifetime_seconds

    def create(self, agent_id: int) -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.begin() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < now))
            conn.execute(
                console_sessions.insert().values(
                    token_hash=_hash(token),
                    agent_id=agent_id,
                    csrf=secrets.token_urlsafe(24),
                    created_at=now,
                    expires_at=now + self.lifetime,
                )
            )
        return token

    def get(self, token: str) -> Session | None:
        if not token:
            return None
        t = console_sessions.c
        with self.db.connect() as conn:
            row = conn.execute(
                select(t.token_hash, t.agent_id, t.csrf, t.expires_at).where(
                    t.token_hash == _hash(token)
                )
            ).first()
        if row is None or row[3] < time.time():
            return None
        return Session(*row)

    def delete(self, token: str) -> None:
        with self.db.begin() as conn:
            conn.execute(
                delete(console_sessions).where(console_sessions.c.token_hash == _hash(token))
            )

    def delete_for_agent(self, agent_id: int) -> None:
        with self.db.begin() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.agent_id == agent_id))


class LoginLimiter:
    """Failed logins slow down, per client address and per user name, with growing delays.

    After ``free`` failures of a key (``free`` x 4 for an address: agents of one office
    often share one), each further attempt must wait ``first_delay`` seconds, doubling with
    every failure up to ``max_delay``; an attempt made while waiting is refused and counts
    as a failure. A key's failures are forgotten ``forget`` seconds after its last one.

    There is no hard lock: a user name's delay holds back only addresses that have failed
    themselves, so a correct password from a fresh address always gets in, whoever
    hammers the user name (``xiaoer.console.auth_views``). ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        free: int = 3,
        first_delay: float = 2.0,
        max_delay: float = 300.0,
        forget: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.first_delay, self.max_delay = max(free, 0), first_delay, max_delay
        self.forget, self.clock = forget, clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, last failure)
        self._lock = threading.Lock()

    def _free(self, key: str) -> int:
        return self.free * 4 if key.startswith("ip:") else self.free

    def delay(self, key: str, count: int) -> float:
        """The wait after ``count`` failures of ``key``."""
        over = count - self._free(key)
        if over < 0:
            return 0.0
        return float(min(self.first_delay * 2 ** min(over, 32), self.max_delay))

    def _count(self, key: str, now: float) -> tuple[int, float]:
        count, last = self._failures.get(key, (0, 0.0))
        if count and now - last > self.forget:
            self._failures.pop(key, None)
            return 0, 0.0
        return count, last

    def failures(self, key: str) -> int:
        with self._lock:
            return self._count(key, self.clock())[0]

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            count, last = self._count(key, now)
        return max(0.0, last + self.delay(key, count) - now) if count else 0.0

    def check(self, address_key: str, user_key: str) -> float:
        """Seconds this attempt must wait (0: check the password now). An address that is
        slowed down waits; a user name's delay applies only to addresses that failed too."""
        address_wait = self.wait(address_key)
        if address_wait > 0:
            return address_wait
        if self.failures(address_key) == 0:
            return 0.0  # a fresh address: never held back by someone else's failures
        return self.wait(user_key)

    MAX_KEYS = 50_000  # memory bound against attempts with ever new user names / addresses

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for k in keys:
                count = self._count(k, now)[0]
                self._failures.pop(k, None)  # re-inserted last: the dict stays oldest first
                self._failures[k] = (count + 1, now)
            if len(self._failures) > self.MAX_KEYS:
                for k in [k for k, (_, last) in self._failures.items() if now - last > self.forget]:
                    del self._failures[k]
                while len(self._failures) > self.MAX_KEYS:  # the oldest go first
                    del self._failures[next(iter(self._failures))]

    def succeeded(self, *keys: str) -> None:
        """A good login clears its user name's failures (not its address's)."""
        with self._lock:
            for k in keys:
                if not k.startswith("ip:"):
                    self._failures.pop(k, None)


def cookie_secure(request: Request) -> bool:
    """``console.cookie_secure``: true / false / auto (Secure when served over HTTPS,
    including behind a proxy that sets X-Forwarded-Proto)."""
    setting = str(console_settings().get("cookie_secure", "auto")).lower()
    if setting in {"true", "yes", "1"}:
        return True
    if setting in {"false", "no", "0"}:
        return False
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.scheme == "https" or forwarded == "https"


def set_cookie(
    request: Request, resp: HTTPResponse, name: str, value: str, max_age: int | None
) -> None:
    resp.cookies[name] = value
    cookie = resp.cookies[name]
    cookie["httponly"] = True
    cookie["samesite"] = "Strict"
    cookie["path"] = "/"
    if max_age is not None:
        cookie["max-age"] = max_age
    if cookie_secure(request):
        cookie["secure"] = True


def check_csrf(request: Request) -> bool:
    expected = csrf_token(request)
    given = request.headers.get("x-csrf-token") or ""
    if not given and request.form:
        given = request.form.get("csrf_token") or ""
    return bool(expected) and hmac.compare_digest(str(given), expected)


# --- access control -----------------------------------------------------------------------
Handler = TypeVar("Handler", bound=Callable[..., Coroutine[Any, Any, Any]])


def wants_json(request: Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "accept", ""
    )


def forbidden(request: Request, message: str = "您没有权限访问此页面") -> HTTPResponse:
    if wants_json(request):
        return response.json({"error": "forbidden", "message": message}, status=403)
    return render(request, "error.html", status=403, title="无权访问", message=message)


def login_required(role: str | None = None) -> Callable[[Handler], Handler]:
    """Only logged-in agents (and only admins with ``role="admin"``) reach the handler."""

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            agent: Agent | None = getattr(request.ctx, "agent", None)
            if agent is None:
                if wants_json(request):
                    return response.json(
                        {"error": "login_required", "message": "请先登录"}, status=401
                    )
                from urllib.parse import quote

                return response.redirect(f"/login?next={quote(request.path)}")
            if role == "admin" and not agent.is_admin:
                return forbidden(request, "该页面仅管理员可以访问")
            return await handler(request, *args, **kwargs)

        return cast(Handler, wrapped)

    return decorator


def current_agent(request: Request) -> Agent:
    agent: Agent | None = getattr(request.ctx, "agent", None)
    assert agent is not None, "use login_required()"
    return agent


def agents_by_id() -> dict[int, Agent]:
    return {a.id: a for a in get_agent_store().list_agents()}
