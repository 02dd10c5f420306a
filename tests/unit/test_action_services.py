"""The services the actions translate to, used without Rasa, and the actions' layering.

The handoff rules (``xiaoer.handoff.service``) and the contact-asking rules
(``xiaoer.leads.asking``) take plain data; the actions' own tests (test_handoff.py,
test_leads_actions.py) check what the customer reads through Rasa's side.
"""

from __future__ import annotations

import ast
import graphlib
from datetime import timedelta
from pathlib import Path

import pytest

from xiaoer.core.clock import now_beijing
from xiaoer.core.settings import get_settings_store
from xiaoer.handoff import get_handoff_store
from xiaoer.handoff.service import Conversation, request_handoff
from xiaoer.leads.asking import AskingState, after_answer, thanks

ACTIONS = Path(__file__).resolve().parents[2] / "actions"


def user(intent: str, text: str, **entities: str) -> dict:
    found = [{"entity": k, "value": v} for k, v in entities.items()]
    return {
        "event": "user",
        "text": text,
        "parse_data": {"intent": {"name": intent}, "entities": found, "text": text},
    }


def off_hours_now() -> None:
    """Working hours that exclude the current Beijing time (and never cross midnight)."""
    now = now_beijing()
    start = now + timedelta(hours=1) if now.hour < 22 else now - timedelta(hours=2)
    end = start + timedelta(minutes=30)
    get_settings_store().save("working_hours", {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"})


def test_a_complaint_is_queued_first_with_the_summary(data_dir):
    off_hours_now()  # off hours: queued, the bot keeps answering
    conversation = Conversation(
        sender_id="c1",
        intent="complain",
        intents=["order_status", "complain"],
        slots={"order_id": "6938271045123400002", "handoff_offered": True},
        messages=[("user", "我的订单到哪了"), ("bot", "在路上"), ("user", "太慢了，投诉")],
        order_id="6938271045123400002",
    )
    outcome = request_handoff(conversation, "complaint", "太慢了，投诉")
    assert outcome.message == "handoff_off_hours" and not outcome.paused
    assert outcome.values["back_at"]
    (request,) = get_handoff_store().waiting()
    assert request.sender_id == "c1" and request.priority == 2 and not request.in_hours
    assert request.summary["slots"] == {"order_id": "6938271045123400002"}  # no flags
    assert [m["text"] for m in request.summary["last_messages"]][-1] == "太慢了，投诉"


def test_a_limited_client_is_not_queued(data_dir):
    outcome = request_handoff(Conversation(sender_id="c2", limited=True), "requested", "人工")
    assert outcome.message == "handoff_busy" and outcome.request is None
    assert get_handoff_store().waiting() == []


def state(intent: str, text: str, events: list[dict], **flags: bool) -> AskingState:
    latest = events[-1]
    contacts = [
        (e["entity"], e["value"])
        for e in latest["parse_data"]["entities"]
        if e["entity"] in ("phone", "wechat")
    ]
    return AskingState("c3", intent, text, contacts, events, **flags)


def test_a_price_answer_asks_for_a_contact_unless_refused(data_dir):
    asked = after_answer(state("ask_price", "T恤多少钱", [user("ask_price", "T恤多少钱")]))
    assert asked is not None and asked.message == "ask_contact_ask_price"
    assert asked.mark == "contact_offered"
    refused = [user("ask_price", "多少钱，不用加微信")]
    assert after_answer(state("ask_price", "多少钱，不用加微信", refused)) is None
    assert (
        after_answer(state("ask_price", "多少钱", [user("ask_price", "多少钱")], offered=True))
        is None
    )


def test_the_same_contact_twice_is_noted_already(data_dir):
    first = user("provide_contact", "13912345678", phone="13912345678")
    again = user("provide_contact", "还是13912345678", phone="13912345678")
    assert thanks(state("provide_contact", "13912345678", [first])).mark == "contact_thanked"
    noted = thanks(state("provide_contact", "还是13912345678", [first, again], thanked=True))
    assert noted.message == "contact_already_noted" and noted.mark is None


def _imports(path: Path) -> set[str]:
    """The actions modules ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("actions."):
            found.add(str(node.module).split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("actions.")}
    return found - {path.stem}


def test_the_actions_import_each_other_without_a_cycle():
    graph = {p.stem: _imports(p) for p in ACTIONS.glob("*.py")}
    assert graph["handoff"] and graph["followup"]  # the graph was read
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:  # pragma: no cover - the failure message
        pytest.fail(f"import cycle in actions/: {' -> '.join(cycle.args[1])}")
