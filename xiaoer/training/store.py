"""The retraining runs (table ``training_runs``): queued -> training -> checking ->
swapping -> live | failed | rolled_back."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Integer, Table, Text, select

from xiaoer.core.db import Database, database_for, metadata

training_runs = Table(
    "training_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", Text, nullable=False, index=True),
    Column("progress", Text, nullable=False, server_default=""),  # Chinese, for the console
    Column("percent", Integer, nullable=False, server_default="0"),
    Column("requested_by", Text, nullable=False, server_default=""),
    Column("reason", Text, nullable=False, server_default=""),
    Column("model", Text, nullable=False, server_default=""),  # path of the trained archive
    Column("kb_fingerprint", Text, nullable=False, server_default=""),
    Column("error", Text, nullable=False, server_default=""),
    Column("servers", Text, nullable=False, server_default=""),  # JSON: url -> previous model
    Column("requested_at", Float, nullable=False),
    Column("started_at", Float),
    Column("trained_at", Float),
    Column("finished_at", Float),
    Column("heartbeat_at", Float),
)

QUEUED, TRAINING, CHECKING, SWAPPING = "queued", "training", "checking", "swapping"
LIVE, FAILED, ROLLED_BACK = "live", "failed", "rolled_back"
ACTIVE = (TRAINING, CHECKING, SWAPPING)
FINAL = (LIVE, FAILED, ROLLED_BACK)
STATE_LABELS = {
    QUEUED: "排队中",
    TRAINING: "训练中",
    CHECKING: "检查新模型",
    SWAPPING: "切换模型",
    LIVE: "已上线",
    FAILED: "失败",
    ROLLED_BACK: "已回滚",
}


def _as_dict(row: Any) -> dict[str, Any]:
    run = dict(row._mapping)
    run["state_label"] = STATE_LABELS.get(run["state"], run["state"])
    run["done"] = run["state"] in FINAL
    end = run.get("finished_at") or time.time()
    run["seconds"] = round(end - (run.get("started_at") or end), 1)
    run["train_seconds"] = (
        round(run["trained_at"] - run["started_at"], 1)
        if run.get("trained_at") and run.get("started_at")
        else None
    )
    return run


class TrainingRunStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    def request(self, requested_by: str, reason: str) -> int:
        """A queued run: the one already waiting (requests coalesce), else a new one."""
        with self.db.begin() as conn:
            waiting = conn.execute(
                select(training_runs.c.id)
                .where(training_runs.c.state == QUEUED)
                .order_by(training_runs.c.id)
                .limit(1)
            ).first()
            if waiting is not None:
                return int(waiting[0])
            return int(
                conn.execute(
                    training_runs.insert().values(
                        state=QUEUED,
                        progress="等待训练",
                        requested_by=requested_by,
                        reason=reason,
                        requested_at=time.time(),
                    )
                ).inserted_primary_key[0]
            )

    def get(self, run_id: int) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = conn.execute(select(training_runs).where(training_runs.c.id == run_id)).first()
        return _as_dict(row) if row else None

    def latest(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(
                select(training_runs).order_by(training_runs.c.id.desc()).limit(limit)
            )
            return [_as_dict(r) for r in rows]

    def last_live(self) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = conn.execute(
                select(training_runs)
                .where(training_runs.c.state == LIVE)
                .order_by(training_runs.c.id.desc())
                .limit(1)
            ).first()
        return _as_dict(row) if row else None

    def claim(self) -> int | None:
        """Take the oldest queued run (a conditional UPDATE: one worker gets it)."""
        with self.db.begin() as conn:
            row = conn.execute(
                select(training_runs.c.id)
                .where(training_runs.c.state == QUEUED)
                .order_by(training_runs.c.id)
                .limit(1)
            ).first()
            if row is None:
                return None
            now = time.time()
            done = conn.execute(
                training_runs.update()
                .where(training_runs.c.id == row[0], training_runs.c.state == QUEUED)
                .values(
                    state=TRAINING,
                    progress="准备训练数据",
                    percent=0,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
            return int(row[0]) if done.rowcount == 1 else None

    def update(self, run_id: int, **values: Any) -> None:
        values["heartbeat_at"] = time.time()
        if values.get("state") in FINAL:
            values.setdefault("finished_at", time.time())
        with self.db.begin() as conn:
            conn.execute(
                training_runs.update().where(training_runs.c.id == run_id).values(**values)
            )

    def fail_orphans(self, older_than: float) -> int:
        """Runs left in progress by a worker that died (no heartbeat for ``older_than`` s)."""
        cutoff = time.time() - older_than
        with self.db.begin() as conn:
            return int(
                conn.execute(
                    training_runs.update()
                    .where(
                        training_runs.c.state.in_(ACTIVE),
                        training_runs.c.heartbeat_at < cutoff,
                    )
                    .values(
                        state=FAILED,
                        error="训练进程中断（后台任务退出），请重新训练",
                        finished_at=time.time(),
                    )
                ).rowcount
            )


def get_training_store() -> TrainingRunStore:
    return TrainingRunStore()
