"""Memory of a Rasa server with several Sanic workers, with and without pkuseg's model
shared between them (loaded before the fork), after the same few messages.

    .venv/bin/python bench/memory.py --model models/X.tar.gz [--workers 2]

Prints RSS and PSS per process (PSS splits shared pages between the processes sharing
them: its sum is what the machine pays)."""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import uuid
from pathlib import Path

from xiaoer.devtools.stack import running_stack
from xiaoer.plugins.speed import WARM_UP_TEXTS


def _field(pid: int, source: str, name: str) -> int:
    for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
        if line.startswith(name):
            return int(line.split()[1]) // 1024
    return 0


def measure(model: Path, workers: int, share: str) -> list[tuple[str, int, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SANIC_WORKERS": str(workers), "XIAOER_SHARE_SEGMENTER": share}
        with running_stack(model, Path(tmp), env_extra=env, worker=False) as stack:
            for _ in range(4):  # both workers get messages
                sender = uuid.uuid4().hex[:8]
                for text in WARM_UP_TEXTS:
                    stack.say(sender, text)
            pids = [stack.rasa.pid] + [
                int(p)
                for p in subprocess.run(
                    ["pgrep", "-P", str(stack.rasa.pid)], capture_output=True, text=True
                ).stdout.split()
            ]
            return [
                (
                    "main" if i == 0 else f"worker {i}",
                    _field(pid, "status", "VmRSS:"),
                    _field(pid, "smaps_rollup", "Pss:"),
                )
                for i, pid in enumerate(pids)
            ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for share in ("off", "on"):
        rows = measure(args.model.resolve(), args.workers, share)
        print(f"pkuseg shared: {share}")
        for name, rss, pss in rows:
            print(f"  {name:10} RSS {rss:6d} MB  PSS {pss:6d} MB")
        print(
            f"  {'total':10} RSS {sum(r[1] for r in rows):6d} MB  PSS {sum(r[2] for r in rows):6d} MB"
        )


if __name__ == "__main__":
    main()
