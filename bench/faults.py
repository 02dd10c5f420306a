"""Fault benchmark (issue 14): the longer variants of tests/e2e/test_faults_*.py, with figures.

Scenarios (``--only`` picks some):

* ``send-api``: embedded default; the Douyin send API answers 503 for ``--outage``
  seconds (default 60) while ``--customers`` customers write 3 messages each; figures:
  replies lost, duplicated, out of order, and seconds from the platform's return to the
  last reply delivered (with the default ``outbox_resend_seconds``: 15 s and its backoff).
* ``actions``: embedded default; the action server killed while customers write; figures:
  replies per message during the outage (1 is right), seconds until answers are normal
  again after the restart.
* ``kill-rasa``: scale-out profile (2 Rasa servers on PostgreSQL + Redis, default
  settings but ``sweep_seconds``); one server SIGKILLed under ``--customers`` customers;
  figures: acknowledged, answered, twice, out of order, seconds from the kill to the last
  answer of a taken-over message; then the server restarts and answers again.
* ``stores``: scale-out; PostgreSQL down ``--outage`` s, then Redis down; figures: REST
  503s, other statuses, seconds from the store's return to the first 200, Douyin messages
  lost / twice, tracebacks in the logs.

    .venv/bin/python bench/faults.py [--model models/xxx.tar.gz] [--only send-api,kill-rasa]
        [--outage 60] [--customers 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xiaoer.devtools.scaleout import ScaleOut, running_scale_out  # noqa: E402
from xiaoer.devtools.services import (  # noqa: E402
    start_postgres,
    start_redis,
    stop_postgres,
    stop_redis,
)
from xiaoer.devtools.stack import Stack, running_stack  # noqa: E402
from xiaoer.douyin.simulator import DouyinSimulator, running_simulator  # noqa: E402

QUESTIONS = ["你好", "发什么快递", "支持七天无理由吗"]


def latest_model() -> Path:
    return max((ROOT / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)


def chat(sim: DouyinSimulator, customers: list[str], pause: float = 0.3) -> dict[str, list[str]]:
    """Each customer sends the questions without waiting; the acknowledged message ids."""
    acknowledged: dict[str, list[str]] = {who: [] for who in customers}

    def one(who: str) -> None:
        for question in QUESTIONS:
            delivery = sim.say(who, question)
            if delivery.ok:
                acknowledged[who].append(delivery.server_message_id)
            time.sleep(pause)

    with ThreadPoolExecutor(max_workers=min(64, len(customers))) as pool:
        list(pool.map(one, customers))
    return acknowledged


def settle(sim: DouyinSimulator, sent: dict[str, list[str]], timeout: float) -> float:
    """Wait until every message is answered; the time of the last answer (0: timed out)."""
    deadline = time.monotonic() + timeout
    for who, ids in sent.items():
        while {r.answered for r in sim.replies(who)} < set(ids):
            if time.monotonic() > deadline:
                return 0.0
            sim.wait_replies(who, len(sim.replies(who)) + 1, timeout=1)
    time.sleep(3)
    return max((r.at for who in sent for r in sim.replies(who)), default=0.0)


def count(sim: DouyinSimulator, sent: dict[str, list[str]]) -> dict[str, int]:
    lost = twice = disorder = 0
    for who, ids in sent.items():
        received = sim.replies(who)
        answered = [r.answered for r in received]
        lost += len(set(ids) - set(answered))
        pairs = [(r.answered, r.text) for r in received]
        twice += len(pairs) - len(set(pairs))
        order = [i for i in dict.fromkeys(answered) if i in ids]
        disorder += int(order != [i for i in ids if i in order])
    acknowledged = sum(len(ids) for ids in sent.values())
    return {"acknowledged": acknowledged, "lost": lost, "twice": twice, "out_of_order": disorder}


def show(name: str, figures: dict[str, Any]) -> None:
    print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


# --- embedded -------------------------------------------------------------------------------
def send_api(stack: Stack, sim: DouyinSimulator, customers: int, outage: float) -> None:
    who = [f"bench-down-{i}-{uuid.uuid4().hex[:6]}" for i in range(customers)]
    sim.outage(outage)
    started = time.time()
    sent = chat(sim, who)
    back = started + outage
    last = settle(sim, sent, timeout=outage + 600)
    figures = count(sim, sent)
    early = sum(1 for w in who for r in sim.replies(w) if r.at < back - 0.5)
    show("send-api", {**figures, "outage_s": outage, "delivered_during_outage": early,
                      "last_reply_after_return_s": round(last - back, 1) if last else "timeout"})  # fmt: skip


def actions(stack: Stack, sim: DouyinSimulator, customers: int) -> None:
    who = [f"bench-act-{i}-{uuid.uuid4().hex[:6]}" for i in range(customers)]
    stack.kill_actions()
    sent = chat(sim, who, pause=1.0)
    settle(sim, sent, timeout=300)
    per_message = Counter(
        sum(1 for r in sim.replies(w) if r.answered == i) for w in who for i in sent[w]
    )
    polite = sum(1 for w in who for r in sim.replies(w) if "系统暂时" in r.text)
    restarted = time.monotonic()
    stack.restart_actions()
    restart_s = time.monotonic() - restarted
    answer = stack.say(f"bench-act-after-{uuid.uuid4().hex[:6]}", "订单6938271045123400002到哪了")
    normal = "6938271045123400002" in "".join(m.get("text") or "" for m in answer)
    show("actions", {"messages": sum(per_message.values()),
                     "replies_per_message": dict(per_message), "polite": polite,
                     "action_server_restart_s": round(restart_s, 1), "normal_after": normal})  # fmt: skip


# --- scale-out ------------------------------------------------------------------------------
def kill_rasa(c: ScaleOut, sim: DouyinSimulator, customers: int) -> None:
    who = [f"bench-kill-{i}-{uuid.uuid4().hex[:6]}" for i in range(customers)]
    result: dict[str, dict[str, list[str]]] = {}
    thread = threading.Thread(target=lambda: result.update(sent=chat(sim, who)))
    thread.start()
    time.sleep(1.5)
    c.kill_replica(0)
    killed = time.time()
    thread.join()
    last = settle(sim, result["sent"], timeout=600)
    figures = count(sim, result["sent"])
    taken = c.log("rasa-1").count("taken over from")
    restarted = time.monotonic()
    c.restart_replica(0)
    restart_s = time.monotonic() - restarted
    after = [f"bench-after-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
    sim.webhook_urls = sim.webhook_urls[:1]  # the restarted server alone
    sent_after = chat(sim, after)
    settle(sim, sent_after, timeout=120)
    sim.webhook_urls = [f"{u}/webhooks/douyin/webhook" for u in c.rasa_urls]
    show("kill-rasa", {**figures, "taken_over": taken,
                       "last_answer_after_kill_s": round(last - killed, 1) if last else "timeout",
                       "restart_s": round(restart_s, 1),
                       "after_restart": count(sim, sent_after)})  # fmt: skip


def stores(c: ScaleOut, sim: DouyinSimulator, customers: int, outage: float) -> None:
    store_down(c, sim, "PostgreSQL", customers, outage)
    store_down(c, sim, "Redis", customers, outage)


def store_down(c: ScaleOut, sim: DouyinSimulator, name: str, customers: int, outage: float) -> None:
    statuses: list[tuple[float, int]] = []
    halt = threading.Event()
    users = [f"bench-{name}-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]

    def rest(user: str) -> None:
        i = 0
        while not halt.is_set():
            url = f"{c.rasa_urls[i % 2]}/webhooks/rest/webhook"
            try:
                body = {"sender": user, "message": QUESTIONS[i % 3]}
                status = requests.post(url, json=body, timeout=60).status_code
            except requests.RequestException:
                status = 0
            statuses.append((time.time(), status))
            i += 1
            time.sleep(0.3)

    def tracebacks() -> int:
        return sum(c.log(f"rasa-{i}").count("Traceback") for i in range(2))

    before = tracebacks()
    threads = [threading.Thread(target=rest, args=(u,)) for u in users]
    for t in threads:
        t.start()
    who = [f"bench-{name}-dy-{i}-{uuid.uuid4().hex[:6]}" for i in range(customers)]
    result: dict[str, dict[str, list[str]]] = {}
    douyin = threading.Thread(target=lambda: result.update(sent=chat(sim, who, pause=2.0)))
    douyin.start()
    time.sleep(2)
    if name == "PostgreSQL":
        stop_postgres(c.postgres)
        time.sleep(outage)
        start_postgres(c.postgres)
    else:
        stop_redis(c.redis)
        time.sleep(outage)
        start_redis(c.redis)
    up = time.time()
    douyin.join()
    time.sleep(15)
    halt.set()
    for t in threads:
        t.join()
    settle(sim, result["sent"], timeout=300)
    first_ok = min((at for at, s in statuses if at > up and s == 200), default=0.0)
    show(f"stores-{name}", {"outage_s": outage,
                            "rest_statuses": dict(Counter(s for _, s in statuses)),
                            "first_200_after_return_s": round(first_ok - up, 1) if first_ok else "none",
                            "douyin": count(sim, result["sent"]),
                            "new_tracebacks": tracebacks() - before})  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--only", default="send-api,actions,kill-rasa,stores")
    parser.add_argument("--outage", type=float, default=60.0)
    parser.add_argument("--customers", type=int, default=50)
    args = parser.parse_args()
    model = args.model or latest_model()
    only = set(args.only.split(","))
    print(f"model {model.name}, outage {args.outage} s, {args.customers} customers", flush=True)
    with tempfile.TemporaryDirectory(prefix="xiaoer-faults-") as tmp:
        if only & {"send-api", "actions"}:
            with running_simulator() as sim:
                with running_stack(model, Path(tmp) / "embedded", env_extra=sim.env()) as stack:
                    sim.webhook_url = f"{stack.rasa_url}/webhooks/douyin/webhook"
                    if "send-api" in only:
                        send_api(stack, sim, args.customers, args.outage)
                    if "actions" in only:
                        actions(stack, sim, min(args.customers, 20))
        if only & {"kill-rasa", "stores"}:
            with running_simulator() as sim:
                settings = {"douyin": {"sweep_seconds": 5}}
                with running_scale_out(
                    model, Path(tmp) / "scale-out", env=sim.env(), settings=settings
                ) as c:
                    sim.webhook_urls = [f"{u}/webhooks/douyin/webhook" for u in c.rasa_urls]
                    sim.webhook_url = sim.webhook_urls[-1]
                    for replica in range(2):  # warm-up: the first turns are slow
                        c.say(replica, f"warm-{replica}", "你好")
                    if "stores" in only:
                        stores(c, sim, min(args.customers, 10), min(args.outage, 30))
                    if "kill-rasa" in only:
                        kill_rasa(c, sim, args.customers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
