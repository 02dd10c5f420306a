"""Fuzz benchmark: >= 10,000 hypothesis-generated requests against a real stack.

    .venv/bin/python bench/fuzz.py --model models/<model>.tar.gz [--requests 10500]

Prints the command's figures: requests, duration, status histogram per endpoint, and
fails (exit 1) on any 5xx, a crashed server, or a store changed by a rejected request.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz.harness import (  # noqa: E402
    DOUDIAN_CREDENTIALS,
    DOUYIN_ENV,
    FUZZ_SETTINGS,
    FuzzRun,
    create_admin,
    stable,
    table_counts,
)
from xiaoer.devtools.stack import running_stack  # noqa: E402

SHARES = {
    "rest": 0.20, "inbox": 0.08, "douyin": 0.14, "douyin_signed": 0.08, "doudian": 0.14,
    "console_form": 0.18, "console_json": 0.09, "console_get": 0.09,
}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=10_500)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    per_endpoint = {k: max(1, round(v * args.requests)) for k, v in SHARES.items()}
    with tempfile.TemporaryDirectory(prefix="xiaoer-fuzz-") as tmp:
        workdir = Path(tmp)
        create_admin(workdir / "var")
        with running_stack(
            Path(args.model).resolve(), workdir, console=True, env_extra=DOUYIN_ENV,
            credentials_extra=DOUDIAN_CREDENTIALS, settings=FUZZ_SETTINGS,
        ) as stack:  # fmt: skip
            run = FuzzRun(stack)
            before = stable(table_counts(workdir))
            started = time.monotonic()
            failure = ""
            try:
                run.run(per_endpoint)
            except Exception as exc:  # noqa: BLE001 - reported with the figures
                failure = f"{type(exc).__name__}: {exc}"[:2000]
            seconds = time.monotonic() - started
            dead = run.servers_alive()
            after = stable(table_counts(workdir))
    histogram = run.histogram()
    total_by_status: dict[int, int] = {}
    for counts in histogram.values():
        for status, n in counts.items():
            total_by_status[status] = total_by_status.get(status, 0) + n
    figures = {
        "command": " ".join(sys.argv),
        "requests": run.requests,
        "seconds": round(seconds, 1),
        "requests_per_second": round(run.requests / seconds, 1) if seconds else 0,
        "statuses": dict(sorted(total_by_status.items())),
        "per_endpoint": histogram,
        "server_errors": sum(n for s, n in total_by_status.items() if s >= 500),
        "servers_down": dead,
        "failure": failure,
        "rows_added_by_accepted_requests": {
            k: v[1] - before.get(k, (0, 0))[1]
            for k, v in after.items()
            if v[1] != before.get(k, (0, 0))[1]
        },
    }
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8")
    return 1 if failure or dead or figures["server_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
