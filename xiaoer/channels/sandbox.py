"""The sandbox channel: the console's test chat (测试与调整) talks to the real assistant.

``POST /webhooks/sandbox/webhook`` with the Rasa API token (header
``Authorization: Bearer <token>``; the console has it, no customer does) and
``{"session": "<id>", "message": "...", "channel": "rest" | "douyin" | ""}``. The message
goes through the same path as a customer's (``handle_message``: several questions split,
the NLU pipeline with the keyword rules, the policies, the action server), in the
conversation ``test-chat:<session>`` (:func:`xiaoer.core.senders.is_sandbox`: never a lead,
a handoff row or a customer in a report). ``channel`` is the channel the merchant
simulates, for keyword rules limited to one.

The answer is ``{"messages": [...], "turns": [...]}``: the bot's messages and, for each
user message of the turn, what produced the answer (:func:`explain_events`): the intent
and its confidence, the keyword rule, the retrieval (knowledge-base) answer, the actions
with the policy that chose each, the form, the slots set.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from xiaoer.core import logsafe
from xiaoer.core.security import api_token, same_secret
from xiaoer.core.senders import sandbox_id
from xiaoer.nlu.multi import handle_message

logger = logging.getLogger(__name__)

SESSION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_MESSAGE_CHARS = 2000
SIMULATED = ("", "rest", "douyin")
HIDDEN_ACTIONS = {"action_listen", "action_session_start"}


def _error(status: int, code: str, message: str) -> HTTPResponse:
    return response.json({"error": code, "message": message}, status=status)


def _decided_by(intent: dict[str, Any]) -> str | None:
    """exact / similar / closer (an entry), intents_alone (the classifier trained without
    the knowledge base), kb_declined (an intent's examples much closer than any entry's)."""
    if intent.get("knowledge_match_kind"):
        return str(intent["knowledge_match_kind"])
    if intent.get("classifier") == "intents_alone":
        return "intents_alone"
    if intent.get("knowledge_base_declined") is not None:
        return "kb_declined"
    return None


def explain_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per user message in ``events`` (a turn's new tracker events): what the assistant
    understood and did."""
    turns: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for event in events:
        kind = event.get("event")
        if kind == "user":
            parse = event.get("parse_data") or {}
            intent = parse.get("intent") or {}
            selector = parse.get("response_selector") or {}
            retrieval = None
            for name, value in selector.items():
                if name == "all_retrieval_intents" or not isinstance(value, dict):
                    continue
                answer = value.get("response") or {}
                if answer.get("intent_response_key"):
                    retrieval = {
                        "key": answer.get("intent_response_key"),
                        "confidence": answer.get("confidence"),
                    }
            current = {
                "text": event.get("text") or "",
                "intent": intent.get("name"),
                "confidence": intent.get("confidence"),
                "keyword_rule": intent.get("keyword_rule"),
                "handoff_keyword": intent.get("handoff_keyword"),
                "negated": intent.get("negated"),
                "entity_rule": intent.get("entity_rule"),
                # how the knowledge base's arbitration decided (xiaoer/nlu/knowledge.py)
                "decided_by": _decided_by(intent),
                "ranking": [
                    {"name": r.get("name"), "confidence": r.get("confidence")}
                    for r in (parse.get("intent_ranking") or [])[:4]
                ],
                "entities": [
                    {"entity": e.get("entity"), "value": e.get("value")}
                    for e in parse.get("entities") or []
                ],
                "retrieval": retrieval,
                "actions": [],
                "forms": [],
                "slots": {},
                "replies": [],
            }
            turns.append(current)
        elif current is None:
            continue
        elif kind == "action" and event.get("name") not in HIDDEN_ACTIONS:
            current["actions"].append(
                {
                    "name": event.get("name"),
                    "policy": event.get("policy"),
                    "confidence": event.get("confidence"),
                }
            )
        elif kind == "active_loop" and event.get("name"):
            current["forms"].append(event.get("name"))
        elif kind == "slot" and event.get("name") not in ("requested_slot",):
            current["slots"][str(event.get("name"))] = event.get("value")
        elif kind == "bot":
            metadata = event.get("metadata") or {}
            current["replies"].append(
                {
                    "text": event.get("text"),
                    "response": metadata.get("utter_action") or metadata.get("template_name"),
                    "keyword_rule": metadata.get("keyword_rule"),
                    "profile": metadata.get("profile"),
                }
            )
        elif kind == "pause":
            current["paused"] = True
    return turns


class SandboxInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "sandbox"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("xiaoer_sandbox_webhook", __name__)
        logsafe.install()

        @hook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            given = (request.headers.get("authorization") or "").removeprefix("Bearer ")
            if not same_secret(given.strip(), api_token()):
                return _error(403, "forbidden", "需要机器人服务的 API 令牌")
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                return _error(400, "invalid_json", "请求体必须是 JSON")
            if not isinstance(body, dict):
                return _error(400, "invalid_body", "请求体必须是 JSON 对象")
            session = str(body.get("session") or "")
            text = body.get("message")
            channel = str(body.get("channel") or "")
            if not SESSION_RE.fullmatch(session):
                return _error(400, "invalid_session", "session 只能是 1-64 个字母、数字、_ 或 -")
            if not isinstance(text, str) or not text.strip():
                return _error(400, "empty_message", "message 不能为空")
            if len(text) > MAX_MESSAGE_CHARS:
                return _error(413, "message_too_long", f"消息最长 {MAX_MESSAGE_CHARS} 个字")
            if channel not in SIMULATED:
                return _error(400, "invalid_channel", "channel 只能是 rest、douyin 或空")
            agent = getattr(request.app.ctx, "agent", None)
            conversation = sandbox_id(session)
            before = 0
            if agent is not None:
                tracker = await agent.tracker_store.retrieve_full_tracker(conversation)
                before = len(tracker.events) if tracker is not None else 0
            collector = CollectingOutputChannel()
            metadata = {"channel": channel or "sandbox", "sandbox": True}
            try:
                await handle_message(
                    UserMessage(
                        text,
                        collector,
                        conversation,
                        input_channel=self.name(),
                        metadata=metadata,
                    ),
                    on_new_message,
                    agent,
                )
            except Exception:  # noqa: BLE001 - reported to the console, logged without text
                logger.exception("sandbox message failed (conversation %s)", conversation)
                return _error(500, "processing_failed", "消息处理失败，请查看机器人服务日志")
            turns: list[dict[str, Any]] = []
            if agent is not None:
                tracker = await agent.tracker_store.retrieve_full_tracker(conversation)
                if tracker is not None:
                    events = [e.as_dict() for e in list(tracker.events)[before:]]
                    turns = explain_events(events)
            return response.json({"messages": collector.messages, "turns": turns})

        return hook
