"""The local spool of Douyin webhooks kept while the database is down (xiaoer/douyin/spool.py)."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from xiaoer.douyin.spool import Spool, SpooledEvent


def event(n: int, sender: str = "buyer") -> SpooledEvent:
    envelope = {"event": "im_receive_msg", "content": {"server_message_id": f"m{n}"}}
    return SpooledEvent(envelope, sender, 1_764_000_000_000 + n, f"d{n}", 1.0)


def test_append_keeps_one_private_json_line_per_event(tmp_path: Path):
    spool = Spool(tmp_path / "var" / "douyin-spool.jsonl")
    assert spool.size() == 0 and spool.import_into(lambda e: None) == []
    assert spool.append(event(1)) and spool.append(event(2))
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
    lines = spool.path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["msg_id"] for line in lines] == ["d1", "d2"]
    got: list[SpooledEvent] = []
    assert spool.import_into(got.append) == [event(1), event(2)] == got
    assert spool.size() == 0 and not spool.path.exists()


def test_a_corrupt_line_is_skipped_with_a_warning(tmp_path: Path, caplog):
    spool = Spool(tmp_path / "douyin-spool.jsonl")
    spool.append(event(1))
    with spool.path.open("ab") as f:
        f.write(b'{"envelope": {"event": "im_rec\n')  # half-written (a power cut)
        f.write(b'{"unknown": 1}\n')
    spool.append(event(2))
    got: list[SpooledEvent] = []
    with caplog.at_level(logging.WARNING, logger="xiaoer.douyin.spool"):
        spool.import_into(got.append)
    assert [e.msg_id for e in got] == ["d1", "d2"]
    skipped = [r.getMessage() for r in caplog.records if "unreadable, skipped" in r.getMessage()]
    assert len(skipped) == 2 and "line 2" in skipped[0] and "line 3" in skipped[1]
    assert spool.size() == 0


def test_a_full_spool_refuses_with_an_error_and_keeps_what_it_has(tmp_path: Path, caplog):
    one = len(json.dumps(event(1).__dict__, ensure_ascii=False)) + 1
    spool = Spool(tmp_path / "douyin-spool.jsonl", max_bytes=2 * one + 5)
    assert spool.append(event(1)) and spool.append(event(2))
    with caplog.at_level(logging.ERROR, logger="xiaoer.douyin.spool"):
        assert not spool.append(event(3))
        assert not spool.append(event(4))
    full = [r for r in caplog.records if "douyin spool full" in r.getMessage()]
    assert len(full) == 1 and full[0].levelno == logging.ERROR  # once, not per webhook
    got: list[SpooledEvent] = []
    spool.import_into(got.append)
    assert [e.msg_id for e in got] == ["d1", "d2"]
    assert spool.append(event(3))  # room again once imported


def test_an_import_that_fails_keeps_the_event_and_those_after_it(tmp_path: Path):
    spool = Spool(tmp_path / "douyin-spool.jsonl")
    for n in (1, 2, 3):
        spool.append(event(n))
    recorded: list[str] = []

    def record(e: SpooledEvent) -> None:
        if e.msg_id == "d2":
            raise ConnectionError("the database went away again")
        recorded.append(e.msg_id)

    with pytest.raises(ConnectionError):
        spool.import_into(record)
    assert recorded == ["d1"]
    spool.import_into(lambda e: recorded.append(e.msg_id))
    assert recorded == ["d1", "d2", "d3"] and spool.size() == 0
