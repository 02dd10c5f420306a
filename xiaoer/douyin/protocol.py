"""The Douyin private-message contract: webhook signature and envelopes, send-API shapes.

Everything here is pure (no I/O) so that the channel, the simulator and the tests share
one reading of the spec (/work/shared/spec/douyin-platform.md):

* ``X-Douyin-Signature`` = hex SHA-1 of ``client_secret + raw body``;
* envelope ``{"event", "from_user_id", "to_user_id", "client_key", "content"}`` where
  ``content`` is an object or a JSON-encoded string, the body may start with a BOM and
  unknown fields (``log_id``, ``event_id``, ``data-im-extra`` …) may appear anywhere;
* reply ``POST {base}/im/send/msg/?open_id=<account>`` with header ``access-token`` and
  ``{"msg_id", "conversation_id", "to_user_id", "scene", "content": {"msg_type", ...}}``;
  answers ``{"extra": {...}, "data": {"error_code", ...}}`` or ``{"err_no", "err_msg"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

SIGNATURE_HEADER = "X-Douyin-Signature"
MSG_ID_HEADER = "Msg-Id"
# beside the acknowledgement of a webhook: why Xiaoer will not reply to the event (a
# paused bot, no greeting within the cooldown); Douyin ignores it, the simulator shows it
NO_REPLY_FIELD = "xiaoer_no_reply"
SEND_PATH = "/im/send/msg/"
REFRESH_PATH = "/oauth/refresh_token/"
SCENE_REPLY = "im_replay_msg"  # (sic) the platform's spelling
SCENE_ENTER = "im_enter_direct_msg"
MSG_TEXT, MSG_IMAGE, MSG_CARD = 1, 2, 8

EVENT_VERIFY = "verify_webhook"
EVENT_RECEIVE = "im_receive_msg"
EVENT_SEND = "im_send_msg"
EVENT_ENTER = "im_enter_direct_msg"
EVENT_FOLLOW = "new_follow_action"
HANDLED_EVENTS = (EVENT_VERIFY, EVENT_RECEIVE, EVENT_SEND, EVENT_ENTER, EVENT_FOLLOW)

TEXT_TYPES = ("text",)
IMAGE_TYPES = ("image", "user_local_image")
VIDEO_TYPES = ("video", "user_local_video")
CARD_TYPES = ("retain_consult_card",)
# error codes meaning "the access token is expired or invalid": refresh, then retry
TOKEN_ERROR_CODES = frozenset({2190002, 2190008, 28001003, 28001008})


class PayloadError(ValueError):
    """A body that is not a Douyin envelope (answered with 400)."""


# --- signature ------------------------------------------------------------------------
def signature(client_secret: str, body: bytes) -> str:
    """Hex SHA-1 of ``client_secret + raw body`` (the ``X-Douyin-Signature`` header)."""
    return hashlib.sha1(client_secret.encode("utf-8") + body).hexdigest()


def verify_signature(client_secret: str, body: bytes, given: str | None) -> bool:
    """Constant-time comparison; False when the header or the secret is missing."""
    if not given or not client_secret:
        return False
    expected = signature(client_secret, body)
    # Sanic hands undecodable header bytes over as surrogates: encode them back, never raise
    # (a non-UTF-8 signature header was a 500; found by tests/fuzz)
    given_bytes = given.strip().lower().encode("utf-8", "surrogateescape")
    return hmac.compare_digest(expected.encode("ascii"), given_bytes)


# --- tolerant readers --------------------------------------------------------------------
def as_object(value: Any) -> dict[str, Any]:
    """An object given as a dict or as a JSON-encoded string (``{}`` otherwise)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        if isinstance(parsed, str):  # doubly encoded
            return as_object(parsed)
        return parsed if isinstance(parsed, dict) else {}
    return {}


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().strip('"')


def as_number(value: Any) -> int | None:
    try:
        return int(float(as_text(value)))
    except (TypeError, ValueError):
        return None


# --- envelopes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Envelope:
    event: str
    from_user_id: str
    to_user_id: str
    client_key: str
    content: dict[str, Any]
    log_id: str = ""

    @property
    def event_key(self) -> str:
        """What identifies the event itself (not one delivery of it)."""
        if self.event in (EVENT_RECEIVE, EVENT_SEND):
            smid = as_text(self.content.get("server_message_id"))
            if smid:
                return f"smid:{smid}"
        if self.log_id:
            return f"log:{self.log_id}"
        raw = json.dumps(
            [self.event, self.from_user_id, self.to_user_id, self.content],
            sort_keys=True,
            ensure_ascii=False,
        )
        return "sha1:" + hashlib.sha1(raw.encode("utf-8")).hexdigest()


def parse_envelope(body: bytes) -> Envelope:
    """Reads a webhook body; raises :class:`PayloadError` when it is not an envelope."""
    try:
        payload = json.loads(body.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("body is not JSON") from exc
    if not isinstance(payload, dict):
        raise PayloadError("body is not a JSON object")
    event = payload.get("event")
    if not isinstance(event, str) or not event.strip():
        raise PayloadError("event missing")
    raw_content = payload.get("content")
    content = as_object(raw_content)
    if raw_content not in (None, "", {}) and not content:
        raise PayloadError("content is neither an object nor a JSON-encoded object")
    return Envelope(
        event=event.strip(),
        from_user_id=as_text(payload.get("from_user_id")),
        to_user_id=as_text(payload.get("to_user_id")),
        client_key=as_text(payload.get("client_key")),
        content=content,
        log_id=as_text(payload.get("log_id") or payload.get("event_id")),
    )


@dataclass(frozen=True)
class ChatMessage:
    """``content`` of ``im_receive_msg`` / ``im_send_msg``."""

    server_message_id: str
    conversation_short_id: str
    message_type: str
    text: str = ""
    resource_url: str = ""
    resource_type: str = ""
    item_id: str = ""
    card_id: str = ""
    card_data: list[dict[str, str]] = field(default_factory=list)
    create_time_ms: int = 0
    nickname: str = ""

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> ChatMessage:
        c = envelope.content
        nickname = ""
        infos = c.get("user_infos") or c.get("user_info") or []
        if isinstance(infos, dict):
            infos = [infos]
        if isinstance(infos, list):
            dicts = [i for i in infos if isinstance(i, dict)]
            # ids in user_infos are sometimes masked: prefer the matching one, else the only
            match = [i for i in dicts if as_text(i.get("open_id")) == envelope.from_user_id]
            chosen = match or (dicts if len(dicts) == 1 else [])
            if chosen:
                nickname = as_text(chosen[0].get("nick_name") or chosen[0].get("nickname"))
        card_data: list[dict[str, str]] = []
        raw_cards = c.get("card_data")
        if isinstance(raw_cards, str):
            try:
                raw_cards = json.loads(raw_cards)
            except ValueError:
                raw_cards = []
        for entry in raw_cards or []:
            if isinstance(entry, dict):
                card_data.append(
                    {"label": as_text(entry.get("label")), "value": as_text(entry.get("value"))}
                )
        return cls(
            server_message_id=as_text(c.get("server_message_id")),
            conversation_short_id=as_text(c.get("conversation_short_id")),
            message_type=as_text(c.get("message_type")) or "text",
            text=str(c.get("text") or ""),
            resource_url=as_text(c.get("resource_url")),
            resource_type=as_text(c.get("resource_type")),
            item_id=as_text(c.get("item_id")),
            card_id=as_text(c.get("card_id")),
            card_data=card_data,
            create_time_ms=as_number(c.get("create_time")) or 0,
            nickname=nickname,
        )


def build_webhook(
    client_secret: str,
    event: str,
    content: dict[str, Any],
    *,
    from_user_id: str = "",
    to_user_id: str = "",
    client_key: str = "",
    content_as_string: bool = False,
    extra: dict[str, Any] | None = None,
    bom: bool = False,
) -> tuple[bytes, dict[str, str]]:
    """A signed webhook body and its headers, as the platform sends it."""
    payload: dict[str, Any] = {
        "event": event,
        "from_user_id": from_user_id,
        "to_user_id": to_user_id,
        "client_key": client_key,
        "content": json.dumps(content, ensure_ascii=False) if content_as_string else content,
        **(extra or {}),
    }
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    if bom:
        body = "\ufeff".encode() + body
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(client_secret, body),
    }
    return body, headers


# --- the send API ------------------------------------------------------------------------
def text_content(text: str) -> dict[str, Any]:
    return {"msg_type": MSG_TEXT, "text": {"text": text}}


def image_content(media_id: str) -> dict[str, Any]:
    return {"msg_type": MSG_IMAGE, "image": {"media_id": media_id}}


def card_content(card_id: str) -> dict[str, Any]:
    return {"msg_type": MSG_CARD, "retain_consult_card": {"card_id": card_id}}


def send_body(
    to_user_id: str,
    content: dict[str, Any],
    *,
    msg_id: str = "",
    conversation_id: str = "",
    scene: str = SCENE_REPLY,
) -> dict[str, Any]:
    body: dict[str, Any] = {"to_user_id": to_user_id, "scene": scene, "content": content}
    if msg_id:
        body["msg_id"] = msg_id
    if conversation_id:
        body["conversation_id"] = conversation_id
    return body


@dataclass(frozen=True)
class SendAnswer:
    ok: bool
    code: int
    description: str
    msg_id: str = ""

    @property
    def token_problem(self) -> bool:
        return self.code in TOKEN_ERROR_CODES


def parse_send_answer(payload: Any) -> SendAnswer:
    """Both answer shapes; anything unreadable is an error (code -1)."""
    if not isinstance(payload, dict):
        return SendAnswer(False, -1, "answer is not a JSON object")
    msg_id = as_text(payload.get("msg_id") or as_object(payload.get("data")).get("msg_id"))
    if "err_no" in payload:
        code = as_number(payload.get("err_no"))
        code = -1 if code is None else code
        return SendAnswer(code == 0, code, as_text(payload.get("err_msg")), msg_id)
    extra = as_object(payload.get("extra"))
    data = as_object(payload.get("data"))
    codes = [as_number(x.get("error_code")) for x in (extra, data) if "error_code" in x]
    if not codes:
        return SendAnswer(False, -1, "answer without error_code")
    code = next((c for c in codes if c), 0 if all(c == 0 for c in codes) else -1)
    code = -1 if code is None else code
    sub = as_number(extra.get("sub_error_code")) or 0
    if code == 0 and sub:
        code = sub
    description = as_text(
        data.get("description") or extra.get("sub_description") or extra.get("description")
    )
    return SendAnswer(code == 0, code, description, msg_id)
