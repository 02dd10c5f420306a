"""Console benchmark: time from a customer's handoff request (REST "转人工") to the
conversation's appearance in the live queue feed of a logged-in console (the server-sent
events the queue page listens to), over real Rasa, action and console servers.

    .venv/bin/python bench/console.py --model models/xxx.tar.gz [--handoffs 20]

Prints per-request figures and the median / max; the browser test
(tests/e2e/test_console_browser.py) measures the same path in Chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xiaoer.devtools.stack import running_stack  # noqa: E402

PASSWORD = "bench-pass-2026"


def login(url: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{url}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    r = s.post(
        f"{url}/login",
        data={"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302, r.status_code
    return s


def follow(session: requests.Session, url: str, seen: queue.Queue, stop: threading.Event) -> None:
    """Put (arrival time, customer) on ``seen`` for every customer new in the feed."""
    known: set[str] = set()
    try:
        with session.get(f"{url}/api/queue/stream", stream=True, timeout=120) as r:
            for line in r.iter_lines(chunk_size=1):
                if stop.is_set():
                    return
                if line.startswith(b"data: "):
                    now = time.monotonic()
                    for item in json.loads(line[6:].decode())["items"]:
                        if item["customer"] not in known:
                            known.add(item["customer"])
                            seen.put((now, item["customer"]))
    except requests.RequestException:
        if not stop.is_set():
            raise  # the feed ended while the benchmark still ran


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--handoffs", type=int, default=20)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stack(Path(args.model), Path(tmp), console=True) as stack,
    ):
        env = {
            **os.environ,
            "XIAOER_DATA_DIR": str(Path(tmp) / "var"),
            "XIAOER_ADMIN_PASSWORD": PASSWORD,
        }
        subprocess.run(
            [sys.executable, "-m", "xiaoer.cli", "create-admin", "bench"], env=env, check=True,
            capture_output=True, cwd=ROOT,
        )  # fmt: skip
        session = login(stack.console_url)
        seen: queue.Queue = queue.Queue()
        stop = threading.Event()
        threading.Thread(
            target=follow, args=(session, stack.console_url, seen, stop), daemon=True
        ).start()
        time.sleep(1.0)
        to_queue, after_answer = [], []
        for _ in range(args.handoffs):
            user = f"bench-{uuid.uuid4().hex[:8]}"
            stack.say(user, "帮我查下订单 6938271045123400002 到哪了")
            sent = time.monotonic()
            stack.say(user, "转人工")
            answered = time.monotonic()
            while True:
                arrived, customer = seen.get(timeout=10)
                if customer == user:
                    break
            to_queue.append(arrived - sent)
            after_answer.append(max(0.0, arrived - answered))
        stop.set()
    print(f"handoffs: {args.handoffs}")
    print(
        f"request sent -> row in the live queue: median {statistics.median(to_queue):.3f} s, "
        f"max {max(to_queue):.3f} s"
    )
    print(
        f"bot's answer -> row in the live queue: median {statistics.median(after_answer):.3f} s, "
        f"max {max(after_answer):.3f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
