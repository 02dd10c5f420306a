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
from xiaoer.devtools.stack import RASA_ENV, free_port, start_console, stop
from xiaoer.leads.capture import handle_event
from xiaoer.leads.store import LeadStore

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
    from xiaoer.core.config import get_settings

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
        from xiaoer.core.config import get_settings

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


# --- trust: exports and per-group visibility (issue 11) ------------------------------------
@pytest.fixture(scope="module")
def hostile(console) -> dict[str, int]:
    """Leads of another skill group (售后, agent ben) and leads whose messages carry a control
    character and formula starts."""
    base, data = console
    AgentStore(data / "xiaoer.db").create("ben", PASSWORD, groups=["售后"], display_name="小本")
    old = os.environ.get("XIAOER_DATA_DIR")
    try:
        return {
            "control": capture(data, "web-c", '\u0001=HYPERLINK("http://x")手机13700001111'),
            "tab": capture(data, "web-t", "\t=1+2 手机13700002222"),
            "cr": capture(data, "web-r", "\r@SUM(A1) 手机13700003333"),
            "space": capture(data, "web-s", "  -2+3 手机13700004444"),
            "after_sales": capture(data, "web-a", "我要退货，手机13911112222", "return_goods"),
        }
    finally:
        if old is None:
            os.environ.pop("XIAOER_DATA_DIR", None)
        else:
            os.environ["XIAOER_DATA_DIR"] = old
        from xiaoer.core.config import get_settings

        get_settings.cache_clear()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_control_characters_and_formulas_do_not_break_or_arm_the_export(console, leads, hostile):
    """Attack: a customer message with \\u0001 made every XLSX export fail; a leading TAB or
    CR slipped past the CSV formula guard."""
    base, _ = console
    admin = login(base, "boss")
    r = admin.get(f"{base}/leads/export.xlsx", timeout=10)
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content)).active
    table = [row for row in sheet.iter_rows(min_row=2, values_only=True)]
    by_id = {row[0]: row for row in table}
    message = by_id[hostile["control"]][10]
    assert "\u0001" not in message and message.startswith("'=HYPERLINK")
    for row in table:
        for cell in row:
            if isinstance(cell, str):
                assert not cell.lstrip(" ").startswith(FORMULA_STARTS), row
    for cell in sheet.iter_rows(min_row=2):
        assert all(c.data_type != "f" for c in cell)  # nothing is stored as a formula
    r = admin.get(f"{base}/leads/export.csv", timeout=10)
    assert r.status_code == 200
    rows = {
        int(row[0]): row
        for row in csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline=""))
        if row[0].isdigit()
    }
    assert rows[hostile["tab"]][10].startswith("'\t=1+2")
    assert rows[hostile["cr"]][10].startswith("'\r@SUM")
    assert rows[hostile["space"]][10].startswith("'  -2+3")
    assert "\u0001" not in r.content.decode("utf-8-sig")


def test_agent_cannot_open_note_or_export_another_groups_lead(console, leads, hostile):
    """Attack: any agent could open any lead with its transcript, add notes to another
    agent's lead and export all leads."""
    base, data = console
    store = LeadStore(data / "xiaoer.db")
    theirs = hostile["after_sales"]
    amy = login(base, "amy")  # 售前
    for path in (f"/leads/{theirs}", "/api/leads"):
        r = amy.get(f"{base}{path}", headers={"Accept": "application/json"}, timeout=10)
        assert "13911112222" not in r.text and "1391111" not in r.text
    assert amy.get(f"{base}/leads/{theirs}", timeout=10).status_code == 404
    notes_before = len(store.notes(theirs))
    r = amy.post(f"{base}/leads/{theirs}/note", data={"note": "我来跟进"}, timeout=10)
    assert r.status_code == 404 and len(store.notes(theirs)) == notes_before
    r = amy.post(f"{base}/leads/{theirs}/status", data={"status": "lost"}, timeout=10)
    assert r.status_code == 404 and store.get(theirs).status == "new"
    listed = {row["id"] for row in amy.get(f"{base}/api/leads", timeout=10).json()["leads"]}
    assert theirs not in listed and leads["wholesale"] in listed
    exported = amy.get(f"{base}/leads/export.csv", timeout=10).content.decode("utf-8-sig")
    ids = {int(row[0]) for row in csv.reader(io.StringIO(exported)) if row and row[0].isdigit()}
    assert ids == listed and theirs not in ids
    sheet = load_workbook(io.BytesIO(amy.get(f"{base}/leads/export.xlsx", timeout=10).content))
    assert {row[0] for row in sheet.active.iter_rows(min_row=2, values_only=True)} == listed
    # ben (售后) holds it: he sees it, masked, and may note it; the admin sees everything
    ben = login(base, "ben")
    page = ben.get(f"{base}/leads/{theirs}", timeout=10)
    assert page.status_code == 200 and "139****2222" in page.text
    assert "13911112222" not in page.text
    assert ben.get(f"{base}/leads/{leads['wholesale']}", timeout=10).status_code == 404
    ben.post(f"{base}/leads/{theirs}/note", data={"note": "已回电"}, timeout=10)
    assert store.notes(theirs)[-1].text == "已回电"
    admin = login(base, "boss")
    everything = {row["id"] for row in admin.get(f"{base}/api/leads", timeout=10).json()["leads"]}
    assert {theirs, leads["wholesale"]} <= everything
