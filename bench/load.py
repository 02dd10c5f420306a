"""Load benchmark: K customers with multi-turn conversations through REST and the Douyin
webhook, on the embedded default and on the scale-out profile, each figure beside a stock
Rasa 3.6 set-up measured in the same run (so the ratio holds on a noisy, shared machine).

    .venv/bin/python bench/load.py --model models/xxx.tar.gz [--profile embedded|scaleout|both]
        [--workers 2] [--out bench/RESULTS.md] [--quick]
    .venv/bin/python bench/load.py ready --model … [--stock] [--workers 2]
        # start the stack, exit when the Rasa server is ready: time it as a whole process

Set-ups (the same model, data, actions, channels and stores):

* **stock**: ``XIAOER_SPEED_LEVERS=off`` — Rasa 3.6's SQL tracker store and SQL event
  broker as they are, ``jsonschema.validate`` per custom-action call, no warm-up, one
  Sanic worker, TensorFlow's default threads;
* **xiaoer**: the levers of xiaoer/plugins/speed.py and ``--workers`` Sanic workers sharing
  the file lock store (embedded) or the atomic Redis lock store (scale-out).

Figures (embedded): start to ready (process start until the server accepts requests,
warm-up included); one customer's turn p50/p99 over the mixed conversation with the first
message after start included; messages/s with ``--rest-customers`` REST customers at once;
Douyin webhook-to-reply p50/p99 with 50 customers at once; 100 Douyin customers at once:
webhooks not acknowledged (errors), customer messages never answered or missing from the
tracker store (lost), processed twice or a reply sent twice (duplicated), counted from the
tracker store and the fake platform afterwards; RSS of the Rasa server (all its worker
processes) and of the action server. Scale-out: two Rasa servers over PostgreSQL + Redis,
REST only (round robin), one customer, messages/s and 100 customers checked in the
PostgreSQL tracker store. Training time is measured outside (``--train`` runs it once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xiaoer.devtools.stack import RASA_ENV, rasa_bin, running_stack  # noqa: E402

ORDER = "6938271045123400002"  # a demo-shop order
# realistic mixes: greeting, policy, product, order status, thanks
CONVERSATIONS = [
    ["你好", "运费险有吗", "T恤多少钱", f"帮我查下订单 {ORDER} 到哪了", "谢谢"],
    ["在吗", "发什么快递", "几天能到", f"订单{ORDER}发货了吗", "好的谢谢"],
    ["你好", "支持七天无理由吗", "可以开发票吗", "有没有优惠券", "谢谢"],
    ["T恤多少钱", "有白色的吗", "运费险有吗", f"{ORDER} 到哪了", "谢谢亲"],
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0


def rss_mb(pid: int, field: str = "VmRSS:", source: str = "status") -> float:
    """Resident memory of a process and all its descendants (Sanic workers). RSS counts the
    pages workers share (pkuseg's model, loaded before the fork) once per process; ``pss_mb``
    splits them between the sharers, so its sum is the machine's real cost."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/{source}").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
        except OSError:
            continue
        children = subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True).stdout
        todo += [int(c) for c in children.split()]
    return total / 1024


def pss_mb(pid: int) -> float:
    return rss_mb(pid, "Pss:", "smaps_rollup")


@dataclass
class Figures:
    values: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def put(self, key: str, value: float) -> None:
        self.values[key] = value
        print(f"    {key:<40} {value:10.1f}", flush=True)


# --- the loads ---------------------------------------------------------------------------
def one_customer(say: Callable[[str, str], Any], figures: Figures, rounds: int, tag: str) -> None:
    """One customer after another, each a whole conversation; the very first message after
    start is the first sample."""
    ms: list[float] = []
    first = 0.0
    for r in range(rounds):
        sender = f"one-{tag}-{r}-{uuid.uuid4().hex[:6]}"
        for text in CONVERSATIONS[r % len(CONVERSATIONS)]:
            started = time.perf_counter()
            say(sender, text)
            ms.append((time.perf_counter() - started) * 1000)
            if len(ms) == 1:
                first = ms[0]
    figures.put(f"{tag} first message after start ms", first)
    figures.put(f"{tag} one customer turn p50 ms", percentile(ms, 50))
    figures.put(f"{tag} one customer turn p99 ms", percentile(ms, 99))


def throughput(
    say: Callable[[int, str, str], Any], figures: Figures, customers: int, rounds: int, tag: str
) -> None:
    """``customers`` at once, each ``rounds`` conversations back to back."""
    ms: list[float] = []
    errors = Counter[str]()
    lock = threading.Lock()

    def customer(i: int) -> None:
        for r in range(rounds):
            sender = f"tp-{tag}-{i}-{r}-{uuid.uuid4().hex[:6]}"
            for t, text in enumerate(CONVERSATIONS[(i + r) % len(CONVERSATIONS)]):
                started = time.perf_counter()
                try:
                    say(i + t, sender, text)
                except Exception as exc:  # noqa: BLE001 - counted, reported
                    with lock:
                        errors[type(exc).__name__] += 1
                    continue
                with lock:
                    ms.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=customers) as pool:
        list(pool.map(customer, range(customers)))
    wall = time.perf_counter() - started
    figures.put(f"{tag} messages/s ({customers} customers)", len(ms) / wall)
    figures.put(f"{tag} turn p99 at {customers} customers ms", percentile(ms, 99))
    figures.put(f"{tag} errors at {customers} customers", sum(errors.values()))


def douyin_burst(sim: Any, customers: int, turns: int, tag: str) -> tuple[list[float], int, list]:
    """``customers`` Douyin customers at once, each ``turns`` messages, each waiting for the
    answer to the previous one. Returns the latencies (s), webhook errors, deliveries."""
    latencies: list[float] = []
    errors = 0
    deliveries: list[Any] = []
    lock = threading.Lock()

    def chat(i: int) -> None:
        nonlocal errors
        who = f"dy-{tag}-{customers}-{i:03d}-{uuid.uuid4().hex[:6]}"
        convo = CONVERSATIONS[i % len(CONVERSATIONS)]
        for j in range(turns):
            delivery = sim.say(who, convo[j % len(convo)])
            with lock:
                deliveries.append((who, delivery))
            if not delivery.ok:
                with lock:
                    errors += 1
                continue
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                answers = [r for r in sim.replies(who) if r.answered == delivery.server_message_id]
                if answers:
                    with lock:
                        latencies.append(answers[0].at - delivery.started)
                    break
                sim.wait_replies(who, len(sim.replies(who)) + 1, 0.5)

    with ThreadPoolExecutor(max_workers=customers) as pool:
        list(pool.map(chat, range(customers)))
    return latencies, errors, deliveries


def settle(sim: Any, deliveries: list, quiet: float = 30.0, limit: float = 900.0) -> None:
    """Wait until every acknowledged message has an answer at the platform, or nothing new
    arrived for ``quiet`` seconds (then the rest counts as lost)."""
    deadline = time.monotonic() + limit
    wanted = {d.server_message_id for _w, d in deliveries if d.ok}
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        received = list(sim.received)
        if wanted <= {r.answered for r in received}:
            time.sleep(2)  # a duplicate would come right behind
            return
        if len(received) != last:
            last, last_change = len(received), time.monotonic()
        elif time.monotonic() - last_change > quiet:
            return
        time.sleep(0.5)


def count_from_stores(tracker_db: Path, sim: Any, deliveries: list) -> tuple[int, int]:
    """(lost, duplicated) of acknowledged customer messages: lost when the tracker store has
    no user event with its message id or the platform got no reply to it; duplicated when
    the tracker has it twice or one reply text arrived twice for it."""
    settle(sim, deliveries)
    with sqlite3.connect(tracker_db) as conn:
        rows = conn.execute("SELECT data FROM events WHERE type_name = 'user'").fetchall()
    in_tracker = Counter(json.loads(d).get("message_id") for (d,) in rows)
    replies: dict[str, Counter[str]] = {}
    for r in list(sim.received):
        replies.setdefault(r.answered, Counter())[r.text] += 1
    lost = dup = 0
    for _who, delivery in deliveries:
        if not delivery.ok:
            continue
        mid = delivery.server_message_id
        if in_tracker[mid] == 0 or mid not in replies:
            lost += 1
        elif in_tracker[mid] > 1 or max(replies[mid].values()) > 1:
            dup += 1
    return lost, dup


# --- the set-ups -------------------------------------------------------------------------
def setup_env(stock: bool, workers: int) -> dict[str, str]:
    if stock:
        return {"XIAOER_SPEED_LEVERS": "off", "SANIC_WORKERS": "1"}
    return {"XIAOER_SPEED_LEVERS": "on", "SANIC_WORKERS": str(workers)}


@contextmanager
def embedded(model: Path, work: Path, stock: bool, workers: int) -> Iterator[tuple[Any, Any]]:
    from xiaoer.douyin.simulator import running_simulator

    with running_simulator() as sim:
        env = {**sim.env(), **setup_env(stock, workers)}
        with running_stack(model, work, env_extra=env) as stack:
            sim.webhook_url = f"{stack.rasa_url}/webhooks/douyin/webhook"
            yield stack, sim


def run_embedded(model: Path, work: Path, stock: bool, args: argparse.Namespace) -> Figures:
    tag = "stock" if stock else "xiaoer"
    figures = Figures()
    print(f"== embedded, {tag}", flush=True)
    session = requests.Session()
    with embedded(model, work, stock, args.workers) as (stack, sim):
        figures.put("start to ready s", stack.rasa_start_seconds)

        def say(sender: str, text: str) -> Any:
            r = session.post(stack.webhook, json={"sender": sender, "message": text}, timeout=120)
            r.raise_for_status()
            return r.json()

        one_customer(say, figures, args.rounds, "REST")
        local = threading.local()

        def say_many(_i: int, sender: str, text: str) -> Any:
            if not hasattr(local, "s"):
                local.s = requests.Session()
            r = local.s.post(stack.webhook, json={"sender": sender, "message": text}, timeout=120)
            r.raise_for_status()
            return r.json()

        throughput(say_many, figures, args.rest_customers, 2 if args.quick else 3, "REST")
        lat, errors, _ = douyin_burst(sim, 50, 2 if args.quick else 4, tag)
        ms = [v * 1000 for v in lat]
        figures.put("Douyin 50 customers p50 ms", percentile(ms, 50))
        figures.put("Douyin 50 customers p99 ms", percentile(ms, 99))
        lat, errors, deliveries = douyin_burst(sim, 100, 2 if args.quick else 3, tag + "-100")
        lost, dup = count_from_stores(stack.workdir / "tracker.db", sim, deliveries)
        figures.put("Douyin 100 customers p99 ms", percentile([v * 1000 for v in lat], 99))
        figures.put("Douyin 100 customers errors", errors)
        figures.put("Douyin 100 customers lost", lost)
        figures.put("Douyin 100 customers duplicated", dup)
        figures.put("Rasa server RSS MB", rss_mb(stack.rasa.pid))
        figures.put("Rasa server PSS MB (all processes)", pss_mb(stack.rasa.pid))
        figures.put("action server RSS MB", rss_mb(stack.actions.pid))
    return figures


def run_scaleout(model: Path, work: Path, stock: bool, args: argparse.Namespace) -> Figures:
    from xiaoer.devtools.scaleout import running_scale_out

    tag = "stock" if stock else "xiaoer"
    figures = Figures()
    print(f"== scale-out (PostgreSQL + Redis, 2 Rasa servers), {tag}", flush=True)
    started = time.monotonic()
    env = setup_env(stock, args.workers)
    with running_scale_out(model, work, replicas=2, env=env) as cluster:
        figures.put("scale-out start (2 servers, services) s", time.monotonic() - started)
        one_customer(lambda s, t: cluster.say(0, s, t), figures, args.rounds, "scale-out")
        throughput(
            lambda i, s, t: cluster.say(i % 2, s, t),
            figures, args.rest_customers, 2 if args.quick else 3, "scale-out",
        )  # fmt: skip
        senders: list[str] = []

        def burst(i: int) -> None:
            sender = f"so100-{i}-{uuid.uuid4().hex[:6]}"
            senders.append(sender)
            for t, text in enumerate(CONVERSATIONS[i % len(CONVERSATIONS)][:3]):
                cluster.say((i + t) % 2, sender, text)

        with ThreadPoolExecutor(max_workers=100) as pool:
            done = list(pool.map(lambda i: _safe(burst, i), range(100)))
        import psycopg2

        pg = cluster.postgres
        conn = psycopg2.connect(host=pg.host, port=pg.port, dbname=pg.db, user=pg.user,
                                password=pg.password)  # fmt: skip
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT sender_id, count(*) FROM events WHERE type_name = 'user' "
                    "AND sender_id LIKE 'rest:so100-%' GROUP BY sender_id"
                )
                per_sender = dict(cur.fetchall())
        finally:
            conn.close()
        lost = sum(max(0, 3 - per_sender.get(f"rest:{s}", 0)) for s in senders)
        dup = sum(max(0, per_sender.get(f"rest:{s}", 0) - 3) for s in senders)
        figures.put("scale-out 100 customers errors", sum(1 for d in done if d))
        figures.put("scale-out 100 customers lost", lost)
        figures.put("scale-out 100 customers duplicated", dup)
        figures.put("scale-out Rasa server RSS MB (one)", rss_mb(cluster.rasa[0].pid))
    return figures


def _safe(fn: Callable[[int], None], i: int) -> str:
    try:
        fn(i)
    except Exception as exc:  # noqa: BLE001 - counted as an error
        return type(exc).__name__
    return ""


# --- the report --------------------------------------------------------------------------
LOWER_IS_BETTER = ("ms", " s", "RSS", "errors", "lost", "duplicated")


def ratio(xiaoer: float, stock: float) -> str:
    if stock == 0:
        return "–" if xiaoer == 0 else "n/a"
    return f"{xiaoer / stock:.2f}"


def machine() -> str:
    cpus = os.cpu_count()
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg()
    return (f"{platform.node()} ({platform.machine()}, {cpus} cores{mem}, "
            f"{platform.platform()}), load average at the end {load[0]:.1f}")  # fmt: skip


def table(title: str, stock: Figures, xiaoer: Figures) -> str:
    lines = [f"### {title}", "", "| figure | stock Rasa 3.6 | Xiaoer | Xiaoer / stock |",
             "| --- | ---: | ---: | ---: |"]  # fmt: skip
    for key, value in xiaoer.values.items():
        base = stock.values.get(key, 0.0)
        lines.append(f"| {key} | {base:.1f} | {value:.1f} | {ratio(value, base)} |")
    return "\n".join(lines) + "\n"


def train_seconds() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        subprocess.run(
            [rasa_bin(), "train", "--out", tmp, "--quiet"], cwd=ROOT,
            env={**os.environ, **RASA_ENV}, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return time.monotonic() - started


def ready(args: argparse.Namespace) -> int:
    """Start the embedded stack (no worker), return as soon as the Rasa server is ready."""
    with tempfile.TemporaryDirectory() as tmp:
        env = setup_env(args.stock, args.workers)
        with running_stack(args.model.resolve(), Path(tmp), env_extra=env, worker=False) as st:
            print(f"ready after {st.rasa_start_seconds:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="load", choices=["load", "ready"])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--profile", choices=["embedded", "scaleout", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2, help="Sanic workers of Xiaoer's set-up")
    parser.add_argument("--rounds", type=int, default=8, help="conversations of one customer")
    parser.add_argument("--rest-customers", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="fewer messages per load")
    parser.add_argument("--train", action="store_true", help="also time one full training")
    parser.add_argument("--stock", action="store_true", help="ready: the stock set-up")
    parser.add_argument("--out", type=Path, help="write the report (Markdown) there")
    args = parser.parse_args(argv)
    if args.command == "ready":
        return ready(args)
    model = args.model.resolve()
    sections: list[str] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        profiles = ["embedded", "scaleout"] if args.profile == "both" else [args.profile]
        for profile in profiles:
            run = run_embedded if profile == "embedded" else run_scaleout
            stock = run(model, tmp / f"{profile}-stock", True, args)
            xiaoer = run(model, tmp / f"{profile}-xiaoer", False, args)
            title = ("Embedded default (SQLite files, REST and the Douyin webhook)"
                     if profile == "embedded" else
                     "Scale-out profile (PostgreSQL + Redis, 2 Rasa servers, REST)")  # fmt: skip
            sections.append(table(title, stock, xiaoer))
            if args.out:  # what is done so far, in case a later profile fails
                args.out.write_text("\n".join(sections), encoding="utf-8")
    if args.train:
        sections.append(f"Full training (`rasa train`, NLU + dialogue): {train_seconds():.0f} s\n")
    report = "\n".join([
        f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()}",
        f"Model {model.name}; Xiaoer set-up: {args.workers} Sanic workers; command: "
        f"`.venv/bin/python bench/load.py {' '.join(argv or sys.argv[1:])}`", "", *sections,
    ])  # fmt: skip
    print(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
