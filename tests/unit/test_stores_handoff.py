"""The handoff queue, the merchant's settings, queue notices, agents and their console logins
on the project database, once on SQLite and once on PostgreSQL (``project_db``).

The concurrency tests hold one transaction open on a first connection and run the store's
call on a second one: the call must wait for the first to commit and then see its result
(an atomic conditional write), never act on what it read before."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from xiaoer.agents import AgentError, AgentStore
from xiaoer.agents.store import agents as agents_table
from xiaoer.console.web import SessionStore
from xiaoer.core.clock import now_beijing
from xiaoer.core.config import get_settings
from xiaoer.core.db import Database
from xiaoer.core.settings import SettingsStore, allowed, handoff_settings
from xiaoer.handoff.store import HandoffStore, handoff_requests
from xiaoer.handoff.waiting import NoticeLog, queue_notice

PASSWORD = "good-pass-123"


@pytest.fixture()
def db(project_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The project database, with a xiaoer.yml of this test's own (see ``yml``)."""
    monkeypatch.setenv("XIAOER_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield project_db
    get_settings.cache_clear()


def yml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "xiaoer.yml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("XIAOER_CONFIG", str(path))
    get_settings.cache_clear()


class Later:
    """Run ``call`` in a thread; ``result()`` waits for it."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.value = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def waiting(self, seconds: float = 0.5) -> bool:
        self.thread.join(seconds)
        return self.thread.is_alive()

    def result(self) -> Any:
        self.thread.join(30)
        assert not self.thread.is_alive(), "the second connection never finished"
        if self.error is not None:
            raise self.error
        return self.value


# --- handoff: two agents, one chat --------------------------------------------------------
def test_two_agents_cannot_take_the_same_chat(db: Database) -> None:
    store = HandoffStore(db)
    request = store.request("buyer-1", "customer_asked", "转人工", group="售后")
    with db.begin() as first:  # agent 7's take, not yet committed
        taken = first.execute(
            handoff_requests.update()
            .where(handoff_requests.c.id == request.id, handoff_requests.c.status == "waiting")
            .values(status="active", agent_id=7)
        )
        assert taken.rowcount == 1
        second = Later(lambda: store.take(request.id, 8))  # agent 8, another connection
        assert second.waiting(), "agent 8's take did not wait for agent 7's"
    assert second.result() is False
    held = store.get(request.id)
    assert held is not None and (held.status, held.agent_id) == ("active", 7)
    assert store.take(request.id, 7) is True  # the holder may take it again
    assert store.take(request.id, 8) is False


def test_agents_racing_for_a_chat_get_it_once(db: Database) -> None:
    store = HandoffStore(db)
    request = store.request("buyer-2", "customer_asked")
    start = threading.Barrier(4)

    def take(agent_id: int) -> bool:
        start.wait()
        return store.take(request.id, agent_id)

    racers = [Later(lambda a=a: take(a)) for a in (11, 12, 13, 14)]
    results = [r.result() for r in racers]
    assert results.count(True) == 1
    winner = (11, 12, 13, 14)[results.index(True)]
    assert store.get(request.id).agent_id == winner  # type: ignore[union-attr]


def test_one_open_request_per_conversation_across_connections(db: Database) -> None:
    store = HandoffStore(db)
    now = now_beijing().isoformat(timespec="seconds")
    with db.begin() as first:  # another process opens a request, not yet committed
        opened = first.execute(
            handoff_requests.insert().values(
                sender_id="buyer-3", reason="customer_asked", created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]
        second = Later(lambda: store.request("buyer-3", "complaint", priority=2))
        assert second.waiting(), "the second request did not wait for the first"
    again = second.result()
    assert again.id == opened and again.priority == 2 and again.status == "waiting"
    with db.connect() as conn:
        open_rows = conn.execute(
            select(func.count()).where(
                handoff_requests.c.sender_id == "buyer-3",
                handoff_requests.c.status.in_(("waiting", "active")),
            )
        ).scalar_one()
    assert open_rows == 1
    # once closed, the conversation may ask again: a new request
    assert store.close(opened, "已处理") is True
    assert store.request("buyer-3", "customer_asked").id != opened


def test_the_queue_on_both_databases(db: Database) -> None:
    store = HandoffStore(db)
    low = store.request("buyer-a", "customer_asked", group="售后", summary={"order_id": "1"})
    high = store.request("buyer-b", "complaint", group="售后", priority=2)
    other = store.request("buyer-c", "customer_asked", group="售前")
    assert [r.id for r in store.waiting("售后")] == [high.id, low.id]
    assert store.position(low) == 1 and store.position(high) == 0
    # a second request of a waiting conversation keeps its summary unless it brings one
    again = store.request("buyer-a", "customer_asked", priority=1)
    assert (again.id, again.priority, again.summary) == (low.id, 1, {"order_id": "1"})
    before = store.revision()
    assert store.reassign(other.id, agent_id=5) is True
    assert store.revision() != before
    assert store.reassign(other.id, group="售后") is True
    assert store.get(other.id).status == "waiting"  # type: ignore[union-attr]
    store.mark_announced(high.id)
    store.mark_announced(high.id)
    assert store.get(high.id).announce_count == 2  # type: ignore[union-attr]
    assert store.close(high.id, "已补偿") is True and store.close(high.id) is False
    assert [r.id for r in store.recent_closed()] == [high.id]
    assert store.active_for("buyer-b") is None and store.active_for("buyer-a") == again


# --- the merchant's settings: console > xiaoer.yml > default ------------------------------
def test_settings_precedence_console_then_yml_then_default(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yml(
        tmp_path,
        monkeypatch,
        "handoff:\n  keywords: [黑猫投诉]\n  minutes_per_case: 4\n"
        "permissions:\n  change_address: false\n",
    )
    settings = handoff_settings()
    assert settings.keywords == ["黑猫投诉"]  # xiaoer.yml over the default
    assert settings.minutes_per_case == 4
    assert settings.reannounce_after_minutes == 5  # the default
    assert allowed("change_address") is False and allowed("give_coupons") is True

    SettingsStore(db).save("keywords", ["差评"], by="boss")
    SettingsStore(db).save("permissions", {"change_address": True})
    settings = handoff_settings()  # the same process sees a save at once
    assert settings.keywords == ["差评"]  # the console over xiaoer.yml
    assert settings.minutes_per_case == 4  # what the console did not save: xiaoer.yml
    assert allowed("change_address") is True

    SettingsStore(db).save("keywords", ["12315"])  # saved again: updated, not added
    assert SettingsStore(db).overrides(fresh=True) == {
        "keywords": ["12315"],
        "permissions": {"change_address": True},
    }
    with pytest.raises(KeyError):
        SettingsStore(db).save("data_dir", "/tmp")


# --- queue notices ------------------------------------------------------------------------
def test_a_waiting_customer_hears_the_queue_once_per_interval(db: Database) -> None:
    HandoffStore(db).request("buyer-q", "customer_asked")
    assert "下一位就是您" in (queue_notice("buyer-q", "人呢", now=1000.0) or "")
    assert queue_notice("buyer-q", "还有人吗", now=1060.0) is None  # within 3 minutes
    assert queue_notice("buyer-q", "人呢？", now=1180.0) is not None
    assert NoticeLog(db).last("buyer-q") == 1180.0


def test_two_messages_at_once_give_one_queue_notice(db: Database) -> None:
    log = NoticeLog(db)
    start = threading.Barrier(4)

    def claim() -> bool:
        start.wait()
        return log.claim("buyer-n", 5000.0, 180)

    racers = [Later(claim) for _ in range(4)]
    assert [r.result() for r in racers].count(True) == 1
    assert log.claim("buyer-n", 5100.0, 180) is False
    assert log.claim("buyer-n", 5180.0, 180) is True


# --- agents and their console logins ------------------------------------------------------
def test_agent_login_record(db: Database) -> None:
    agents = AgentStore(db)
    agent = agents.create("xiaowang", PASSWORD, display_name="小王", groups=["售后"])
    with pytest.raises(AgentError, match="已存在"):
        agents.create("xiaowang", "other-pass-123")
    assert agents.authenticate("xiaowang", PASSWORD) == agent
    assert agents.authenticate("xiaowang", "wrong-pass-123") is None

    sessions = SessionStore(db, 3600)
    token = sessions.create(agent.id)
    session = sessions.get(token)
    assert session is not None and session.agent_id == agent.id and session.csrf
    assert session.expires_at == pytest.approx(time.time() + 3600, abs=60)
    assert sessions.get("forged-token") is None
    other = sessions.create(agent.id)
    sessions.delete(token)
    assert sessions.get(token) is None and sessions.get(other) is not None
    agents.update(agent.id, active=False)
    sessions.delete_for_agent(agent.id)
    assert sessions.get(other) is None
    assert agents.authenticate("xiaowang", PASSWORD) is None

    expired = SessionStore(db, -1).create(agent.id)
    assert sessions.get(expired) is None


def test_two_admins_demoting_each_other_leave_one_admin(db: Database) -> None:
    agents = AgentStore(db)
    first = agents.create("boss-a", PASSWORD, role="admin")
    second = agents.create("boss-b", PASSWORD, role="admin")
    with db.begin() as conn:  # boss-a is being demoted, not yet committed
        conn.execute(
            agents_table.update().where(agents_table.c.id == first.id).values(role="agent")
        )
        other = Later(lambda: agents.update(second.id, role="agent"))
        assert other.waiting(), "the second demotion did not wait for the first"
    with pytest.raises(AgentError, match="管理员"):
        other.result()
    assert agents.count_admins() == 1
    assert agents.get(second.id).is_admin  # type: ignore[union-attr]
