"""Console page of the bot's profile (基本信息), admins only: name, avatar, welcome message,
sign-off, human service hours (xiaoer/core/profile.py). Applied live on every channel.

``GET /profile/avatar`` serves the avatar to anyone (a web widget shows it to customers; it
holds nothing private), as the stored image type, never sniffed: ``?v=<sha256>`` (the URL
the pages use) that image, cacheable for good; without it the current one, read from the
database.
"""

from __future__ import annotations

import asyncio
import re

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.console.web import NAV_ITEMS, current_agent, login_required, render
from xiaoer.core.profile import (
    MAX_AVATAR_BYTES,
    BotProfile,
    ProfileError,
    bot_profile,
    get_profile_store,
    validate_profile,
)

bp = Blueprint("console_profile", url_prefix="/profile")
NAV_ITEMS.append(("/profile", "基本信息", "admin"))
DIGEST_RE = re.compile(r"[0-9a-f]{64}")
FIELDS = ("name", "welcome", "sign_off", "service_start", "service_end")


def _values(profile: BotProfile) -> dict[str, str]:
    return {
        "name": profile.name,
        "welcome": profile.welcome,
        "sign_off": profile.sign_off,
        "service_start": profile.service_start,
        "service_end": profile.service_end,
    }


def _page(
    request: Request,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    notice: str = "",
    status: int = 200,
) -> HTTPResponse:
    return render(
        request,
        "profile.html",
        status=status,
        v=values,
        profile=bot_profile(),
        errors=errors or {},
        notice=notice,
        max_kb=MAX_AVATAR_BYTES // 1024,
    )


@bp.get("/")
@login_required(role="admin")
async def profile_page(request: Request) -> HTTPResponse:
    notice = {"saved": "已保存，新的会话立即使用", "avatar": "头像已更新"}.get(
        request.args.get("done") or "", ""
    )
    return _page(request, _values(bot_profile()), notice=notice)


@bp.post("/")
@login_required(role="admin")
async def save_profile(request: Request) -> HTTPResponse:
    form = request.form or {}
    values = {k: str(form.get(k) or "") for k in FIELDS}
    try:
        cleaned = validate_profile(values)
    except ProfileError as exc:
        return _page(request, values, errors=exc.errors, status=400)
    me = current_agent(request)
    await asyncio.to_thread(get_profile_store().save, cleaned, me.username)
    return response.redirect("/profile?done=saved")


@bp.post("/avatar")
@login_required(role="admin")
async def upload_avatar(request: Request) -> HTTPResponse:
    upload = request.files.get("avatar") if request.files else None
    data = upload.body if upload is not None else b""
    try:
        await asyncio.to_thread(
            get_profile_store().save_avatar, data, current_agent(request).username
        )
    except ValueError as exc:
        return _page(request, _values(bot_profile()), errors={"avatar": str(exc)}, status=400)
    return response.redirect("/profile?done=avatar")


@bp.get("/avatar")
async def avatar(request: Request) -> HTTPResponse:
    store = get_profile_store()
    wanted = str(request.args.get("v") or "").lower()
    if DIGEST_RE.fullmatch(wanted):
        # the image of that digest (the pages' URLs): the same in every console process
        # whatever its settings cache says, and never changing
        found = await asyncio.to_thread(store.avatar, wanted)
        cache = "public, max-age=31536000, immutable"
    else:
        found = await asyncio.to_thread(lambda: store.avatar(store.current_avatar()))
        cache = "no-cache"
    if found is None:
        return response.text("no avatar", status=404)
    kind, data = found
    return response.raw(
        data,
        content_type=kind,
        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
    )
