"""Analytics from the event stream: figures of a scripted set of conversations, computed
by hand here; incremental following equals a rebuild; the sandbox never counts."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import analytics_script as s
from xiaoer.analytics import metrics
from xiaoer.analytics.export import OVERVIEW_KEYS, csv_tables, parse_csv, to_csv
from xiaoer.analytics.jobs import AnalyticsFollower
from xiaoer.analytics.report import write_png
from xiaoer.core import labels
from xiaoer.core.senders import is_sandbox

ROOT = Path(__file__).resolve().parents[2]
DAY1, DAY2 = date.fromisoformat(s.DAY), date.fromisoformat(s.NEXT_DAY)


@pytest.fixture()
def scripted(project_db: Any, tmp_path: Path) -> tuple[Any, Path]:
    broker = tmp_path / "events.db"
    s.write_events(broker, s.script())
    s.add_lead(project_db)
    s.add_agent(project_db)
    return project_db, broker


def figures(db: Any) -> dict[str, Any]:
    result = metrics.compute(db, DAY1, DAY2)
    result.pop("outbox")
    return result


def test_the_scripted_conversations_give_the_figures_computed_by_hand(scripted: Any) -> None:
    db, broker = scripted
    follower = AnalyticsFollower(broker, state_db=db)
    assert follower.poll() == len(s.script())
    f = metrics.compute(db, DAY1, DAY2)

    # alice (2 conversations: day 1 and day 2), bob, carol; the test chat is left out
    assert f["conversations"] == 4
    # alice 4 + 1, bob 5 (one while the agent held it), carol 2 (the greeting trigger is
    # not the customer's)
    assert f["customer_messages"] == 12
    assert (f["customers"], f["new_customers"], f["returning_customers"]) == (3, 3, 0)
    assert f["series"][s.NEXT_DAY]["returning_customers"] == 1
    # bob handed over; alice twice automated; carol ended on a fallback
    assert (f["handoffs"], f["automated"], f["unresolved"]) == (1, 2, 1)
    assert (f["handoff_rate"], f["automation_rate"], f["unresolved_rate"]) == (0.25, 0.5, 0.25)
    assert f["handoff_rate"] + f["automation_rate"] <= 1.0
    assert f["handoff_reasons"] == {"requested": 1}
    assert f["fallbacks"] == 2
    assert f["fallback_rate"] == round(2 / 12, 4)
    assert {m["text"] for m in f["fallback_messages"]} == {"asdfgh", "xyz???"}
    # the two ratings are customer messages, not topics
    assert f["intents"] == {
        "nlu_fallback": 2,
        "greet": 1,
        "ask_price": 1,
        "goodbye": 1,
        "request_human": 1,
        "order_status": 1,
        "complain": 1,
        "provide_contact": 1,
        "ask_stock": 1,
    }
    assert f["top_products"] == [{"product": "P1001", "name": "纯棉短袖T恤", "count": 1}]
    # bot replies: alice 1.0 0.5 0.3 0.1 | bob 0.2 0.4 (his message to the agent got
    # none) 0.1 0.1 | carol 0.6 0.2 | alice 0.5 -> sorted .1 .1 .1 .2 .2 .3 .4 .5 .5 .6 1.0
    assert f["bot_response_seconds"]["count"] == 11
    assert f["bot_response_seconds"]["p50"] == pytest.approx(0.3, abs=0.002)
    assert f["bot_response_seconds"]["p90"] == pytest.approx(0.6, abs=0.002)
    # handoff 11:00:30.4, the agent's first message 11:02:30, hand-back 11:10:30
    assert f["agent_first_response_seconds"]["p50"] == pytest.approx(119.6, abs=0.01)
    assert f["agent_handling_seconds"]["p50"] == pytest.approx(480, abs=0.01)
    assert f["agents"][0]["name"] == "小美" and f["agents"][0]["conversations"] == 1
    assert f["leads"] == {"captured": 1, "contacted": 1, "won": 0}
    assert f["greetings"] == {"greeted": 1, "replied": 1, "reply_rate": 1.0}
    assert f["after_sales"] == {
        "cases": 1,
        "by_reason": {"不想要了": 1},
        "by_type": {"return_refund": 1},
    }
    csat = f["csat"]
    assert (csat["asked"], csat["responses"], csat["average"]) == (2, 2, 3.5)
    assert csat["distribution"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}
    assert {(r["name"], r["average"]) for r in csat["by_agent"]} == {("小美", 2.0), ("机器人", 5.0)}
    assert {(r["name"], r["average"]) for r in csat["by_intent"]} == {
        ("greet", 5.0),
        ("nlu_fallback", 2.0),
    }
    assert {(r["name"], r["average"]) for r in csat["by_flow"]} == {
        ("action_product_question", 5.0),
        ("action_handoff", 2.0),
    }
    assert [(c["rating"], c["comment"], c["sender_id"]) for c in csat["comments"]] == [
        (2, "等太久了", "rest:bob")
    ]
    assert f["channels"] == {"rest": 3, "douyin": 1}
    # one channel
    douyin = metrics.compute(db, DAY1, DAY2, channel="douyin")
    assert (douyin["conversations"], douyin["customer_messages"], douyin["leads"]["captured"]) == (
        2 - 1,
        2,
        1,
    )
    # one day, per hour
    hourly = metrics.compute(db, DAY1, DAY1, bucket="hour")
    assert hourly["conversations"] == 3
    assert hourly["series"][f"{s.DAY} 11:00"]["handoffs"] == 1


def test_drill_down_names_the_conversations_behind_a_number(scripted: Any) -> None:
    db, broker = scripted
    AnalyticsFollower(broker, state_db=db).poll()
    ids = lambda what: {r["sender_id"] for r in metrics.drill(db, DAY1, DAY2, what)}  # noqa: E731
    assert ids("handoff") == {"rest:bob"}
    assert ids("fallback") == {"rest:bob", "douyin:carol"}
    assert ids("unresolved") == {"douyin:carol"}
    assert ids("lead") == {"douyin:carol"}
    assert ids("rating:2") == {"rest:bob"}
    assert ids("intent:ask_stock") == {"rest:alice"}
    assert ids("returning") == {"rest:alice"}
    assert ids("case") == {"rest:alice"}
    assert len(metrics.drill(db, DAY1, DAY2, "all")) == 4
    with pytest.raises(ValueError):
        metrics.drill(db, DAY1, DAY2, "nonsense")


def test_incremental_following_equals_a_rebuild(scripted: Any) -> None:
    db, broker = scripted
    events = s.script()
    follower = AnalyticsFollower(broker, state_db=db, batch=4)
    # rows arrive while the follower runs: a few at a time, batches cut mid-conversation
    done = 0
    while done < len(events):
        done += follower.poll(max_rows=3)
    incremental = figures(db)
    assert follower.rebuild() == len(events)
    assert figures(db) == incremental
    # a second rebuild from scratch in another follower (its own cursor) changes nothing
    assert AnalyticsFollower(broker, state_db=db, batch=1000).rebuild() == len(events)
    assert figures(db) == incremental


def test_the_lead_capture_cursor_is_left_alone(scripted: Any) -> None:
    from xiaoer.worker.events import EventFollower

    db, broker = scripted
    leads_follower = EventFollower(broker, state_db=db, handlers=[])
    leads_follower.poll(max_rows=5)
    AnalyticsFollower(broker, state_db=db).rebuild()
    assert leads_follower.last_id == 5


def test_sandbox_senders() -> None:
    assert is_sandbox("test-chat:admin-1")
    assert not is_sandbox("rest:test-chat:x") and not is_sandbox("") and not is_sandbox(None)


def test_every_table_exports_as_csv_and_reads_back(scripted: Any) -> None:
    db, broker = scripted
    AnalyticsFollower(broker, state_db=db).poll()
    f = metrics.compute(db, DAY1, DAY2)
    tables = csv_tables(f)
    assert {"overview", "series", "intents", "handoff_reasons", "csat_comments", "agents"} <= set(
        tables
    )
    for name, (header, rows) in tables.items():
        text = to_csv(header, rows)
        assert text.startswith("\ufeff")  # Excel opens UTF-8 Chinese text correctly
        back_header, back_rows = parse_csv(text)
        assert back_header == header, name
        assert back_rows == [["" if v is None else str(v) for v in r] for r in rows], name
        assert list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[0] == header
    header, rows = tables["intents"]
    # a Chinese label first, the code kept in the "代码" column for a round trip
    assert header == ["意图", "消息数", "占比（%）", "代码"]
    by_code = {r[header.index("代码")]: r for r in rows}
    assert by_code["nlu_fallback"][0] == "未识别" and by_code["nlu_fallback"][1] == 2
    header, rows = tables["csat_comments"]
    assert rows[0][header.index("留言")] == "等太久了"


def test_tables_show_chinese_labels_never_raw_codes(scripted: Any) -> None:
    """What a merchant reads: every header and label in Chinese; codes only in "代码"."""
    db, broker = scripted
    AnalyticsFollower(broker, state_db=db).poll()
    f = metrics.compute(db, DAY1, DAY2)
    tables = csv_tables(f)
    codes = set(f["intents"]) | set(f["handoff_reasons"]) | set(f["channels"])
    codes |= {r["name"] for r in f["csat"]["by_flow"]} | set(OVERVIEW_KEYS)
    assert "requested" in f["handoff_reasons"] or f["handoff_reasons"]
    for name, (header, rows) in tables.items():
        for h in header:
            assert not re.fullmatch(r"[a-z_]+", h), (name, h)  # no English header
        shown = [
            v
            for r in rows
            for i, v in enumerate(r)
            if "代码" not in header or i != header.index("代码")
        ]
        leaked = [v for v in shown if isinstance(v, str) and v in codes]
        assert not leaked, (name, leaked)
    reasons = {r[0] for r in tables["handoff_reasons"][1]}
    assert reasons == {labels.reason(code) for code in f["handoff_reasons"]}
    assert all(re.search(r"[\u4e00-\u9fff]", r) for r in reasons)
    channels = dict((r[2], r[0]) for r in tables["channels"][1])
    assert channels["rest"] == "网页"
    header, rows = tables["outbox"]
    assert "当前" in header[0] and all(r[0].startswith("当前") for r in rows)
    # shares among what customers asked (the pie's slices), seconds to one decimal
    shares = [r[2] for r in tables["intents"][1]]
    assert abs(sum(shares) - 100) < 0.5
    for name in ("times", "agents"):
        for r in tables[name][1]:
            assert all(not isinstance(v, float) or v == round(v, 1) for v in r), (name, r)


def test_every_intent_of_the_domain_has_a_chinese_label() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    intents = [i if isinstance(i, str) else next(iter(i)) for i in domain["intents"]]
    missing = [i for i in intents if i not in labels.INTENTS]
    assert not missing
    assert labels.intent("ask_price") == "问价格"
    assert labels.intent("a_new_intent") == "其他问题"  # never the raw code
    forms = list(domain["forms"])
    assert not [f for f in forms if f not in labels.FLOWS]
    assert labels.flow("action_order_status") == "查订单"
    assert labels.channel("douyin") == "抖音" and labels.channel("xyz") == "其他渠道"


def test_report_json_has_the_promised_keys(scripted: Any, capsys: Any) -> None:
    from xiaoer.analytics.report import main as report

    db, broker = scripted
    AnalyticsFollower(broker, state_db=db).poll()
    assert report(["--from", s.DAY, "--to", s.NEXT_DAY, "--json", "--no-follow"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("conversations", "customer_messages", "handoffs", "automation_rate"):
        assert key in out
    assert out["conversations"] == 4 and out["handoffs"] == 1
    assert out["intents"]["nlu_fallback"] == 2
    assert out["leads"]["captured"] == 1
    assert (out["csat"]["responses"], out["csat"]["average"]) == (2, 3.5)
    assert out == json.loads(json.dumps(metrics.compute(db, DAY1, DAY2), ensure_ascii=False))


def test_report_png_and_bad_dates(scripted: Any, tmp_path: Path, capsys: Any) -> None:
    from xiaoer.analytics.report import main as report

    db, broker = scripted
    AnalyticsFollower(broker, state_db=db).poll()
    png = tmp_path / "summary.png"
    assert report(["--from", s.DAY, "--to", s.NEXT_DAY, "--png", str(png), "--no-follow"]) == 0
    # the chart's labels are Chinese: intents and handoff reasons by their labels
    f = metrics.compute(db, DAY1, DAY2)
    drawn = write_png(f, tmp_path / "again.png")
    text = "\n".join(drawn)
    assert "未识别" in text and labels.reason(next(iter(f["handoff_reasons"]))) in text
    assert not [code for code in [*f["intents"], *f["handoff_reasons"]] if code in drawn]
    assert "当前待发送" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert report(["--from", "2026-13-01", "--to", s.DAY, "--no-follow"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
