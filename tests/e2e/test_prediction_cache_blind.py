"""End-to-end: the blind conversations (bench/data/blind/conversations.yml) choose the
same actions, by the same policies, with the same confidences, with and without the cache
of TED's predictions (xiaoer/plugins/prediction_cache.py): one stack each, fresh data."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from xiaoer.devtools.stack import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
BLIND = ROOT / "bench" / "data" / "blind" / "conversations.yml"


def _play(model: Path, workdir: Path, cache: str) -> dict[str, list[tuple]]:
    conversations = yaml.safe_load(BLIND.read_text(encoding="utf-8"))["conversations"]
    with running_stack(model, workdir, env_extra={"XIAOER_POLICY_CACHE": cache}) as stack:
        for conv in conversations:
            for turn in conv["turns"]:
                stack.say(f"blind-{conv['id']}", turn["user"])
        names = {stack.conversation(f"blind-{c['id']}"): c["id"] for c in conversations}
        log = stack.log("rasa")
    assert f"policy prediction cache {cache})" in log
    chosen: dict[str, list[tuple]] = {c["id"]: [] for c in conversations}
    with sqlite3.connect(workdir / "tracker.db") as conn:
        rows = conn.execute("SELECT sender_id, data FROM events ORDER BY id").fetchall()
    for sender, data in rows:
        event = json.loads(data)
        if sender in names and event["event"] == "action":
            chosen[names[sender]].append(
                (event["name"], event.get("policy"), event.get("confidence"))
            )
    return chosen


def test_blind_conversations_choose_the_same_actions_with_the_cache(
    trained_model: Path, tmp_path: Path
) -> None:
    without = _play(trained_model, tmp_path / "without", "off")
    with_cache = _play(trained_model, tmp_path / "with", "on")
    assert sum(len(v) for v in without.values()) > 159  # every turn took actions
    assert with_cache == without
