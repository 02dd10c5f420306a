"""How long the analytics store takes to read the event stream, per 10,000 events.

Writes a broker file (Rasa's ``events`` table) with the scripted conversations of the
analytics tests repeated under new senders (each copy a day later) until ``--events``
rows, then measures: the follower applying them incrementally (the worker's job, in its
batches), a full rebuild, and the dashboard's figures for the whole range.

    .venv/bin/python bench/analytics.py [--events 50000] [--database URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import analytics_script as s  # noqa: E402
from xiaoer.analytics import metrics  # noqa: E402
from xiaoer.analytics.jobs import AnalyticsFollower  # noqa: E402
from xiaoer.core.db import database_for  # noqa: E402


def events(count: int) -> list[tuple[str, dict]]:
    base = s.script()
    out: list[tuple[str, dict]] = []
    copy = 0
    while len(out) < count:
        shift = 86400.0 * copy
        for sender, event in base:
            e = json.loads(json.dumps(event))
            who = f"{sender}-{copy}"
            e["sender_id"] = who
            e["timestamp"] = float(e["timestamp"]) + shift
            if e.get("message_id"):
                e["message_id"] = f"{e['message_id']}-{copy}"
            out.append((who, e))
        copy += 1
    return out[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--database", help="project database URL (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stream = events(args.events)
        s.write_events(work / "events.db", stream)
        db = database_for(args.database or work / "xiaoer.db")
        follower = AnalyticsFollower(work / "events.db", state_db=db)
        started = time.perf_counter()
        while follower.poll(max_rows=1000):  # the worker's job: up to ROWS_PER_RUN a run
            pass
        incremental = time.perf_counter() - started
        started = time.perf_counter()
        rows = follower.rebuild()
        rebuild = time.perf_counter() - started
        days = len(stream) // len(s.script()) + 2
        first = date.fromisoformat(s.DAY)
        started = time.perf_counter()
        figures = metrics.compute(db, first, first + timedelta(days=days))
        compute = time.perf_counter() - started
        per = 10_000 / len(stream)
        print(f"events: {len(stream)} ({figures['conversations']} conversations, {db.dialect})")
        print(
            f"incremental follow: {incremental:.2f} s -> {incremental * per:.2f} s per 10,000 events"
        )
        print(
            f"rebuild:            {rebuild:.2f} s -> {rebuild * per:.2f} s per 10,000 events ({rows} rows)"
        )
        print(f"dashboard figures over {days} days: {compute:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
