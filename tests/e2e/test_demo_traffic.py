"""``xiaoer demo-traffic`` through the real assistant (REST, the Douyin simulator,
simulated agents, ratings), then every card and chart of the dashboard has data, the
screenshot is saved (var/artifacts/analytics-demo-traffic.png) and ``xiaoer report --json``
agrees with the dashboard's figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from xiaoer.devtools.stack import RASA_ENV, free_port, start_console, stop

pytestmark = [pytest.mark.e2e, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "artifacts"
FROM, TO = "2026-11-18", "2026-11-20"


def cli(env: dict[str, str], *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xiaoer.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def test_demo_traffic_fills_every_chart(trained_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir(mode=0o700)
    env = {**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(data)}
    env.pop("XIAOER_DATABASE_URL", None)
    started = time.monotonic()
    played = cli(env, "demo-traffic", "--days", "3", "--per-day", "6", "--end", TO,
                 "--model", str(trained_model))  # fmt: skip
    assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-3000:]
    print(f"\ndemo-traffic, 3 days: {time.monotonic() - started:.0f} s\n{played.stdout}")
    report = cli(env, "report", "--from", FROM, "--to", TO, "--json")
    assert report.returncode == 0, report.stderr[-3000:]
    f = json.loads(report.stdout)
    assert f["conversations"] >= 13 and f["customer_messages"] > f["conversations"]
    assert f["handoffs"] >= 2 and f["agent_first_response_seconds"]["count"] >= 1
    # simulated agents answer after minutes of demo time, not the seconds of the run
    assert f["agent_first_response_seconds"]["p50"] >= 40
    assert f["fallbacks"] >= 1 and f["leads"]["captured"] >= 1
    assert f["csat"]["responses"] >= 1 and f["greetings"]["greeted"] >= 1
    assert f["after_sales"]["cases"] >= 1
    assert set(f["channels"]) == {"rest", "douyin"}
    days = {k for k, v in f["series"].items() if v["conversations"]}
    assert days == {"2026-11-18", "2026-11-19", "2026-11-20"}  # spread over the days
    assert f["automation_rate"] + f["handoff_rate"] + f["unresolved_rate"] == pytest.approx(1)

    # the dashboard of the same data
    admin = cli({**env, "XIAOER_ADMIN_PASSWORD": "demo-pass-2026"}, "create-admin", "boss")
    assert admin.returncode == 0, admin.stderr
    procs: list[subprocess.Popen] = []
    port = free_port()
    try:
        start_console(port=port, rasa_url="http://127.0.0.1:9", token="t", logs=tmp_path,
                      env=env, procs=procs)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=shutil.which("chromium"),
                headless=True, args=["--headless", "--no-sandbox", "--disable-gpu"],
                viewport={"width": 1366, "height": 768}, locale="zh-CN",
            )  # fmt: skip
            page = context.new_page()
            page.goto(f"{url}/login")
            page.fill("input[name=username]", "boss")
            page.fill("input[name=password]", "demo-pass-2026")
            page.click("button[type=submit]")
            page.wait_for_load_state()
            page.goto(f"{url}/analytics?from={FROM}&to={TO}")
            count = page.locator("[data-chart]").count()
            page.wait_for_function(
                f"document.querySelectorAll('[data-chart][data-ready] canvas').length >= {count}"
            )
            empty = page.locator("table.grid tr.empty").all_inner_texts()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "analytics-demo-traffic.png"), full_page=True)
            cookies = {c["name"]: c["value"] for c in context.cookies()}
            api = requests.get(f"{url}/api/analytics?from={FROM}&to={TO}", cookies=cookies,
                               timeout=30).json()  # fmt: skip
            cards = {
                k: page.locator(f'[data-kpi="{k}"] b').inner_text()
                for k in ("conversations", "automation_rate")
            }
            context.close()
    finally:
        stop(procs)
    assert api["conversations"] == f["conversations"]  # report and dashboard agree
    assert cards["conversations"] == str(f["conversations"])
    assert cards["automation_rate"] == f"{f['automation_rate'] * 100:.1f}%"
    # every table has rows, but the comments (only after a low rating) may be empty
    assert [e for e in empty if "留言" not in e] == [], empty
