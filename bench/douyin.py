"""Douyin path benchmark: webhook-to-reply latency through the real stack.

The simulator plays the platform: it signs and POSTs ``im_receive_msg`` webhooks to the
Rasa server's Douyin channel and receives the replies on its send API. Latency is from
the start of the webhook POST to the arrival of the first platform message answering it
(``msg_id``) — what a customer waits. Measured at 1 customer (sequential messages) and
at 50 customers chatting at once (each waits for its answer before the next question).

    .venv/bin/python bench/douyin.py [--model models/xxx.tar.gz] [--messages 40]
        [--customers 50] [--per-customer 4] [--reorder-window 0.3] [--reorder-pairs 20]

The reorder window is waited only by customers whose deliveries arrived out of order
(xiaoer/douyin/workers.py); ``--reorder-pairs`` measures what that saves in the same run:
two customers alternate messages, one in order (answered at once) and one whose
deliveries were reordered once (each of its messages waits the window, as every Douyin
message did before).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xiaoer.devtools.stack import running_stack  # noqa: E402
from xiaoer.douyin.simulator import DouyinSimulator, running_simulator  # noqa: E402

QUESTIONS = [
    "你好",
    "发什么快递",
    "支持七天无理由吗",
    "可以开发票吗",
    "T恤多少钱",
    "有没有优惠券",
    "谢谢",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ask(sim: DouyinSimulator, who: str, text: str, timeout: float = 120.0) -> float:
    """Seconds from the webhook POST to the first message answering it."""
    delivery = sim.say(who, text)
    if delivery.statuses[-1] != 200:
        raise RuntimeError(f"webhook answered {delivery.statuses}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for reply in sim.replies(who):
            if reply.answered == delivery.server_message_id:
                return reply.at - delivery.started
        sim.wait_replies(who, len(sim.replies(who)) + 1, 0.5)
    raise TimeoutError(f"no answer to {text!r} for {who}")


def reorder_late(sim: DouyinSimulator, who: str) -> None:
    """One message of ``who`` delivered after a later one (its create_time a minute
    older): the channel then waits the reorder window for this customer's messages."""
    ask(sim, who, "你好")
    customer = sim.customer(who)
    content = sim._message_content(customer, "text", text="在吗")
    content["create_time"] -= 60_000
    delivery = sim.deliver("im_receive_msg", content, from_user_id=who)
    if delivery.statuses[-1] != 200:
        raise RuntimeError(f"webhook answered {delivery.statuses}")
    sim.wait_replies(who, len(sim.replies(who)) + 1, 60)


def latest_model() -> Path:
    models = sorted((ROOT / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise SystemExit("no model in models/: run .venv/bin/xiaoer train first")
    return models[-1]


def report(label: str, values: list[float], wall: float) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{label:<28} n={len(ms):<4} p50 {percentile(ms, 50):7.0f} ms   "
        f"p99 {percentile(ms, 99):7.0f} ms   mean {statistics.mean(ms):7.0f} ms   "
        f"throughput {len(ms) / wall:5.1f} msg/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--messages", type=int, default=40, help="messages at 1 customer")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--per-customer", type=int, default=4)
    parser.add_argument(
        "--reorder-window", type=float, default=None,
        help="override douyin.reorder_window_seconds (default: xiaoer.yml's)",
    )  # fmt: skip
    parser.add_argument(
        "--reorder-pairs", type=int, default=20,
        help="messages of each customer in the in-order / reordered comparison (0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--max-concurrent", type=int, default=None,
        help="override douyin.max_concurrent_conversations (default: xiaoer.yml's)",
    )  # fmt: skip
    args = parser.parse_args()
    model = (args.model or latest_model()).resolve()
    settings = yaml.safe_load((ROOT / "xiaoer.yml").read_text(encoding="utf-8"))
    if args.reorder_window is not None:
        settings["douyin"]["reorder_window_seconds"] = args.reorder_window
    if args.max_concurrent is not None:
        settings["douyin"]["max_concurrent_conversations"] = args.max_concurrent
    window = settings["douyin"].get("reorder_window_seconds", 0.3)
    concurrent = settings["douyin"].get("max_concurrent_conversations", 4)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = work / "xiaoer.yml"
        config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
        with running_simulator() as sim:
            env = {**sim.env(), "XIAOER_CONFIG": str(config)}
            with running_stack(model, work / "stack", env_extra=env) as stack:
                sim.webhook_url = f"{stack.rasa_url}/webhooks/douyin/webhook"
                print(f"model {model.name}; Rasa server start {stack.rasa_start_seconds:.0f} s; "
                      f"reorder window {window} s (waited only after a reordered delivery); "
                      f"{concurrent} conversations processed at once")  # fmt: skip
                for text in QUESTIONS:  # warm up
                    ask(sim, "bench-warmup", text)
                one: list[float] = []
                started = time.monotonic()
                who = f"bench-1-{uuid.uuid4().hex[:6]}"
                for i in range(args.messages):
                    one.append(ask(sim, who, QUESTIONS[i % len(QUESTIONS)]))
                report("1 customer", one, time.monotonic() - started)

                if args.reorder_pairs:
                    steady = f"bench-inorder-{uuid.uuid4().hex[:6]}"
                    shuffled = f"bench-reordered-{uuid.uuid4().hex[:6]}"
                    reorder_late(sim, shuffled)
                    ask(sim, steady, "你好")
                    timings: dict[str, list[float]] = {steady: [], shuffled: []}
                    started = time.monotonic()
                    for i in range(args.reorder_pairs):  # alternating: the same noise
                        for name in (steady, shuffled) if i % 2 else (shuffled, steady):
                            timings[name].append(ask(sim, name, QUESTIONS[i % len(QUESTIONS)]))
                    wall = time.monotonic() - started
                    report("1 customer, in order", timings[steady], wall)
                    report("1 customer, reordered", timings[shuffled], wall)
                    fast = statistics.median(timings[steady])
                    slow = statistics.median(timings[shuffled])
                    print(f"in order / reordered p50: {fast * 1000:.0f} / {slow * 1000:.0f} ms "
                          f"= x{fast / slow:.2f} (the window: {window} s)")  # fmt: skip

                def chat(index: int) -> list[float]:
                    name = f"bench-{args.customers}-{index:02d}-{uuid.uuid4().hex[:6]}"
                    return [
                        ask(sim, name, QUESTIONS[(index + j) % len(QUESTIONS)])
                        for j in range(args.per_customer)
                    ]

                started = time.monotonic()
                with ThreadPoolExecutor(max_workers=args.customers) as pool:
                    many = [t for ts in pool.map(chat, range(args.customers)) for t in ts]
                report(f"{args.customers} customers at once", many, time.monotonic() - started)
                retried = sum(1 for d in sim.deliveries if len(d.statuses) > 1)
                slow_acks = max(s for d in sim.deliveries for s in d.seconds)
                print(f"webhook deliveries {len(sim.deliveries)}, retried {retried}, "
                      f"slowest 200 {slow_acks * 1000:.0f} ms; send-API refusals "
                      f"{len(sim.rejected)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
