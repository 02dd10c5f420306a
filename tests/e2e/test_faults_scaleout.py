"""Faults of the scale-out profile (issue 14): two Rasa servers on PostgreSQL and Redis
(xiaoer/devtools/scaleout.py, the commands of docs/deployment.md), the Douyin platform
played by the simulator, which delivers its webhooks round robin to the two servers and
retries on the other one when a server does not answer (as a load balancer does).

* a Rasa server killed with SIGKILL under load: every webhook acknowledged with 200 is
  answered exactly once, by the other server;
* PostgreSQL, then Redis, restarted under load: clear errors while down, recovery without
  a manual step, no conversation corrupted.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from xiaoer.core.db import database_for
from xiaoer.devtools.scaleout import ScaleOut, running_scale_out
from xiaoer.douyin.simulator import DouyinSimulator, running_simulator
from xiaoer.douyin.store import douyin_events

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.model,
    pytest.mark.skipif(
        not shutil.which("redis-server") or not Path("/usr/lib/postgresql/15/bin/initdb").exists(),
        reason="scale-out services not installed (scripts/system-deps.sh installs them)",
    ),
]

TOKEN = "test-token"
QUESTIONS = ["你好", "发什么快递", "支持七天无理由吗"]


@pytest.fixture(scope="module")
def cluster(
    trained_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ScaleOut, DouyinSimulator]]:
    workdir = tmp_path_factory.mktemp("faults-scale-out")
    douyin = {
        "reorder_window_seconds": 0.1,
        "outbox_resend_seconds": 1,
        "sweep_seconds": 1,
        "server_lease_seconds": 4,  # a dead server is taken over within seconds
    }
    # a conversation lock held by a killed server expires after 10 s (Rasa's default: 60)
    env = {"TICKET_LOCK_LIFETIME": "10"}
    with running_simulator() as sim:
        with running_scale_out(
            trained_model, workdir, env={**sim.env(), **env}, settings={"douyin": douyin}
        ) as c:
            sim.webhook_urls = [f"{url}/webhooks/douyin/webhook" for url in c.rasa_urls]
            sim.webhook_url = sim.webhook_urls[-1]  # the platform's echoes of sent messages
            for replica in range(2):  # the first turns of a server are slow (model warm-up)
                for text in QUESTIONS:
                    assert c.say(replica, f"warm-up-{replica}", text)
            yield c, sim


def tracker(c: ScaleOut, replica: int, sender: str) -> dict:
    r = requests.get(
        f"{c.rasa_urls[replica]}/conversations/{sender}/tracker",
        params={"token": TOKEN},
        timeout=30,
    )
    r.raise_for_status()
    return dict(r.json())


def wait_answered(sim: DouyinSimulator, sent: dict[str, list[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for who, ids in sent.items():
        while {r.answered for r in sim.replies(who)} < set(ids):
            missing = set(ids) - {r.answered for r in sim.replies(who)}
            assert time.monotonic() < deadline, f"{who} still waits for answers to {missing}"
            sim.wait_replies(who, len(sim.replies(who)) + 1, timeout=2)


def assert_exactly_once(
    c: ScaleOut,
    sim: DouyinSimulator,
    sent: dict[str, list[str]],
    taken_over: frozenset[str] = frozenset(),
) -> None:
    """Each acknowledged message answered, in order, once on the platform and once in the
    conversation (a turn run twice would show its user message twice).

    ``taken_over``: customers whose message a killed server had in hand. One reply of one of
    them may arrive twice: the platform's send API has no idempotency key, so a server
    killed after the platform took a reply and before it recorded the send leaves a reply
    the survivor cannot know was sent; it sends it again rather than risk losing it (the
    platform contract: never drop). The turn itself still runs once (checked below)."""
    resent = 0
    for who, ids in sent.items():
        received = sim.replies(who)
        assert list(dict.fromkeys(r.answered for r in received)) == ids, (who, received)
        pairs = [(r.answered, r.text) for r in received]
        twice = len(pairs) - len(set(pairs))
        if twice and who in taken_over:
            resent += twice
        else:
            assert twice == 0, f"delivered twice to {who}: {pairs}"
        user_ids = Counter(
            e.get("message_id")
            for e in tracker(c, 1, who)["events"]
            if e["event"] == "user" and e.get("message_id") in ids
        )
        assert set(user_ids) == set(ids) and max(user_ids.values()) == 1, (who, user_ids)
    assert resent <= 1, f"{resent} replies sent twice after the kill: more than its one window"


# --- 2. a Rasa server killed with SIGKILL under load ------------------------------------------
def wait_both_servers_in_a_turn(c: ScaleOut, customers: list[str], timeout: float) -> None:
    """Return as soon as two servers each hold a claimed, unanswered event of these
    customers (whichever server is replica 0, it is then answering one)."""
    db = database_for(c.database_url)  # cached: the test below uses the same one
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.connect() as conn:
            claimers = {
                row.claimed_by
                for row in conn.execute(
                    select(douyin_events.c.claimed_by).where(
                        douyin_events.c.sender_id.in_(customers),
                        douyin_events.c.processed_at.is_(None),
                        douyin_events.c.claimed_by.is_not(None),
                    )
                )
            }
        if len(claimers) >= 2:
            return
        time.sleep(0.02)


def test_a_rasa_server_killed_under_load_every_acknowledged_message_answered_once(cluster):
    c, sim = cluster
    customers = [f"dy-kill-{i:02d}-{uuid.uuid4().hex[:6]}" for i in range(16)]
    acknowledged: dict[str, list[str]] = {who: [] for who in customers}
    refused: list[str] = []
    lock = threading.Lock()

    def chat(who: str) -> None:
        for question in QUESTIONS:  # without waiting for the answers
            delivery = sim.say(who, question)
            with lock:
                if delivery.ok:
                    acknowledged[who].append(delivery.server_message_id)
                else:
                    refused.append(f"{delivery.statuses} {delivery.seconds} {delivery.answer}")
            time.sleep(0.3)

    with ThreadPoolExecutor(max_workers=len(customers)) as pool:
        futures = [pool.submit(chat, who) for who in customers]
        # killed while both servers are inside a turn (an event claimed, not answered): a
        # fixed delay missed it on a slower machine, where the turns had not started yet
        wait_both_servers_in_a_turn(c, customers, timeout=30)
        c.kill_replica(0)
        killed_at = time.time()
        for future in futures:
            future.result()
    assert refused == [], f"the platform's retry on the other server is a 200: {refused}"

    wait_answered(sim, acknowledged, timeout=90)
    time.sleep(3)  # a duplicate would come now
    log = c.log("rasa-1")
    taken_over = frozenset(who for who in customers if f"of {who} taken over from" in log)
    assert_exactly_once(c, sim, acknowledged, taken_over)
    assert sim.rejected == []
    # the killed server had messages acknowledged and not answered: the other took them
    db = database_for(c.database_url)
    with db.connect() as conn:
        rows = conn.execute(
            select(douyin_events.c.received_by, douyin_events.c.claimed_by).where(
                douyin_events.c.sender_id.in_(customers)
            )
        ).all()
    receivers = {r.received_by for r in rows}
    assert len(receivers) == 2, receivers  # both servers took webhooks
    assert "taken over from" in log, "the kill hit no message in flight: nothing was tested"
    taken = [line for line in log.splitlines() if "taken over from" in line]
    print(f"\n{len(taken)} message(s) taken over after the kill at {killed_at:.0f}")


# --- 3. PostgreSQL and Redis restarted under load ----------------------------------------------
class Load:
    """REST customers (alternating servers) and Douyin customers writing without pause."""

    def __init__(self, c: ScaleOut, sim: DouyinSimulator, tag: str) -> None:
        self.c, self.sim = c, sim
        self.rest_users = [f"{tag}-rest-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
        self.customers = [f"{tag}-dy-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
        self.rest: list[tuple[str, str, float, int, dict | list]] = []
        self.acknowledged: dict[str, list[str]] = {who: [] for who in self.customers}
        self.not_acknowledged = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            *(threading.Thread(target=self._rest, args=(u,)) for u in self.rest_users),
            *(threading.Thread(target=self._douyin, args=(w,)) for w in self.customers),
        ]

    def _rest(self, user: str) -> None:
        i = 0
        replicas = alive(self.c)  # a server killed by an earlier test stays down
        while not self._stop.is_set():
            text = QUESTIONS[i % len(QUESTIONS)]
            url = f"{self.c.rasa_urls[replicas[i % len(replicas)]]}/webhooks/rest/webhook"
            try:
                r = requests.post(url, json={"sender": user, "message": text}, timeout=60)
                status, body = r.status_code, r.json()
            except (requests.RequestException, ValueError) as exc:
                status, body = 0, {"error": str(exc)}
            with self._lock:
                self.rest.append((user, text, time.time(), status, body))
            i += 1
            time.sleep(0.3)

    def _douyin(self, who: str) -> None:
        i = 0
        while not self._stop.is_set():
            delivery = self.sim.say(who, QUESTIONS[i % len(QUESTIONS)])
            with self._lock:
                if delivery.ok:
                    self.acknowledged[who].append(delivery.server_message_id)
                else:
                    self.not_acknowledged += 1
            i += 1
            time.sleep(0.5)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)


def alive(c: ScaleOut) -> list[int]:
    return [i for i, proc in enumerate(c.rasa) if proc.poll() is None]


def tracebacks(c: ScaleOut) -> int:
    return sum(c.log(f"rasa-{i}").count("Traceback") for i in range(2))


def assert_recovered(c: ScaleOut, sim: DouyinSimulator, load: Load, up_at: float, service: str):
    statuses = Counter(status for *_, status, _ in load.rest)
    assert set(statuses) <= {200, 503}, statuses  # never a bare 500, never a hang
    assert statuses[503] >= 1, f"{service} was never missed: nothing was tested ({statuses})"
    for *_, status, body in load.rest:
        if status == 503:  # polite, in Chinese, says to try again
            assert isinstance(body, dict) and "稍" in body["message"], body
    # recovery without a manual step: every message some seconds after the restart works
    late = [(u, t, s) for u, t, at, s, _ in load.rest if at > up_at + 8]
    assert late and all(s == 200 for *_, s in late), late
    # conversations are whole: each answered message once in the tracker, the turn closed
    for user in load.rest_users:
        answered = [t for u, t, _, s, _ in load.rest if u == user and s == 200]
        events = tracker(c, alive(c)[0], f"rest:{user}")["events"]
        said = [e["text"] for e in events if e["event"] == "user"]
        failed = sum(1 for u, *_, s, _ in load.rest if u == user and s != 200)
        assert len(answered) <= len(said) <= len(answered) + failed, (user, said, answered)
        assert events[-1]["event"] == "action" and events[-1]["name"] == "action_listen"
        reply = c.say(alive(c)[0], user, "发什么快递")
        assert "快递" in "".join(m.get("text") or "" for m in reply), reply
    # Douyin: what the platform got a 200 for is answered, once, in order
    wait_answered(sim, load.acknowledged, timeout=90)
    time.sleep(2)
    assert_exactly_once(c, sim, load.acknowledged)
    # the logs name the store
    assert any(f"{service} unavailable" in c.log(f"rasa-{i}") for i in alive(c))


def restarted_under_load(
    cluster: tuple[ScaleOut, DouyinSimulator],
    tag: str,
    service: str,
    stop: Callable[[], None],
    start: Callable[[], None],
    down: float,
    after: float,
) -> None:
    """``service`` stopped ``down`` seconds under load, started again, watched ``after``
    seconds: the load recovers (assert_recovered) without a storm of tracebacks."""
    c, sim = cluster
    before = tracebacks(c)
    with Load(c, sim, tag) as load:
        time.sleep(3)
        stop()
        time.sleep(down)
        start()
        up_at = time.time()
        time.sleep(after)
    assert_recovered(c, sim, load, up_at, service)
    assert tracebacks(c) - before <= 4, f"a traceback storm while {service} was down"


def test_postgresql_restarted_under_load(cluster):
    from xiaoer.devtools.services import start_postgres, stop_postgres

    pg = cluster[0].postgres
    restarted_under_load(cluster, "pg", "PostgreSQL",
                         lambda: stop_postgres(pg), lambda: start_postgres(pg), 6, 14)  # fmt: skip


def test_redis_restarted_under_load(cluster):
    from xiaoer.devtools.services import start_redis, stop_redis

    redis = cluster[0].redis
    restarted_under_load(cluster, "redis", "Redis",
                         lambda: stop_redis(redis), lambda: start_redis(redis), 5, 12)  # fmt: skip


def test_douyin_messages_during_a_database_outage_longer_than_the_retries_are_kept(cluster):
    """PostgreSQL down 20 s (the platform's 3 tries span ~15 s): every webhook is
    acknowledged (kept in the server's local spool), and every message is answered once,
    in the customer's order, after the database is back."""
    from xiaoer.devtools.services import start_postgres, stop_postgres

    c, sim = cluster
    customers = [f"dy-spool-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    acknowledged: dict[str, list[str]] = {who: [] for who in customers}
    refused: list[str] = []
    lock = threading.Lock()
    stop_postgres(c.postgres)
    try:

        def chat(who: str) -> None:
            for i in range(6):  # one message every 3 s across the outage
                delivery = sim.say(who, QUESTIONS[i % len(QUESTIONS)])
                with lock:
                    if delivery.ok:
                        acknowledged[who].append(delivery.server_message_id)
                    else:
                        refused.append(f"{who} {delivery.statuses}")
                time.sleep(3)

        with ThreadPoolExecutor(max_workers=len(customers)) as pool:
            list(pool.map(chat, customers))
    finally:
        start_postgres(c.postgres)
    assert refused == [], f"webhooks lost during the outage: {refused}"
    assert all(len(ids) == 6 for ids in acknowledged.values()), acknowledged
    wait_answered(sim, acknowledged, timeout=90)
    time.sleep(3)  # a duplicate would come now
    assert_exactly_once(c, sim, acknowledged)
    assert any("kept in the local spool" in c.log(f"rasa-{i}") for i in alive(c))
    for i in alive(c):  # everything imported: the spools are empty
        assert not (c.data_dir(f"rasa-{i}") / "douyin-spool.jsonl").exists()
