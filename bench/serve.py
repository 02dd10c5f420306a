"""Serving benchmark: training time, server start time, Rasa server RSS, parse latency
and REST round-trip latency (p50/p99 over 200 messages) with the real action server.

    .venv/bin/python bench/serve.py [--model models/xxx.tar.gz] [--messages 200]

Without --model it runs `rasa train` into a temporary folder and reports its time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xiaoer.devtools.stack import RASA_ENV, rasa_bin, running_stack  # noqa: E402

CONVERSATION = [
    "你好",
    "帮我查下订单 6938271045123400002 到哪了",
    "发什么快递",
    "什么时候发货",
    "支持七天无理由吗",
    "可以开发票吗",
    "T恤多少钱",
    "谢谢",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the rasa CLI may fork)."""
    total = 0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in children.split()]
    except FileNotFoundError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            started = time.perf_counter()
            subprocess.run(
                [rasa_bin(), "train", "--out", str(work / "models"), "--quiet"],
                cwd=ROOT,
                env={**os.environ, **RASA_ENV},
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            print(f"rasa train (NLU + dialogue, 2 cores)  {time.perf_counter() - started:.0f} s")
            model = next((work / "models").glob("*.tar.gz"))
        with running_stack(model.resolve(), work / "stack") as stack:
            print(f"Rasa server start (model load)        {stack.rasa_start_seconds:.1f} s")
            # warm up
            for text in CONVERSATION:
                stack.say("warmup", text)
            parse = []
            for i in range(args.messages):
                text = CONVERSATION[i % len(CONVERSATION)]
                t0 = time.perf_counter()
                requests.post(
                    f"{stack.rasa_url}/model/parse",
                    params={"token": stack.token},
                    json={"text": text},
                    timeout=30,
                ).raise_for_status()
                parse.append((time.perf_counter() - t0) * 1000)
            rest = []
            sender = f"bench-{uuid.uuid4().hex[:6]}"
            for i in range(args.messages):
                if i % len(CONVERSATION) == 0:
                    sender = f"bench-{uuid.uuid4().hex[:6]}"
                t0 = time.perf_counter()
                stack.say(sender, CONVERSATION[i % len(CONVERSATION)])
                rest.append((time.perf_counter() - t0) * 1000)
            print(f"Rasa server RSS                       {rss_mb(stack.rasa.pid):.0f} MB")
            print(f"action server RSS                     {rss_mb(stack.actions.pid):.0f} MB")
            print(
                f"parse (HTTP /model/parse, n={len(parse)})     p50 {percentile(parse, 50):.1f} ms  "
                f"p99 {percentile(parse, 99):.1f} ms"
            )
            print(
                f"REST round trip (n={len(rest)}, SQLite tracker) p50 {percentile(rest, 50):.1f} ms  "
                f"p99 {percentile(rest, 99):.1f} ms  mean {statistics.mean(rest):.1f} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
