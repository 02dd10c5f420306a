"""The event-broker follower: every event once, in order, across restarts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from xiaoer.leads import get_lead_store
from xiaoer.worker.events import EventFollower, broker_db, broker_identity, event_cursor


def broker(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255), data TEXT)"
    )
    return conn


def publish(path: Path, event: dict) -> None:
    with broker(path) as conn:
        conn.execute(
            "INSERT INTO events (sender_id, data) VALUES (?, ?)",
            (event.get("sender_id"), json.dumps(event, ensure_ascii=False)),
        )


def user(sender: str, text: str, message_id: str) -> dict:
    return {
        "event": "user", "sender_id": sender, "text": text, "message_id": message_id,
        "timestamp": 1764000000.0, "parse_data": {"intent": {"name": "provide_contact"}},
    }  # fmt: skip


def test_restart_neither_loses_nor_repeats_events(tmp_path, project_db):
    # the cursor in the project database, on SQLite and PostgreSQL
    events_db, state = tmp_path / "events.db", project_db.url
    seen: list[str] = []

    def follower() -> EventFollower:
        return EventFollower(events_db, state_db=state, handlers=[lambda e: seen.append(e["text"])])

    first = follower()
    assert first.poll() == 0  # no broker table yet: nothing, no error
    for i in range(3):
        publish(events_db, user("s", f"m{i}", str(i)))
    assert first.poll() == 3
    publish(events_db, user("s", "m3", "3"))
    restarted = follower()  # a new process: the cursor comes from the state database
    assert restarted.last_id == 3
    assert restarted.poll() == 1
    assert restarted.poll() == 0
    assert seen == ["m0", "m1", "m2", "m3"]


def test_a_failing_handler_does_not_stop_the_stream(tmp_path, project_db):
    events_db = tmp_path / "events.db"
    publish(events_db, user("s", "boom", "1"))
    publish(events_db, user("s", "ok", "2"))
    seen: list[str] = []

    def handler(event: dict) -> None:
        if event["text"] == "boom":
            raise RuntimeError("bad event")
        seen.append(event["text"])

    f = EventFollower(events_db, state_db=project_db, handlers=[handler])
    assert f.poll() == 2 and seen == ["ok"]


def test_replayed_event_after_a_crash_is_not_counted_twice(data_dir, tmp_path):
    events_db = tmp_path / "events.db"
    publish(events_db, user("dup", "电话 13912345678", "m-1"))
    f = EventFollower(events_db, state_db=data_dir / "xiaoer.db")
    assert f.poll() == 1
    f._save(0)  # a crash after the handler, before the cursor was saved
    assert EventFollower(events_db, state_db=data_dir / "xiaoer.db").poll() == 1
    lead = get_lead_store().lead_for("dup")
    assert lead is not None and len(get_lead_store().activity(lead.id)) == 1


def test_broker_db_is_read_from_endpoints(tmp_path):
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        "event_broker:\n  type: SQL\n  dialect: sqlite\n  db: /data/events.db\n", encoding="utf-8"
    )
    assert broker_db(endpoints) == Path("/data/events.db")
    endpoints.write_text("tracker_store:\n  type: SQL\n", encoding="utf-8")
    assert broker_db(endpoints) is None


def test_each_broker_has_its_own_read_position(tmp_path, project_db):
    """Pointed at another broker, the follower reads that broker from its own position:
    a read position from another database would skip its first rows (earlier versions
    kept one cursor for every broker)."""
    first, second = tmp_path / "a" / "events.db", tmp_path / "b" / "events.db"
    first.parent.mkdir(), second.parent.mkdir()
    for i in range(3):
        publish(first, user("s", f"a{i}", f"a{i}"))
    for i in range(5):
        publish(second, user("s", f"b{i}", f"b{i}"))
    seen: list[str] = []

    def follower(broker: Path) -> EventFollower:
        return EventFollower(
            broker, state_db=project_db, handlers=[lambda e: seen.append(e["text"])]
        )

    assert follower(first).poll() == 3
    assert follower(second).poll() == 5  # all of them, none skipped
    publish(first, user("s", "a3", "a3"))
    assert follower(first).poll() == 1  # the first broker resumes where it stopped
    assert seen == ["a0", "a1", "a2", "b0", "b1", "b2", "b3", "b4", "a3"]


def test_the_broker_identity_has_no_password_and_ignores_the_login():
    key = broker_identity("postgresql://xiaoer:s3cret@db.internal:5432/xiaoer_events")
    assert key == "postgresql://db.internal:5432/xiaoer_events"
    assert broker_identity("postgresql://other:pw@db.internal:5432/xiaoer_events") == key
    assert broker_identity("postgresql://xiaoer:s3cret@db.internal:5432/xiaoer_events2") != key
    assert broker_identity(Path("/srv/var/events.db")) == "sqlite:////srv/var/events.db"


def test_an_earlier_versions_cursor_is_kept_only_where_it_belonged(tmp_path, project_db):
    """Earlier versions' one cursor (``main``) is this broker's on the embedded default
    upgraded in place (SQLite beside SQLite); copied into PostgreSQL it came from another
    database and is not reused."""
    events_db = tmp_path / "events.db"
    for i in range(4):
        publish(events_db, user("s", f"m{i}", str(i)))
    with project_db.begin() as conn:
        conn.execute(event_cursor.insert().values(name="main", last_id=2, updated_at=0.0))
    follower = EventFollower(events_db, state_db=project_db, handlers=[])
    if project_db.dialect == "sqlite":
        assert (follower.last_id, follower.poll()) == (2, 2)
    else:
        assert (follower.last_id, follower.poll()) == (0, 4)
