"""End-to-end: the scale-out profile with real servers from Debian packages.

Two Rasa servers share a PostgreSQL tracker store and a Redis lock store (and one action
server): a conversation may hop between replicas on every message, as behind a load
balancer, and concurrent messages of one customer must neither be lost nor interleave.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest
import redis
import requests

from xiaoer.devtools.scaleout import ScaleOut, running_scale_out
from xiaoer.devtools.stack import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.model,
    pytest.mark.skipif(
        not shutil.which("redis-server") or not Path("/usr/lib/postgresql/15/bin/initdb").exists(),
        reason="scale-out services not installed (scripts/system-deps.sh installs them)",
    ),
]


@pytest.fixture(scope="module")
def cluster(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut]:
    with running_scale_out(trained_model, tmp_path_factory.mktemp("scale-out")) as c:
        yield c


def text_of(replies: list[dict]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def stored_user_texts(cluster: ScaleOut, sender: str) -> list[str]:
    pg = cluster.postgres
    with psycopg2.connect(
        host=pg.host, port=pg.port, dbname=pg.db, user=pg.user, password=pg.password
    ) as conn, conn.cursor() as cur:  # fmt: skip
        cur.execute(
            "SELECT data FROM events WHERE sender_id = %s AND type_name = 'user' ORDER BY id",
            (Stack.conversation(sender),),  # REST conversations are rest:<sender>
        )
        return [json.loads(row[0])["text"] for row in cur.fetchall()]


def test_a_form_continues_on_the_other_replica(cluster: ScaleOut):
    user = f"so-{uuid.uuid4().hex[:8]}"
    asked = text_of(cluster.say(0, user, "我的快递到哪里了"))
    assert "订单号" in asked or "订单编号" in asked
    answer = text_of(cluster.say(1, user, "6938 2710 4512 3400 001"))
    assert "待发货" in answer and "48小时内" in answer
    assert stored_user_texts(cluster, user) == ["我的快递到哪里了", "6938 2710 4512 3400 001"]


def test_both_replicas_serve_the_same_history(cluster: ScaleOut):
    user = f"so-{uuid.uuid4().hex[:8]}"
    cluster.say(0, user, "你好")
    events = requests.get(
        f"{cluster.rasa_urls[1]}/conversations/{Stack.conversation(user)}/tracker",
        params={"token": "test-token"},
        timeout=30,
    ).json()["events"]
    assert any(e["event"] == "user" and e["text"] == "你好" for e in events)
    assert any(e["event"] == "bot" and "店小二" in (e.get("text") or "") for e in events)


def test_concurrent_messages_of_one_customer_are_all_kept(cluster: ScaleOut):
    """Eight messages at once, alternating replicas: the Redis lock serialises the turns,
    so every message is stored once and answered, and none is lost to a race."""
    user = f"so-{uuid.uuid4().hex[:8]}"
    messages = [
        "你好",
        "新疆包邮吗",
        "支持七天无理由吗",
        "几天发货",
        "能开发票吗",
        "谢谢",
        "在吗",
        "有优惠吗",
    ]
    stats = redis.Redis(host=cluster.redis.host, port=cluster.redis.port)
    commands_before = int(stats.info("stats")["total_commands_processed"])
    with ThreadPoolExecutor(max_workers=len(messages)) as pool:
        replies = list(
            pool.map(lambda im: cluster.say(im[0] % 2, user, im[1]), enumerate(messages))
        )
    assert all(text_of(r) for r in replies), "every message gets an answer"
    assert sorted(stored_user_texts(cluster, user)) == sorted(messages)
    events = requests.get(
        f"{cluster.rasa_urls[0]}/conversations/{Stack.conversation(user)}/tracker",
        params={"token": "test-token"},
        timeout=30,
    ).json()["events"]
    user_events = [e for e in events if e["event"] == "user"]
    assert sorted(e["text"] for e in user_events) == sorted(messages)
    # each turn completed before the next began: a user message is always followed by
    # the bot's answer before the next user message
    kinds = [e["event"] for e in events if e["event"] in {"user", "bot"}]
    assert "user" not in {kinds[i + 1] for i, k in enumerate(kinds[:-1]) if k == "user"}
    assert int(stats.info("stats")["total_commands_processed"]) > commands_before


def test_contacts_become_leads_whichever_replica_answered(cluster: ScaleOut):
    """Rasa's event broker writes to PostgreSQL; the event follower reads it from there."""
    from xiaoer.leads.store import LeadStore

    user = f"so-{uuid.uuid4().hex[:8]}"
    cluster.say(1, user, "我要批发，手机13812345678")
    store = LeadStore(cluster.workdir / "var" / "xiaoer.db")
    deadline = time.monotonic() + 10
    while (
        lead := store.lead_for(Stack.conversation(user))
    ) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lead is not None, "no lead from the PostgreSQL event broker"
    assert lead.phones == ["13812345678"] and lead.category == "wholesale"
