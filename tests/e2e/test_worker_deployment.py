"""The documented deployment delivers what background jobs produce (issue 13).

The processes run as docs/deployment.md starts them: the action server, the Rasa server
with its HTTP API, and ``xiaoer worker`` (``python -m xiaoer.worker``) with the stack's
endpoints; nothing in the test calls a job itself. A notification queued in the outbox
(what the Doudian push does when an order ships) and the re-announcement to a customer
left waiting for an agent must reach the customer's conversation: the REST inbox and the
tracker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from xiaoer.core.settings import SettingsStore
from xiaoer.devtools.stack import Stack, running_stack
from xiaoer.notifications.outbox import NotificationOutbox

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("worker-stack")
    # agents work around the clock, so a handoff waits in the queue whatever the hour
    SettingsStore(workdir / "var" / "xiaoer.db").save(
        "working_hours", {"start": "00:00", "end": "00:00"}
    )
    settings = {
        "handoff": {"reannounce_after_minutes": 0.05},  # 3 s instead of 5 min
        "console": {"reannounce_check_seconds": 1},
    }
    with running_stack(trained_model, workdir, settings=settings) as s:
        yield s


def wait_for_inbox(stack: Stack, user: str, needle: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    messages: list[dict] = []
    while time.monotonic() < deadline:
        messages = stack.inbox(user)
        if any(needle in (m.get("text") or "") for m in messages):
            return messages
        time.sleep(0.5)
    log = stack.workdir / "worker.log"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no worker.log)"
    raise AssertionError(f"{needle!r} never reached the inbox of {user}: {messages}\n{tail}")


def tracker_bot_texts(stack: Stack, user: str) -> list[str]:
    events = requests.get(
        f"{stack.rasa_url}/conversations/{Stack.conversation(user)}/tracker",
        params={"token": stack.token},
        timeout=10,
    ).json()["events"]
    return [e.get("text") or "" for e in events if e["event"] == "bot"]


def test_a_queued_notification_reaches_the_customer(stack: Stack):
    user = f"buyer-{uuid.uuid4().hex[:8]}"
    stack.say(user, "你好")  # the conversation exists; its inbox token is known
    outbox = NotificationOutbox(stack.workdir / "var" / "xiaoer.db")
    queued = outbox.add(
        Stack.conversation(user),
        "order_shipped",
        "6938271045123400001",
        "您的订单 6938271045123400001 已发货，运单号 YT0000000001",
        dedupe_key=f"shipped-{user}",
    )
    assert queued is not None
    messages = wait_for_inbox(stack, user, "YT0000000001")
    assert [m["text"] for m in messages if "YT0000000001" in m["text"]] == [queued.text]
    assert queued.text in tracker_bot_texts(stack, user)
    # marked sent once the Rasa call returned (the customer can see it a moment before)
    deadline = time.monotonic() + 10
    while outbox.pending(buyer_id=Stack.conversation(user)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert outbox.pending(buyer_id=Stack.conversation(user)) == []
    time.sleep(6)  # another round of the job: nothing is sent twice
    assert tracker_bot_texts(stack, user).count(queued.text) == 1


def test_a_customer_left_waiting_hears_they_still_wait(stack: Stack):
    user = f"buyer-{uuid.uuid4().hex[:8]}"
    handed = " ".join(m.get("text") or "" for m in stack.say(user, "转人工"))
    assert "人工客服" in handed, handed
    messages = wait_for_inbox(stack, user, "久等了")
    told = [m["text"] for m in messages if "久等了" in m["text"]]
    # the only customer waiting is next in line (never "前面还有0位"); again after each timeout
    assert told and "下一位就轮到您了" in told[0] and "前面还有0位" not in told[0], told
    assert told[0] in tracker_bot_texts(stack, user)
