"""Scale-out start-up stability: the documented scale-out profile started N times in a row.

    .venv/bin/python bench/scaleout_stability.py --model models/xxx.tar.gz [--runs 20]

Each run starts from nothing, exactly as docs/deployment.md says (the profile of
``xiaoer/devtools/scaleout.py`` runs the doc's blocks): a fresh PostgreSQL cluster and
Redis, the database user with ``CREATEDB``, ``xiaoer migrate --endpoints …`` (databases and
tables), the action server, the Rasa replicas started at the same moment, the worker. Then
a conversation hops replicas (a form started on one is finished on the other), both
replicas must read the same history from PostgreSQL and the worker must turn a contact
into a lead. A run counts as an error when anything fails or when a log has an error
line (``Traceback``, ``ERROR``, ``UniqueViolation``, a fallback to an in-memory tracker
store…). Prints one line per run and a summary; exit 1 on any error.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from xiaoer.devtools.scaleout import ScaleOut, running_scale_out  # noqa: E402

# what must never appear in a log of a healthy start
ERROR_LINE = re.compile(
    r"Traceback|\bERROR\b|UniqueViolation|Could not create tables|does not exist"
    r"|InMemoryTrackerStore|in-memory tracker|Failed to create tracker store",
    re.IGNORECASE,
)
LOGS = ("actions-0.log", "rasa-*.log", "worker.log", "migrate.log", "seed.log")


def check(cluster: ScaleOut) -> None:
    """What a user would notice: a conversation that hops replicas, one shared history, a lead."""
    user = f"stab-{uuid.uuid4().hex[:8]}"
    asked = " ".join(r.get("text") or "" for r in cluster.say(0, user, "我的快递到哪里了"))
    assert "订单" in asked, f"replica 0 did not ask for the order number: {asked!r}"
    answer = " ".join(r.get("text") or "" for r in cluster.say(1, user, "6938 2710 4512 3400 001"))
    assert "待发货" in answer, f"replica 1 did not continue the form: {answer!r}"
    for url in cluster.rasa_urls:
        events = requests.get(
            f"{url}/conversations/rest:{user}/tracker", params={"token": "test-token"}, timeout=30
        ).json()["events"]
        texts = [e.get("text") for e in events if e["event"] == "user"]
        assert texts == ["我的快递到哪里了", "6938 2710 4512 3400 001"], f"{url}: {texts}"
    from xiaoer.leads.store import LeadStore

    cluster.say(1, f"{user}-lead", "我要批发，手机13812345678")
    store = LeadStore(cluster.database_url)
    deadline = time.monotonic() + 30
    while store.lead_for(f"rest:{user}-lead") is None:
        assert time.monotonic() < deadline, "the worker made no lead within 30 s"
        time.sleep(0.3)


def error_lines(workdir: Path) -> list[str]:
    found = []
    for pattern in LOGS:
        for log in sorted(workdir.glob(pattern)):
            for line in log.read_text(errors="replace").splitlines():
                if ERROR_LINE.search(line):
                    found.append(f"{log.name}: {line.strip()[:200]}")
    return found


def one_run(model: Path, replicas: int, keep: Path | None) -> tuple[float, list[str]]:
    with tempfile.TemporaryDirectory(prefix="xiaoer-stability-") as tmp:
        workdir = Path(tmp)
        started = time.monotonic()
        problems: list[str] = []
        took = 0.0
        try:
            with running_scale_out(model, workdir, replicas=replicas) as cluster:
                took = time.monotonic() - started
                check(cluster)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            problems.append(f"{type(exc).__name__}: {str(exc).strip()[:1500]}")
            if not isinstance(exc, AssertionError):
                problems.append(traceback.format_exc(limit=3)[-600:])
        problems += error_lines(workdir)
        if problems and keep is not None:  # the logs of a failed run, for reading
            import shutil

            target = keep / f"run-{int(time.time())}"
            shutil.copytree(workdir, target, ignore=shutil.ignore_patterns("postgres*", "*.sock"))
            problems.append(f"logs kept in {target}")
        return took, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument(
        "--keep-failed", type=Path, default=None, help="copy failed runs' logs here"
    )
    args = parser.parse_args()
    if args.keep_failed:
        args.keep_failed.mkdir(parents=True, exist_ok=True)
    starts: list[float] = []
    failed = 0
    began = time.monotonic()
    for i in range(1, args.runs + 1):
        took, problems = one_run(args.model, args.replicas, args.keep_failed)
        if took:
            starts.append(took)
        failed += bool(problems)
        state = "ok" if not problems else f"ERROR ({len(problems)})"
        print(f"run {i:>2}/{args.runs}: {state:<10} start {took:5.1f} s", flush=True)
        for line in problems:
            print(f"    {line}", flush=True)
    total = time.monotonic() - began
    median = statistics.median(starts) if starts else 0.0
    print(
        f"\n{args.runs} runs, {args.replicas} replicas started together: {failed} with errors, "
        f"{args.runs - failed} clean; start to ready median {median:.1f} s, "
        f"max {max(starts, default=0):.1f} s; {total / 60:.1f} min in all",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
