"""The speed levers of the Rasa server (xiaoer/plugins/speed.py) keep Rasa's behaviour:
the compiled validator rejects what ``jsonschema.validate`` rejects, with the same error;
the one-transaction tracker store and event broker write exactly the rows Rasa's own
classes write, each event once and in order; SQLite files are in WAL mode."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from jsonschema import ValidationError
from rasa.core.actions.action import RemoteAction
from rasa.core.brokers.sql import SQLEventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from xiaoer.plugins import speed

STOCK_VALIDATE = RemoteAction._validate_action_result

VALID = [
    {},
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "order_id", "value": "6938271045123400002"}]},
    {
        "responses": [
            {"text": "亲，已为您查到订单～", "buttons": [{"title": "好", "payload": "/a"}]}
        ]
    },
    {
        "events": [{"event": "action", "name": "action_listen"}],
        "responses": [{"response": "utter_x"}],
    },
]
INVALID = [
    {"events": "slot"},  # not a list
    {"events": [{"event": "no_such_event"}]},  # unknown event
    {"events": [{"name": "order_id"}]},  # no event name
    {"responses": {"text": "hi"}},  # not a list
    {"events": [{"event": "slot", "name": "x", "timestamp": "yesterday"}]},  # not a number
    {"events": [None]},
]


def _stock(result: dict[str, Any]) -> ValidationError | None:
    try:
        STOCK_VALIDATE(RemoteAction("action_x", None), result)
    except ValidationError as exc:
        return exc
    return None


def _compiled(result: dict[str, Any]) -> ValidationError | None:
    try:
        speed.validate_action_result(None, result)
    except ValidationError as exc:
        return exc
    return None


@pytest.mark.parametrize("result", VALID)
def test_compiled_validator_accepts_what_stock_accepts(result: dict[str, Any]) -> None:
    assert _stock(result) is None
    assert _compiled(result) is None


@pytest.mark.parametrize("result", INVALID)
def test_compiled_validator_rejects_what_stock_rejects_with_the_same_error(
    result: dict[str, Any],
) -> None:
    stock, compiled = _stock(result), _compiled(result)
    assert stock is not None, "the example must be invalid for Rasa itself"
    assert compiled is not None
    assert compiled.message == stock.message
    assert list(compiled.absolute_path) == list(stock.absolute_path)
    assert "Failed to validate Action server response" in compiled.message


def test_installed_validator_is_the_one_remote_actions_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RemoteAction, "_validate_action_result", STOCK_VALIDATE)
    speed.install_compiled_validator()
    action = RemoteAction("action_check_order", None)
    with pytest.raises(ValidationError):
        action._validate_action_result({"events": [{"event": "no_such_event"}]})
    assert action._validate_action_result({"events": []}) is True


# --- one transaction per turn ----------------------------------------------------------------
DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [greet, order_status]
slots:
  order_id:
    type: text
    mappings: [{type: custom}]
responses:
  utter_greet: [{text: 你好}]
"""
)


def _turns() -> list[list[Any]]:
    """Three turns of a conversation, as the processor appends them."""
    return [
        [
            ActionExecuted(ACTION_SESSION_START_NAME, timestamp=1.0),
            SessionStarted(timestamp=1.1),
            ActionExecuted(ACTION_LISTEN_NAME, timestamp=1.2),
            UserUttered(
                "你好", {"name": "greet", "confidence": 0.9}, timestamp=2.0, message_id="m1"
            ),  # fmt: skip
            ActionExecuted("utter_greet", timestamp=2.1),
            BotUttered("你好", timestamp=2.2),
            ActionExecuted(ACTION_LISTEN_NAME, timestamp=2.3),
        ],
        [
            UserUttered(
                "订单到哪了",
                {"name": "order_status", "confidence": 0.8},
                timestamp=3.0,
                message_id="m2",
            ),  # fmt: skip
            SlotSet("order_id", "6938271045123400002", timestamp=3.1),
            ActionExecuted("action_order_status", timestamp=3.2),
            BotUttered("已发货", timestamp=3.3),
            ActionExecuted(ACTION_LISTEN_NAME, timestamp=3.4),
        ],
        [
            UserUttered(
                "谢谢", {"name": "greet", "confidence": 0.7}, timestamp=4.0, message_id="m3"
            ),  # fmt: skip
            ActionExecuted(ACTION_LISTEN_NAME, timestamp=4.1),
        ],
    ]


async def _save_turns(store: Any, sender: str) -> None:
    tracker = DialogueStateTracker(sender, DOMAIN.slots)
    for turn in _turns():
        for event in turn:
            tracker.update(event)
        await store.save(tracker)
        # the next turn works on the tracker as the store gives it back
        tracker = await store.retrieve(sender)


def _rows(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


async def test_turn_stores_write_what_rasa_writes_each_event_once_in_order(tmp_path: Path) -> None:
    stock_broker = SQLEventBroker(db=str(tmp_path / "stock-events.db"))
    stock = SQLTrackerStore(DOMAIN, db=str(tmp_path / "stock-tracker.db"),
                            event_broker=stock_broker)  # fmt: skip
    broker = speed.turn_event_broker()(db=str(tmp_path / "events.db"))
    store = speed.turn_tracker_store()(DOMAIN, db=str(tmp_path / "tracker.db"), event_broker=broker)
    for s in (stock, store):
        await _save_turns(s, "rest:buyer")
        await _save_turns(s, "douyin:other")

    events = "SELECT id, sender_id, data FROM events ORDER BY id"
    ours, theirs = (
        _rows(tmp_path / "events.db", events),
        _rows(tmp_path / "stock-events.db", events),
    )
    assert ours == theirs  # same ids, senders and JSON, byte for byte
    expected = [e.as_dict() for turn in _turns() for e in turn]
    got = [json.loads(d) for _id, sender, d in ours if sender == "rest:buyer"]
    assert [{k: v for k, v in e.items() if k != "sender_id"} for e in got] == expected
    assert [json.loads(d)["message_id"] for _i, _s, d in ours
            if json.loads(d)["event"] == "user"] == ["m1", "m2", "m3"] * 2  # fmt: skip

    tracker_rows = (
        "SELECT sender_id, type_name, timestamp, intent_name, action_name, data "
        "FROM events ORDER BY id"
    )
    assert _rows(tmp_path / "tracker.db", tracker_rows) == _rows(
        tmp_path / "stock-tracker.db", tracker_rows
    )
    back, stock_back = await store.retrieve("rest:buyer"), await stock.retrieve("rest:buyer")
    assert back is not None and stock_back is not None
    assert [e.as_dict() for e in back.events] == [e.as_dict() for e in stock_back.events]
    assert back.events[-1].as_dict() == expected[-1]


async def test_saving_an_unchanged_tracker_writes_nothing(tmp_path: Path) -> None:
    broker = speed.turn_event_broker()(db=str(tmp_path / "events.db"))
    store = speed.turn_tracker_store()(DOMAIN, db=str(tmp_path / "tracker.db"), event_broker=broker)
    await _save_turns(store, "rest:a")
    tracker = await store.retrieve("rest:a")
    await store.save(tracker)
    await store.save(tracker)
    count = "SELECT count(*) FROM events"
    assert _rows(tmp_path / "events.db", count) == [(sum(len(t) for t in _turns()),)]
    assert _rows(tmp_path / "tracker.db", count) == [(sum(len(t) for t in _turns()),)]


async def test_a_broker_without_batches_gets_every_event_once(tmp_path: Path) -> None:
    published: list[dict[str, Any]] = []

    class OneByOne:
        def publish(self, event: dict[str, Any]) -> None:
            published.append(event)

    store = speed.turn_tracker_store()(DOMAIN, db=str(tmp_path / "t.db"), event_broker=OneByOne())
    await _save_turns(store, "rest:b")
    assert [e["event"] for e in published] == [e.as_dict()["event"] for t in _turns() for e in t]
    assert {e["sender_id"] for e in published} == {"rest:b"}


def test_sqlite_files_are_in_wal_mode_with_normal_sync(tmp_path: Path) -> None:
    broker = speed.turn_event_broker()(db=str(tmp_path / "events.db"))
    store = speed.turn_tracker_store()(DOMAIN, db=str(tmp_path / "tracker.db"))
    for engine in (broker.engine, store.engine):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    # other readers (the worker's event follower) see WAL in the file itself
    assert _rows(tmp_path / "events.db", "PRAGMA journal_mode") == [("wal",)]


def test_type_sql_in_the_endpoints_builds_the_turn_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    import rasa.core.brokers.sql as rasa_broker
    import rasa.core.tracker_store as rasa_store

    monkeypatch.setattr(rasa_broker, "SQLEventBroker", SQLEventBroker)
    monkeypatch.setattr(rasa_store, "SQLTrackerStore", SQLTrackerStore)
    speed.install_turn_stores()
    assert rasa_broker.SQLEventBroker is speed.turn_event_broker()
    assert rasa_store.SQLTrackerStore is speed.turn_tracker_store()
    assert issubclass(rasa_store.SQLTrackerStore, SQLTrackerStore)


def test_levers_off_for_the_stock_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(speed.LEVERS_ENV, "off")
    monkeypatch.setattr(RemoteAction, "_validate_action_result", STOCK_VALIDATE)
    assert speed.install() is False
    assert RemoteAction._validate_action_result is STOCK_VALIDATE


# --- the action server's memory -------------------------------------------------------------
def test_the_action_server_loads_no_rasa_and_no_tensorflow(tmp_path: Path) -> None:
    """The actions and the action server import neither Rasa nor TensorFlow (nor pkuseg):
    about 110 MB instead of 600 MB per action server."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    probe = (
        "import sys\n"
        "from xiaoer.servers.actionserver import create_app\n"
        "app = create_app('actions', 'secret')\n"
        "print(sorted(m for m in ('rasa', 'tensorflow', 'pkuseg', 'sklearn') if m in sys.modules))\n"
        "print(len(app.router.routes) > 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(root),
             "XIAOER_DATA_DIR": str(tmp_path / "var")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["[]", "True"]
