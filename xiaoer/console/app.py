"""The agent console: a sanic app (one process, :8000 by default, started by ``xiaoer up``).

Agents log in, see the handoff queue live (server-sent events), open a conversation with
its full history and the customer's orders, reply through the customer's channel, and
hand back to the bot. Admins manage agent accounts and the merchant's handoff settings.

Adding a blueprint (e.g. LEADS' ``xiaoer/console/leads_views.py``): append its import to
``BLUEPRINTS`` below. Inside it::

    from xiaoer.console.web import NAV_ITEMS, current_agent, login_required, render

    @bp.get("/")
    @login_required()              # login_required(role="admin") for admin-only pages
    async def index(request):
        me = current_agent(request)    # the logged-in Agent
        return render(request, "leads.html", rows=...)

* ``render(request, "x.html", **ctx)``: Jinja2 from ``xiaoer/console/templates``; start the
  template with ``{% extends "layout.html" %}`` and fill ``{% block content %}`` (also
  ``title`` and ``scripts``) to get the shared header and navigation.
* CSRF: the app checks every POST/PUT/PATCH/DELETE for the session's token: put
  ``{{ csrf_field() }}`` in each form; scripts send the header ``X-CSRF-Token`` with the
  value of ``<meta name="csrf-token">``. Paths under ``/api/`` answer JSON (401/403).
* Static files: ``xiaoer/console/static`` under ``/static`` (no CDN, nothing external).
* A nav entry: ``NAV_ITEMS.append(("/leads", "线索", None))`` (role None, "agent" or "admin").
"""

from __future__ import annotations

import itertools
import logging
import os

from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.agents import get_agent_store
from xiaoer.console import (
    admin_views,
    analytics_views,
    auth_views,
    keywords_views,
    knowledge_views,
    leads_views,
    learning_views,
    outbox_views,
    profile_views,
    queue_views,
    testchat_views,
    workspace_views,
)
from xiaoer.console.web import (
    HERE,
    SAFE_METHODS,
    SESSION_COOKIE,
    LoginLimiter,
    SessionStore,
    check_csrf,
    console_settings,
    render,
    wants_json,
)
from xiaoer.core.config import PROJECT_ROOT, get_settings
from xiaoer.handoff.desk import HandoffDesk

OPENAPI = PROJECT_ROOT / "docs" / "openapi.yaml"
logger = logging.getLogger(__name__)

# every feature's blueprint; LEADS appends its own import here
BLUEPRINTS: list[Blueprint] = [
    auth_views.bp,
    queue_views.bp,
    admin_views.bp,
    leads_views.bp,
    outbox_views.bp,
    workspace_views.bp,
    keywords_views.bp,
    profile_views.bp,
    testchat_views.bp,
    testchat_views.api,
    analytics_views.bp,
    learning_views.bp,
    knowledge_views.bp,
]

_names = itertools.count(1)


def same_site_path(url: str) -> str:
    """The path of a URL of this console (e.g. the Referer), else the queue."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.path.startswith("/") and not parsed.path.startswith("//"):
        return parsed.path + (f"?{parsed.query}" if parsed.query else "")
    return "/"


def rasa_token() -> str:
    """XIAOER_API_TOKEN, else the token file that ``xiaoer up`` keeps in the data folder."""
    token = os.environ.get("XIAOER_API_TOKEN")
    if token:
        return token
    path = get_settings().data_dir / "api_token"
    return path.read_text().strip() if path.exists() else ""


def create_app(rasa_url: str | None = None, token: str | None = None) -> Sanic:
    settings = console_settings()
    app = Sanic(f"xiaoer_console_{next(_names)}", register=False)
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.RESPONSE_TIMEOUT = 3600  # the live queue feed stays open
    app.config.REQUEST_MAX_SIZE = 6_000_000  # images agents send: 5 MB (checked there)
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 3  # open live feeds must not hold a restart up
    # behind a reverse proxy the client's address (for the login slow-down) comes from
    # X-Forwarded-For, trusted for this many proxies; 0: the connection's own address
    app.config.PROXIES_COUNT = int(settings.get("proxies_count", 0))
    rasa_url = (
        rasa_url
        or os.environ.get("XIAOER_RASA_URL")
        or settings.get("rasa_url", "http://localhost:5005")
    )
    app.ctx.desk = HandoffDesk(str(rasa_url), token if token is not None else rasa_token())
    app.ctx.sessions = SessionStore(None, float(settings.get("session_hours", 12)) * 3600)
    app.ctx.limiter = LoginLimiter(
        free=int(settings.get("login_free_attempts", 3)),
        first_delay=float(settings.get("login_first_delay_seconds", 2)),
        max_delay=float(settings.get("login_max_delay_seconds", 300)),
        forget=float(settings.get("login_forget_minutes", 15)) * 60,
    )
    app.static("/static", str(HERE / "static"), name="static")
    for bp in BLUEPRINTS:
        app.blueprint(bp)

    @app.get("/api/openapi.yaml")
    async def openapi(request: Request) -> HTTPResponse:
        """The OpenAPI description of Xiaoer's public endpoints, for integrators."""
        return await response.file(OPENAPI, mime_type="application/yaml")

    @app.middleware("request")
    async def load_session(request: Request) -> HTTPResponse | None:
        request.ctx.agent = None
        request.ctx.session = None
        session = request.app.ctx.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            agent = get_agent_store().get(session.agent_id)
            if agent is not None and agent.active:
                request.ctx.session, request.ctx.agent = session, agent
        if request.method in SAFE_METHODS or request.path == "/login":
            return None  # the login form checks its own (pre-session) token
        if request.ctx.session is None:
            return None  # login_required answers 401 / redirects
        if not check_csrf(request):
            if wants_json(request):
                return response.json(
                    {"error": "csrf", "message": "页面已过期，请刷新后重试"}, status=403
                )
            return render(
                request,
                "error.html",
                status=403,
                title="页面已过期",
                message="这个页面打开太久或已在别处退出登录，操作没有执行。"
                "请返回上一页，刷新后再试一次。",
                back=same_site_path(request.headers.get("referer") or ""),
            )
        return None

    @app.middleware("response")
    async def security_headers(request: Request, resp: HTTPResponse) -> None:
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: https: http:; style-src 'self';"
            " script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/static"):
            resp.headers.setdefault("Cache-Control", "no-store")

    return app


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="xiaoer console", description="agent console")
    parser.add_argument("--host", default=console_settings().get("host", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(console_settings().get("port", 8000)))
    parser.add_argument("--rasa-url", default=None)
    args = parser.parse_args(argv)
    from xiaoer.core.security import log_level, process_start

    logging.basicConfig(level=log_level(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    process_start()
    if args.rasa_url:  # every helper of this process talks to the same Rasa server
        from xiaoer.core.rasa_api import RASA_URL_ENV

        os.environ[RASA_URL_ENV] = args.rasa_url
    app = create_app(args.rasa_url)
    app.run(host=args.host, port=args.port, workers=1, access_log=False, motd=False)
    return 0
