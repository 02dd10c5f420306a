"""End-to-end: the scale-out profile with real servers from Debian packages, started with
the very commands of docs/deployment.md (xiaoer/devtools/scaleout.py runs its blocks: the
database role, the environment, `xiaoer migrate --endpoints …`, the servers in order).

Two Rasa servers, two action servers, the agent console and a worker, each with a data
folder of its own as on separate machines, share nothing but PostgreSQL (tracker store,
event broker, project database) and Redis (lock store): a conversation may hop between
replicas on every message, as behind a load balancer, and concurrent messages of one
customer must neither be lost nor interleave. Replica i calls action server i.
"""

from __future__ import annotations

import json
import re
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
from sqlalchemy import select

from xiaoer.agents.store import AgentStore
from xiaoer.core.db import database_for
from xiaoer.core.settings import SettingsStore
from xiaoer.devtools.scaleout import ScaleOut, running_scale_out
from xiaoer.devtools.stack import Stack
from xiaoer.leads.store import LeadStore
from xiaoer.shop.sqlite_backend import orders
from xiaoer.worker.events import event_cursor

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
    workdir = tmp_path_factory.mktemp("scale-out")
    with running_scale_out(trained_model, workdir, action_servers=2, console=True) as c:
        # agents work around the clock, so a handoff waits in the queue whatever the hour;
        # saved in the shared database, read by every process (their caches are empty)
        SettingsStore(c.database_url).save("working_hours", {"start": "00:00", "end": "00:00"})
        AgentStore(c.database_url).create("agent-so", PASSWORD, role="admin")
        yield c


PASSWORD = "scale-out-pass-2026"


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
    """Rasa's event broker writes to PostgreSQL; the worker's event follower reads it from
    there and writes the lead into the project database, where every process sees it."""
    user = f"so-{uuid.uuid4().hex[:8]}"
    cluster.say(1, user, "我要批发，手机13812345678")
    store = LeadStore(cluster.database_url)
    deadline = time.monotonic() + 10
    while (
        lead := store.lead_for(Stack.conversation(user))
    ) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lead is not None, "no lead from the PostgreSQL event broker"
    assert lead.phones == ["13812345678"] and lead.category == "wholesale"
    # the worker's read position is this broker's own (keyed by its address, no password)
    pg = cluster.postgres
    with database_for(cluster.database_url).connect() as conn:
        cursors = dict(conn.execute(select(event_cursor.c.name, event_cursor.c.last_id)).all())
    # lead capture's cursor is keyed by the broker; analytics and learning keep their own
    broker_keyed = [name for name in cursors if "://" in name]
    assert broker_keyed == [f"postgresql://{pg.host}:{pg.port}/xiaoer_events"]
    assert cursors[f"postgresql://{pg.host}:{pg.port}/xiaoer_events"] > 0


def test_replicas_started_together_hit_no_database_error(cluster: ScaleOut):
    """`xiaoer migrate --endpoints` created the databases and Rasa's tables before the
    replicas started (at the same moment): none of them tried to create a table, none
    fell back to an in-memory tracker store."""
    problems = re.compile(
        r"UniqueViolation|DuplicateTable|Could not create tables|does not exist|InMemoryTrackerStore"
    )
    for log in sorted(cluster.workdir.glob("rasa-*.log")):
        found = [
            line for line in log.read_text(errors="replace").splitlines() if problems.search(line)
        ]
        assert found == [], f"{log.name}: {found[:3]}"
    migrated = (cluster.workdir / "migrate.log").read_text()
    assert migrated.count("database created") == 3 and migrated.count("tables created") == 2


def console_session(cluster: ScaleOut) -> requests.Session:
    s = requests.Session()

    def csrf() -> str:
        page = s.get(f"{cluster.console_url}/login", timeout=10).text
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found, page[:300]
        return found.group(1)

    r = s.post(
        f"{cluster.console_url}/login",
        data={"username": "agent-so", "password": PASSWORD, "csrf_token": csrf()},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302, r.text[:300]
    home = s.get(f"{cluster.console_url}/", timeout=10).text
    found = re.search(
        r'name="csrf-token" content="([^"]+)"|name="csrf_token" value="([^"]+)"', home
    )
    if found:
        s.headers["X-CSRF-Token"] = found.group(1) or found.group(2)
    return s


def wait_for(predicate, timeout: float = 20.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_handoff_taken_in_the_console_reaches_the_customer(cluster: ScaleOut):
    """The handoff is queued by action server 1 (replica 1), seen and taken in the console
    (its own data folder), the agent's reply goes through replica 1's Rasa API and
    reaches the customer, who reads it through replica 0."""
    user = f"so-{uuid.uuid4().hex[:8]}"
    cluster.say(1, user, "你好")
    queued = text_of(cluster.say(1, user, "转人工"))
    assert "客服" in queued, queued
    agent = console_session(cluster)
    conversation = Stack.conversation(user)

    def waiting_item():
        items = agent.get(f"{cluster.console_url}/api/queue", timeout=10).json()
        rows = items["items"] if isinstance(items, dict) else items
        return next((i for i in rows if i.get("customer") == conversation), None)

    item = wait_for(waiting_item, what="the handoff in the console's queue")
    taken = agent.post(
        f"{cluster.console_url}/handoffs/{item['id']}/take", allow_redirects=False, timeout=10
    )
    assert taken.status_code == 302, taken.text[:300]
    reply = "您好，我是客服小王，这就为您处理～"
    sent = agent.post(
        f"{cluster.console_url}/api/handoffs/{item['id']}/reply", json={"text": reply}, timeout=30
    )
    assert sent.status_code == 200, sent.text[:300]
    messages = wait_for(
        lambda: [m for m in cluster.inbox(0, user) if m.get("text") == reply],
        what="the agent's reply in the customer's inbox",
    )
    assert [m["text"] for m in messages] == [reply]


def test_an_order_check_made_by_one_action_server_holds_on_the_other(cluster: ScaleOut):
    """An anonymous customer's phone check is written by the action server that validated
    it and re-checked by the one that submits: the cancel works across them, and the
    order is cancelled in the shared demo shop."""
    user = f"so-{uuid.uuid4().hex[:8]}"
    asked = text_of(cluster.say(0, user, "帮我取消订单6938271045123400004"))
    assert "收件人手机号后4位" in asked, asked
    confirm = cluster.say(1, user, "0000")
    assert "确认取消" in [b["title"] for r in confirm for b in r.get("buttons") or []], confirm
    done = text_of(cluster.say(0, user, "/affirm"))
    assert "已为您取消" in done, done
    with database_for(cluster.database_url).connect() as conn:
        status = conn.execute(
            select(orders.c.status).where(orders.c.order_id == "6938271045123400004")
        ).scalar_one()
    assert status == "cancelled"


def test_no_process_wrote_a_project_store_into_its_own_folder(cluster: ScaleOut):
    """Separate data folders really are separate: nothing but the shared database holds
    the project's stores (tokens and logs may live in a folder, stores may not)."""
    stray = sorted(
        str(p.relative_to(cluster.workdir))
        for node in ("rasa-0", "rasa-1", "actions-0", "actions-1", "console", "worker")
        for p in cluster.data_dir(node).glob("*.db")
    )
    assert stray == []
