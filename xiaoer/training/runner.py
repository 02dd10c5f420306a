"""One retraining run, from queued to live: train, check, swap, roll back on failure."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from xiaoer.knowledge.store import get_knowledge_store
from xiaoer.training import check, swap, trainer
from xiaoer.training.store import (
    CHECKING,
    FAILED,
    LIVE,
    ROLLED_BACK,
    SWAPPING,
    TrainingRunStore,
    get_training_store,
)

log = logging.getLogger(__name__)

# share of the whole run shown for each step (the console's progress bar)
TRAIN_SHARE = 85


def run_next(store: TrainingRunStore | None = None) -> int | None:
    """Take the oldest queued run and carry it out; its id (None: nothing queued)."""
    store = store or get_training_store()
    store.fail_orphans(older_than=600)
    run_id = store.claim()
    if run_id is None:
        return None
    execute(run_id, store)
    return run_id


def execute(run_id: int, store: TrainingRunStore) -> None:
    kb = get_knowledge_store()
    fingerprint = kb.fingerprint()
    name = f"xiaoer-{time.strftime('%Y%m%d-%H%M%S')}-run{run_id}"
    last = [0.0]

    def training_progress(text: str, percent: int) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0 and percent not in (0, 100):
            return  # at most one write a second
        last[0] = now
        store.update(run_id, progress=text, percent=int(percent * TRAIN_SHARE / 100))

    try:
        logs = trainer.build_dir()
        logs.mkdir(parents=True, exist_ok=True)
        trained = trainer.train(name, training_progress, store=kb, log=logs / f"run{run_id}.log")
    except Exception as exc:  # noqa: BLE001 - any failure ends the run, visibly
        log.exception("training run %s failed", run_id)
        store.update(run_id, state=FAILED, error=str(exc)[-2000:], progress="训练失败")
        return
    store.update(
        run_id,
        state=CHECKING,
        model=str(trained.model),
        kb_fingerprint=fingerprint,
        trained_at=time.time(),
        progress="检查新模型：加载并试答几个问题",
        percent=TRAIN_SHARE,
    )
    # each server tries the model out before putting it live (swap.py): the check
    known = [Path(r["model"]) for r in store.latest(50) if r.get("model")]
    result = swap.swap_all(
        trained.model,
        check.probes(kb),
        known_models=known,
        progress=lambda text: store.update(run_id, progress=text),
        checked=lambda: store.update(run_id, state=SWAPPING, percent=92),
    )
    servers = json.dumps(
        [{"url": s.url, "previous": s.previous, "swapped": s.swapped} for s in result.servers],
        ensure_ascii=False,
    )
    if result.ok:
        store.update(run_id, state=LIVE, progress="新模型已上线", percent=100, servers=servers)
        log.info("training run %s live: %s", run_id, trained.model.name)
        return
    if not result.live_changed:  # failed before any server answered with the new model
        if result.problems:
            error, progress = (
                "新模型未通过检查：" + "；".join(result.problems),
                "检查未通过，线上模型未变",
            )
        else:
            error, progress = result.error, "切换失败，线上模型未变"
        store.update(run_id, state=FAILED, error=error, servers=servers, progress=progress)
        return
    store.update(
        run_id,
        state=ROLLED_BACK if result.rolled_back else FAILED,
        error=result.error,
        servers=servers,
        progress="切换失败，已恢复旧模型" if result.rolled_back else "切换失败，部分服务未能恢复",
    )
