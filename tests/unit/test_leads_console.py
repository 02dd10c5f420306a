"""The leads pages of the agent console (a real console process, no Rasa server: the lead
view falls back to the customer messages the lead store kept)."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from openpyxl import load_workbook

from xiaoer.agents.store import AgentStore
from xiaoer.leads.capture import handle_event
from xiaoer.leads.store import LeadStore
from xiaoer.stack import RASA_ENV, free_port, start_console, stop

PASSWORD = "lead-pass-2026"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("leads-console")
    data = workdir / "var"
    env = {**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(data)}
    agents = AgentStore(data / "xiaoer.db")
    agents.create("boss", PASSWORD, role="admin", display_name="王主管")
    agents.create("amy", PASSWORD, groups=["售前"], display_name="小美")
    procs: list = []
    try:
        port = free_port()
        start_console(
            port=port, rasa_url="http://127.0.0.1:9", token="t", logs=workdir, env=env, procs=procs
        )
        yield f"http://127.0.0.1:{port}", data
    finally:
        stop(procs)


def login(base: str, username: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{base}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = s.post(
        f"{base}/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token, "next": "/leads"},
        timeout=10,
    )
    assert r.status_code == 200, r.text[:300]
    s.headers["X-CSRF-Token"] = re.search(r'name="csrf-token" content="([^"]+)"', r.text).group(1)
    return s


def capture(data: Path, sender: str, text: str, intent: str = "provide_contact") -> int:
    os.environ["XIAOER_DATA_DIR"] = str(data)
    from xiaoer.config import get_settings

    get_settings.cache_clear()
    result = handle_event(
        {
            "event": "user", "sender_id": sender, "text": text, "message_id": sender + text,
            "timestamp": 1764000000.0,
            "parse_data": {"intent": {"name": intent}, "entities": []},
        }
    )  # fmt: skip
    assert result is not None and result.lead is not None
    return result.lead.id


@pytest.fixture(scope="module")
def leads(console) -> dict[str, int]:
    _, data = console
    old = os.environ.get("XIAOER_DATA_DIR")
    try:
        return {
            "wholesale": capture(data, "web-1", "我要批发，手机13812345678", "ask_wholesale"),
            "purchase": capture(data, "web-2", "微信 summer_rain07"),
        }
    finally:
        if old is None:
            os.environ.pop("XIAOER_DATA_DIR", None)
        else:
            os.environ["XIAOER_DATA_DIR"] = old
        from xiaoer.config import get_settings

        get_settings.cache_clear()


def test_login_is_required(console):
    base, _ = console
    r = requests.get(f"{base}/leads", allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303) and "/login" in r.headers["location"]
    assert requests.get(f"{base}/api/leads", timeout=10).status_code == 401


def test_agent_sees_masked_phones_and_filters(console, leads):
    base, _ = console
    s = login(base, "amy")
    page = s.get(f"{base}/leads", timeout=10).text
    assert "138****5678" in page and "13812345678" not in page
    assert "批发/合作" in page
    rows = s.get(f"{base}/api/leads", params={"category": "wholesale"}, timeout=10).json()["leads"]
    assert [r["id"] for r in rows] == [leads["wholesale"]]
    assert rows[0]["phones"] == "138****5678"
    assert s.get(f"{base}/api/leads", params={"score": "nope"}, timeout=10).status_code == 400
    assert s.get(f"{base}/api/leads", params={"date_from": "25/11"}, timeout=10).status_code == 400
    # amy is the only agent on shift: both new leads went to her
    amy = AgentStore(console[1] / "xiaoer.db").by_username("amy")
    mine = s.get(f"{base}/api/leads", params={"assignee": amy.id}, timeout=10).json()["leads"]
    assert {r["assignee"] for r in mine} == {"小美"} and len(mine) == 2
    assert s.get(f"{base}/api/leads", params={"assignee": "none"}, timeout=10).json()["leads"] == []


def test_admin_sees_full_numbers_and_exports_are_audited(console, leads):
    base, data = console
    admin = login(base, "boss")
    assert "13812345678" in admin.get(f"{base}/leads", timeout=10).text
    r = admin.get(f"{base}/leads/export.xlsx", params={"category": "wholesale"}, timeout=10)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert [row[2] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["13812345678"]
    agent = login(base, "amy")
    r = agent.get(f"{base}/leads/export.csv", timeout=10)
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 3 and "13812345678" not in r.content.decode("utf-8-sig")
    audit = LeadStore(data / "xiaoer.db").audit_log()
    assert [(a["actor"], a["action"]) for a in audit[:2]] == [
        ("amy", "export_csv"),
        ("boss", "export_xlsx"),
    ]
    assert agent.get(f"{base}/leads/audit", timeout=10).status_code == 403
    assert "导出 CSV" in admin.get(f"{base}/leads/audit", timeout=10).text


def test_lead_view_status_note_and_reassignment(console, leads):
    base, data = console
    lead_id = leads["wholesale"]
    agent = login(base, "amy")
    page = agent.get(f"{base}/leads/{lead_id}", timeout=10).text
    assert "我要批发，手机138****5678" in page  # the conversation, masked for an agent
    r = agent.post(
        f"{base}/leads/{lead_id}/status", data={"status": "contacted", "note": "已电话联系"},
        timeout=10,
    )  # fmt: skip
    assert r.status_code == 200
    store = LeadStore(data / "xiaoer.db")
    assert store.get(lead_id).status == "contacted"
    assert store.notes(lead_id)[-1].text == "已电话联系"
    bad = agent.post(f"{base}/leads/{lead_id}/status", data={"status": "done"}, timeout=10)
    assert bad.status_code == 400
    no_csrf = requests.Session()
    no_csrf.cookies.update(agent.cookies)
    assert (
        no_csrf.post(f"{base}/leads/{lead_id}/note", data={"note": "x"}, timeout=10).status_code
        == 403
    )
    amy = AgentStore(data / "xiaoer.db").by_username("amy")
    assert (
        agent.post(
            f"{base}/leads/{lead_id}/assign", data={"agent_id": str(amy.id)}, timeout=10
        ).status_code
        == 403
    )  # admins only
    admin = login(base, "boss")
    admin.post(f"{base}/leads/{lead_id}/assign", data={"agent_id": str(amy.id)}, timeout=10)
    assert store.get(lead_id).assignee_id == amy.id
    assert agent.get(f"{base}/leads/999999", timeout=10).status_code == 404
