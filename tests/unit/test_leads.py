"""Leads: capture from events, merge, category and score, assignment, export, masking."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from xiaoer.agents import get_agent_store
from xiaoer.core.clock import now_beijing
from xiaoer.leads import CapturedContact, LeadRules, get_lead_store
from xiaoer.leads.assign import AssignmentRules, assign_lead, assign_pending
from xiaoer.leads.capture import contacts_from_card, handle_event
from xiaoer.leads.export import COLUMNS, export, mask_text


def user_event(
    sender: str,
    text: str,
    intent: str = "provide_contact",
    message_id: str | None = None,
    entities: list[dict] | None = None,
    metadata: dict | None = None,
) -> dict:
    return {
        "event": "user",
        "sender_id": sender,
        "text": text,
        "message_id": message_id or f"{sender}-{abs(hash(text))}",
        "timestamp": now_beijing().timestamp(),
        "input_channel": "rest",
        "metadata": metadata or {},
        "parse_data": {"intent": {"name": intent}, "entities": entities or []},
    }


# --- capture and merge -------------------------------------------------------------------
def test_a_message_with_a_phone_creates_a_wholesale_lead(data_dir):
    result = handle_event(user_event("c1", "我要批发，手机13812345678", "ask_wholesale"))
    assert result is not None and result.created
    lead = get_lead_store().lead_for("c1")
    assert lead is not None
    assert lead.phones == ["13812345678"]
    assert (lead.category, lead.score, lead.status) == ("wholesale", "hot", "new")
    assert lead.source_message == "我要批发，手机13812345678"
    assert get_lead_store().contacts_for("c1") == [
        {"kind": "phone", "value": "13812345678", "masked": "138****5678"}
    ]


def test_messages_without_a_contact_are_counted_but_make_no_lead(data_dir):
    assert handle_event(user_event("c2", "这件T恤多少钱", "ask_price")).lead is None
    assert get_lead_store().lead_for("c2") is None
    handle_event(user_event("c2", "尺码怎么选", "ask_size"))
    lead = handle_event(user_event("c2", "微信 summer_rain07")).lead
    assert lead is not None and lead.wechats == ["summer_rain07"]
    # the two purchase questions before the contact count: 2 + 2 + contact 3 + 1.5 engagement
    assert lead.category == "purchase" and lead.points == 8.5 and lead.score == "hot"


def test_the_same_message_twice_changes_nothing(data_dir):
    event = user_event("c3", "电话 13912345678", message_id="m-1")
    first = handle_event(event)
    again = handle_event(event)
    assert first.created and not again.changed
    assert again.lead == get_lead_store().lead_for("c3")
    assert len(get_lead_store().activity(first.lead.id)) == 1


def test_leads_merge_across_conversations_by_phone_wechat_and_open_id(data_dir):
    store = get_lead_store()
    a = handle_event(user_event("conv-a", "电话 13912345678")).lead
    b = handle_event(user_event("conv-b", "vx lucky_boss88")).lead
    assert a.id != b.id
    # one message carrying both contacts joins the two leads into the older one
    merged = handle_event(user_event("conv-c", "微信 lucky_boss88 手机 139 1234 5678")).lead
    assert merged.id == a.id
    assert set(merged.senders) == {"conv-a", "conv-b", "conv-c"}
    assert {(c["kind"], c["value"]) for c in merged.contacts} == {
        ("phone", "13912345678"),
        ("wechat", "lucky_boss88"),
    }
    assert store.lead_for("conv-b") == merged
    assert [lead.id for lead in store.list_leads()] == [a.id]  # the merged lead is hidden
    # the Douyin open id (metadata buyer_id) links a new conversation without a contact
    handle_event(user_event("conv-d", "还有货吗", "ask_stock", metadata={"buyer_id": "open-1"}))
    handle_event(user_event("conv-d", "电话 13912345678", metadata={"buyer_id": "open-1"}))
    later = handle_event(
        user_event("conv-e", "多少钱", "ask_price", metadata={"buyer_id": "open-1"})
    )
    assert later.lead is not None and later.lead.id == a.id


def test_lead_card_contacts_and_name(data_dir):
    card = {
        "card_id": "c-9",
        "card_data": [
            {"label": "姓名", "value": "王女士"},
            {"label": "手机号", "value": "138 0013 8000"},
            {"label": "微信号", "value": "wang_lady2024"},
        ],
    }
    contacts, name = contacts_from_card(card)
    assert name == "王女士"
    assert {(c.kind, c.value, c.source) for c in contacts} == {
        ("phone", "13800138000", "lead_card"),
        ("wechat", "wang_lady2024", "lead_card"),
    }
    lead = handle_event(
        user_event("dy-1", "留资卡片 13800138000", "provide_contact", metadata={"lead_card": card})
    ).lead
    assert lead is not None and lead.name == "王女士"
    assert lead.wechats == ["wang_lady2024"] and lead.phones == ["13800138000"]


def test_order_numbers_and_prices_are_not_contacts(data_dir):
    text = "订单6938271045123400001 付了199元 身高170"
    assert handle_event(user_event("c4", text, "order_status")).lead is None


# --- categories and scores --------------------------------------------------------------
def test_category_priority_and_keywords():
    rules = LeadRules()
    assert rules.category(rules.signals("ask_price", "多少钱")) == "purchase"
    assert rules.category(rules.signals("provide_contact", "想做你们代理")) == "wholesale"
    assert rules.category(["purchase", "after_sales"]) == "after_sales"
    assert rules.category(["after_sales", "complaint"]) == "complaint"
    assert rules.category(["complaint", "wholesale"]) == "wholesale"
    assert rules.category([]) == "purchase"


def test_score_from_intents_engagement_and_recency():
    rules = LeadRules()
    now = now_beijing()

    def points(intents, signals=(), messages=1, hours=0.0):
        return rules.points(
            intents=intents, signals=signals, messages=messages, has_contact=True,
            has_lead_card=False, last_activity=now - timedelta(hours=hours), now=now,
        )  # fmt: skip

    assert points(["provide_contact"]) == 3.5 and rules.score(3.5) == "cold"
    assert points(["ask_price", "provide_contact"], messages=2) == 6.0  # warm
    assert points(["ask_price", "ask_price"], messages=2) == 6.0  # an intent counts once
    assert points(["ask_price", "ask_size"], messages=3) == 8.5  # hot
    assert points(["ask_price", "ask_size"], messages=3, hours=48) == 5.95  # warm after 2 days
    assert points(["ask_price", "ask_size"], messages=3, hours=24 * 30) == 2.55  # cold
    assert points([], signals=["wholesale"], messages=20) == 12.0  # engagement capped at 3


def test_scoring_rules_come_from_the_merchant_settings():
    rules = LeadRules.from_settings(
        {
            "scoring": {"hot_at": 20, "weights": {"contact": 10}},
            "categories": {"priority": ["purchase"]},
        }
    )
    assert rules.hot_at == 20 and rules.weights["contact"] == 10 and rules.weights["purchase"] == 2
    assert rules.category(["wholesale", "purchase"]) == "purchase"


def test_refresh_scores_cools_old_leads(data_dir):
    store = get_lead_store()
    store.record_message("c5", text="多少钱", intent="ask_price", message_id="a")
    lead = store.record_message(
        "c5", text="电话 13912345678", intent="provide_contact", message_id="b",
        contacts=[CapturedContact("phone", "13912345678")],
    ).lead  # fmt: skip
    assert lead is not None and lead.score == "warm"  # 2 + 3 + 1
    old = (now_beijing() - timedelta(days=10)).isoformat(timespec="seconds")
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE leads SET last_activity_at = ? WHERE id = ?", (old, lead.id))
    assert store.refresh_scores() == [lead.id]
    assert store.get(lead.id).score == "cold"  # 6 points x 0.3


# --- status, notes ------------------------------------------------------------------------
def test_status_flow_with_notes(data_dir):
    store = get_lead_store()
    lead = handle_event(user_event("c6", "电话 13912345678")).lead
    store.set_status(lead.id, "contacted", "alice", "已电话联系，客户要报价")
    store.set_status(lead.id, "won", "alice", "成交 50 件")
    assert store.get(lead.id).status == "won"
    assert [(n.status, n.text) for n in store.notes(lead.id)][-2:] == [
        ("contacted", "已电话联系，客户要报价"),
        ("won", "成交 50 件"),
    ]
    with pytest.raises(ValueError):
        store.set_status(lead.id, "maybe", "alice")
    assert [x.id for x in store.list_leads(status="won")] == [lead.id]
    assert store.list_leads(status="new") == []


# --- assignment ---------------------------------------------------------------------------
def make_agents():
    agents = get_agent_store()
    a = agents.create("amy", "secret-pass-1", groups=["售前"])
    b = agents.create("bob", "secret-pass-2", groups=["售前"])
    c = agents.create("cat", "secret-pass-3", groups=["售后"], on_shift=False)
    return a, b, c


def new_lead(n: int, text: str = "电话"):
    return handle_event(user_event(f"rr-{n}", f"{text} 139{n:08d}")).lead


def test_round_robin_among_agents_on_shift(data_dir):
    a, b, c = make_agents()
    owners = [new_lead(i).assignee_id for i in range(4)]
    assert owners == [a.id, b.id, a.id, b.id]  # cat is off shift
    store = get_lead_store()
    assert store.open_counts() == {a.id: 2, b.id: 2}
    assert any(n.author == "system" for n in store.notes(store.lead_for("rr-0").id))


def test_skill_group_is_preferred_and_off_shift_agents_get_nothing(data_dir):
    a, b, c = make_agents()
    get_agent_store().update(c.id, on_shift=True)
    lead = handle_event(user_event("as-1", "退货 电话 13912345678", "return_goods")).lead
    assert lead.category == "after_sales" and lead.assignee_id == c.id
    get_agent_store().update(a.id, on_shift=False)
    get_agent_store().update(b.id, on_shift=False)
    purchase = new_lead(7)
    assert purchase.assignee_id == c.id  # nobody of 售前 on shift: anyone on shift


def test_cap_leaves_leads_unassigned_until_someone_is_free(data_dir):
    a, b, _ = make_agents()
    store = get_lead_store()
    rules = AssignmentRules(max_open_per_agent=1)
    agents = get_agent_store().list_agents()
    leads = [store.record_message(
        f"cap-{i}", text="电话", message_id=str(i),
        contacts=[CapturedContact("phone", f"1391234567{i}")],
    ).lead for i in range(3)]  # fmt: skip
    assigned = [assign_lead(store, lead, agents, rules).assignee_id for lead in leads]
    assert assigned == [a.id, b.id, None]
    store.set_status(leads[0].id, "won", "amy")  # amy is below the cap again
    done = assign_pending(store, agents, rules)
    assert [(x.id, x.assignee_id) for x in done] == [(leads[2].id, a.id)]


def test_admin_reassigns(data_dir):
    a, b, _ = make_agents()
    lead = new_lead(1)
    moved = get_lead_store().set_assignee(
        lead.id, b.id if lead.assignee_id == a.id else a.id, "admin"
    )
    assert moved.assignee_id != lead.assignee_id
    assert get_lead_store().notes(lead.id)[-1].author == "admin"


# --- export, masking, audit ---------------------------------------------------------------
def exported_leads():
    handle_event(user_event("ex-1", "我要批发，手机13812345678", "ask_wholesale"))
    handle_event(user_event("ex-2", "=HYPERLINK(1) 微信 lucky_boss88"))
    return get_lead_store().list_leads()


def test_csv_export_masks_phones_for_agents_and_is_audited(data_dir):
    store = get_lead_store()
    leads = exported_leads()
    data = export(store, leads, fmt="csv", actor="amy", role="agent", filters={"score": "hot"})
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == COLUMNS
    by_id = {r[0]: r for r in rows[1:]}
    first = by_id[str(store.lead_for("ex-1").id)]
    assert first[2] == "138****5678" and "13812345678" not in data.decode("utf-8-sig")
    assert first[4] == "批发/合作" and first[10] == "我要批发，手机138****5678"
    second = by_id[str(store.lead_for("ex-2").id)]
    assert second[3] == "lu****88" and second[10].startswith("'=")  # no formula injection
    audit = store.audit_log()[0]
    assert audit["actor"] == "amy" and audit["action"] == "export_csv"
    assert audit["detail"]["count"] == 2 and audit["detail"]["full_contacts"] is False
    assert audit["detail"]["filters"] == {"score": "hot"}


def test_xlsx_export_full_contacts_for_admins(data_dir):
    store = get_lead_store()
    leads = exported_leads()
    data = export(store, leads, fmt="xlsx", actor="root", role="admin", agent_names={})
    sheet = load_workbook(io.BytesIO(data)).active
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == COLUMNS
    phones = {row[2] for row in values[1:]}
    assert "13812345678" in phones
    assert store.audit_log()[0]["action"] == "export_xlsx"
    assert store.audit_log()[0]["detail"]["full_contacts"] is True


def test_mask_text_masks_every_contact():
    assert mask_text("电话 138 1234 5678，微信 summer_rain07") == "电话 138****5678，微信 su****07"


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(
    ["=", "+", "-", "@", "\t", "\r", "\n", " ", "\u0001", "\u000b", "\u007f", "\u0085"]
)))  # fmt: skip
def test_any_customer_text_exports_to_a_safe_cell(text):
    """Whatever a customer writes, both exports are written, read back, and no cell
    starts a formula (fuzzed; the XLSX used to fail on control characters)."""
    from xiaoer.leads.export import _csv, _xlsx

    table = [[1, text, text]]
    sheet = load_workbook(io.BytesIO(_xlsx(table))).active
    cells = [c for row in sheet.iter_rows(min_row=2) for c in row]
    assert all(c.data_type != "f" for c in cells)
    csv_rows = list(csv.reader(io.StringIO(_csv(table).decode("utf-8-sig"), newline="")))
    for value in [c.value for c in cells[1:]] + csv_rows[1][1:]:
        value = value or ""
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", value)
        assert not value.lstrip(" \t\r\n\u3000\xa0").startswith(("=", "+", "-", "@"))
