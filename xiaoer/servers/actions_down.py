"""When the action server cannot be reached: one polite message and a human offered.

Rasa 3.6 answers an action server that is down (refused connection, timeout, HTTP 5xx)
by logging a traceback ("Encountered an exception while running action … the actions
events are lost") and carrying on: the policies predict again, often another custom
action that fails the same way, until the turn ends — the customer hears nothing, or half
an answer, and the log fills with tracebacks.

:func:`install` (called by :mod:`xiaoer.servers.rasaserver`) wraps
``RemoteAction.run``: when the call fails for a reason of the action server (not a
rejection of the action, which Rasa handles), the turn ends with ONE message in Simplified
Chinese that names the busy system and offers a human (the ``转人工`` / ``不用了`` buttons
of the other busy answers; ``handoff_offered`` is set, so "转人工" or the button reaches an
agent once the action server is back), then ``action_listen``. A second failing action of
the same turn says nothing more. The log gets one WARNING line per failure, naming the
action server, without a traceback. When the action server is back the conversation goes
on as before: nothing of the conversation was lost or changed but the failed action.

The wording is ``server.actions_down_reply`` of xiaoer.yml (a list of variations).
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from typing import Any

from rasa.core.actions.action import ActionExecutionRejection, ActionSessionStart, RemoteAction
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.events import BotUttered, FollowupAction, SlotSet, UserUttered

logger = logging.getLogger("xiaoer.servers.actions_down")

REASON = "actions_unavailable"  # the handoff reason recorded with the offer
DEFAULT_REPLIES = (
    "抱歉亲，系统暂时有点忙，这个问题没能马上为您处理😣 您可以稍后再发一次，或者点“转人工”由人工客服为您处理。",
    "不好意思，小二这边的系统暂时出了点状况，没能办理您的请求😣 请稍后再试，需要的话也可以转人工客服哦。",
)
BUTTONS = [
    {"title": "转人工", "payload": "/affirm"},
    {"title": "不用了", "payload": "/deny"},
]
_ANSWERED_TURNS: OrderedDict[tuple[str, float], bool] = OrderedDict()
_MAX_REMEMBERED = 10_000


def replies() -> list[str]:
    """The variations of the polite message (xiaoer.yml ``server.actions_down_reply``)."""
    from xiaoer.core.config import get_settings

    configured = get_settings().section("server").get("actions_down_reply")
    if isinstance(configured, str) and configured.strip():
        return [configured]
    if isinstance(configured, list) and any(str(c).strip() for c in configured):
        return [str(c) for c in configured if str(c).strip()]
    return list(DEFAULT_REPLIES)


def _turn_key(tracker: Any) -> tuple[str, float]:
    """The current turn: the conversation and the time of its latest user message (the
    trackers the forms build for their validation carry the same events)."""
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return (tracker.sender_id, float(event.timestamp))
    return (tracker.sender_id, 0.0)


def _already_answered(tracker: Any) -> bool:
    """True when this turn already told the customer (a second failing action)."""
    key = _turn_key(tracker)
    if key in _ANSWERED_TURNS:
        return True
    for event in reversed(tracker.events):  # also after a restart of this server
        if isinstance(event, UserUttered):
            break
        if isinstance(event, BotUttered) and (event.metadata or {}).get("xiaoer_fault") == REASON:
            return True
    _ANSWERED_TURNS[key] = True
    while len(_ANSWERED_TURNS) > _MAX_REMEMBERED:
        _ANSWERED_TURNS.popitem(last=False)
    return False


def unavailable_events(tracker: Any, action_name: str, error: BaseException) -> list[Any]:
    """The events that end a turn whose custom action could not run."""
    cause = error.__cause__ or error.__context__ or error
    logger.warning(
        "action server unavailable: %s of conversation %s not run (%s: %s); the customer "
        "is offered a human",
        action_name, tracker.sender_id, type(cause).__name__, str(cause)[:200] or "-",
    )  # fmt: skip
    if _already_answered(tracker):
        return [FollowupAction("action_listen")]
    text = random.choice(replies())
    return [
        BotUttered(text, data={"buttons": BUTTONS}, metadata={"xiaoer_fault": REASON}),
        SlotSet("handoff_offered", True),
        SlotSet("handoff_reason", REASON),
        FollowupAction("action_listen"),
    ]


def install() -> None:
    """Wrap ``RemoteAction.run`` (once) in the Rasa server."""
    if getattr(RemoteAction.run, "_xiaoer_actions_down", False):
        return
    original = RemoteAction.run

    async def run(
        self: RemoteAction, output_channel: Any, nlg: Any, tracker: Any, domain: Any,
        *args: Any, **kwargs: Any,
    ) -> list[Any]:  # fmt: skip
        try:
            return await original(self, output_channel, nlg, tracker, domain, *args, **kwargs)
        except ActionExecutionRejection:
            raise  # the action refused to run (a form's slot): Rasa predicts another one
        except Exception as exc:  # noqa: BLE001 - the action server failed: tell the customer
            if self.name() == ACTION_SESSION_START_NAME:
                # a new session: Rasa's own session start, the customer's message then
                # gets the one polite answer from the action that fails next
                logger.warning(
                    "action server unavailable: %s of conversation %s replaced by Rasa's "
                    "default (%s)", self.name(), tracker.sender_id, type(exc).__name__,
                )  # fmt: skip
                return await ActionSessionStart().run(output_channel, nlg, tracker, domain)
            # the processor sends the BotUttered to the output channel, as it does with
            # a custom action's messages
            return unavailable_events(tracker, self.name(), exc)

    run._xiaoer_actions_down = True  # type: ignore[attr-defined]
    RemoteAction.run = run
