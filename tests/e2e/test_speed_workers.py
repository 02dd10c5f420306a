"""End-to-end: a Rasa server with two Sanic workers on the embedded default (no Redis).

The workers share the file lock store: the turns of one conversation never run at once,
whichever worker receives them; the models are warmed up before a worker accepts
requests, and the warm-up leaves nothing in the tracker store or the event broker.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from xiaoer.devtools.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

WARMED = "models warmed up"


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("two-workers")
    with running_stack(trained_model, workdir, env_extra={"SANIC_WORKERS": "2"}) as s:
        # the first request was answered by a warmed-up worker; wait for the second one
        deadline = time.monotonic() + 300
        while s.log("rasa").count(WARMED) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        yield s


def _events(db: Path, sender: str) -> list[dict]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT data FROM events WHERE sender_id = ? ORDER BY id", (sender,)
        ).fetchall()
    return [json.loads(d) for (d,) in rows]


def test_two_worker_processes_each_warmed_up_before_serving(stack: Stack) -> None:
    workers = subprocess.run(
        ["pgrep", "-P", str(stack.rasa.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(workers) == 2
    log = stack.log("rasa")
    assert log.count(WARMED) == 2
    assert "Sanic workers share the file lock store" in log
    # the warm-up is never stored: no conversation of its own, no events in the broker
    with sqlite3.connect(stack.workdir / "tracker.db") as conn:
        senders = {s for (s,) in conn.execute("SELECT DISTINCT sender_id FROM events")}
    assert not any("warm_up" in s for s in senders)
    with sqlite3.connect(stack.workdir / "events.db") as conn:
        assert conn.execute(
            "SELECT count(*) FROM events WHERE sender_id LIKE '%warm_up%'"
        ).fetchone() == (0,)


def test_one_conversation_is_never_processed_by_two_workers_at_once(stack: Stack) -> None:
    sender = f"two-{uuid.uuid4().hex[:8]}"
    texts = ["你好", "谢谢", "在吗", "好的谢谢", "你好呀", "谢谢亲"] * 3

    def say(text: str) -> int:
        r = requests.post(stack.webhook, json={"sender": sender, "message": text}, timeout=120)
        return r.status_code

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:  # all at once, on both workers
        statuses = list(pool.map(say, texts))
    assert statuses == [200] * len(texts)
    assert (stack.workdir / "var" / "locks" / "conversations.lock").exists()

    events = _events(stack.workdir / "tracker.db", stack.conversation(sender))
    users = [e for e in events if e["event"] == "user"]
    assert sorted(e["text"] for e in users) == sorted(texts)  # each message once
    # turns one after another: a customer message is only read when the previous turn
    # has ended by listening again
    listening = True
    for event in events:
        if event["event"] == "user":
            assert listening, "a turn started while another one of the conversation ran"
            listening = False
        elif event["event"] == "action" and event["name"] == "action_listen":
            listening = True
    # the event broker has the same events, once each, in the same order
    broker = _events(stack.workdir / "events.db", stack.conversation(sender))
    strip = [{k: v for k, v in e.items() if k != "sender_id"} for e in broker]
    assert strip == events
