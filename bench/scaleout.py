"""Scale-out benchmark: REST round trips of many concurrent customers against one Rasa
server and against two replicas sharing a PostgreSQL tracker store and a Redis lock store.

    .venv/bin/python bench/scaleout.py --model models/xxx.tar.gz [--customers 20] [--turns 6]

Each customer holds a short conversation (greeting, policy questions, order status); its
messages go to the replicas in turn, as behind a round-robin load balancer. Prints p50/p99
latency and messages per second for 1 and 2 replicas. On a 2-core machine the replicas
compete for the same cores, so the figure to read is that latency and correctness hold,
not a speed-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xiaoer.devtools.scaleout import running_scale_out  # noqa: E402

TURNS = [
    "你好",
    "新疆包邮吗",
    "帮我查下订单 6938271045123400002 到哪了",
    "几天发货",
    "能开发票吗",
    "谢谢",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(model: Path, replicas: int, customers: int, turns: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, running_scale_out(
        model, Path(tmp), replicas=replicas
    ) as cluster:  # fmt: skip
        cluster.say(0, "warm-up", "你好")
        latencies: list[float] = []

        def customer(i: int) -> int:
            sender = f"bench-{uuid.uuid4().hex[:8]}"
            answered = 0
            for t in range(turns):
                started = time.perf_counter()
                replies = cluster.say((i + t) % replicas, sender, TURNS[t % len(TURNS)])
                latencies.append((time.perf_counter() - started) * 1000)
                answered += bool(replies)
            return answered

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=customers) as pool:
            answered = sum(pool.map(customer, range(customers)))
        elapsed = time.perf_counter() - started
        total = customers * turns
        print(
            f"replicas={replicas} customers={customers} messages={total} answered={answered} "
            f"p50={percentile(latencies, 50):.0f} ms p99={percentile(latencies, 99):.0f} ms "
            f"throughput={total / elapsed:.1f} msg/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--turns", type=int, default=6)
    args = parser.parse_args()
    for replicas in (1, 2):
        run(args.model, replicas, args.customers, args.turns)


if __name__ == "__main__":
    main()
