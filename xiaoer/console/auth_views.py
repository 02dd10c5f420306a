"""Login and logout. Failed logins slow down per address and per user name (growing
delays, never a hard lock: ``web.LoginLimiter``); the
login form carries its own CSRF token (double-submit cookie) since there is no session yet."""

from __future__ import annotations

import hmac
import logging
import math
import secrets

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.agents import get_agent_store
from xiaoer.console.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    render,
    set_cookie,
)

logger = logging.getLogger(__name__)
bp = Blueprint("console_auth")


def _safe_next(value: str | None) -> str:
    value = value or "/"
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _login_page(request: Request, error: str = "", status: int = 200) -> HTTPResponse:
    token = secrets.token_urlsafe(24)
    request.ctx.login_csrf = token
    resp = render(
        request,
        "login.html",
        status=status,
        error=error,
        next=_safe_next(
            (request.form.get("next") if request.form else None) or request.args.get("next")
        ),
        username=(request.form.get("username") or "") if request.form else "",
    )
    set_cookie(request, resp, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return resp


def _wait_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} 秒"
    return f"{(seconds + 59) // 60} 分钟"


@bp.get("/login")
async def login_form(request: Request) -> HTTPResponse:
    if request.ctx.agent is not None:
        return response.redirect("/")
    return _login_page(request)


@bp.post("/login")
async def login(request: Request) -> HTTPResponse:
    form = request.form or {}
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = form.get("csrf_token") or ""
    if not cookie_token or not hmac.compare_digest(cookie_token, given):
        return _login_page(request, "页面已过期，请重新输入后登录", status=403)
    username = (form.get("username") or "").strip()[:64]
    password = form.get("password") or ""
    address = request.remote_addr or request.ip or "unknown"
    keys = (f"ip:{address}", f"user:{username.lower()}")
    limiter = request.app.ctx.limiter
    wait = limiter.check(*keys)
    if wait > 0:
        limiter.failed(*keys)  # an attempt while slowed down counts: the delay grows
        seconds = math.ceil(limiter.check(*keys) or wait)
        logger.warning("console login slowed down (address %s, wait %ss)", address, seconds)
        resp = _login_page(
            request, f"登录尝试过于频繁，请 {_wait_words(seconds)}后再试", status=429
        )
        resp.headers["Retry-After"] = str(seconds)
        return resp
    agent = get_agent_store().authenticate(username, password) if username and password else None
    if agent is None:
        limiter.failed(*keys)
        logger.info("console login failed (address %s)", address)
        return _login_page(request, "用户名或密码错误", status=401)
    limiter.succeeded(*keys)
    token = request.app.ctx.sessions.create(agent.id)
    resp = response.redirect(_safe_next(form.get("next")))
    set_cookie(request, resp, SESSION_COOKIE, token, max_age=None)
    del resp.cookies[LOGIN_CSRF_COOKIE]
    logger.info("console login: agent %s", agent.id)
    return resp


@bp.post("/logout")
async def logout(request: Request) -> HTTPResponse:
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        request.app.ctx.sessions.delete(token)
    resp = response.redirect("/login")
    del resp.cookies[SESSION_COOKIE]
    return resp
