"""Record the databases of release 0.1 (the last release with one sqlite3 schema per module).

Run with the code of that release (git 042bca3) to (re)create the fixtures:

    mkdir /tmp/release_0_1 && git archive 042bca3 | tar -x -C /tmp/release_0_1
    cp tests/data/release_0_1/make.py /tmp/release_0_1/
    cd /tmp/release_0_1 && PYTHONPATH=$PWD python make.py $OLDPWD/tests/data/release_0_1

It creates every store's SQLite file of that release (xiaoer.db, douyin.db and the seeded
demo shop's shop.db) through the stores' own public APIs, puts a few representative rows in
every table, and writes each file as SQL text (``*.sql``, Python's ``iterdump``) next to
this script (or into OUT_DIR). tests/unit/test_migrations.py loads them as "a data folder
made by the previous release" and upgrades it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
# fixed clock for the rows whose time the APIs take as an argument
T0 = datetime.fromisoformat("2026-05-20T10:00:00+08:00")
EPOCH = T0.timestamp()


def make(data_dir: Path) -> None:  # noqa: PLR0915 (one straight recording script)
    from xiaoer.agents.store import AgentStore
    from xiaoer.buttons import ButtonMemory
    from xiaoer.console.web import SessionStore
    from xiaoer.douyin.protocol import Envelope
    from xiaoer.douyin.store import DouyinStore, StoredToken
    from xiaoer.events import EventFollower
    from xiaoer.handoff.inbox import RestInbox
    from xiaoer.handoff.settings import SettingsStore
    from xiaoer.handoff.store import HandoffStore
    from xiaoer.handoff.urges import UrgeStore
    from xiaoer.handoff.waiting import NoticeLog
    from xiaoer.leads.crm import CrmOutbox, CrmSettings
    from xiaoer.leads.store import CapturedContact, LeadStore
    from xiaoer.notify import NotificationOutbox
    from xiaoer.shop.access import OrderCheckStore
    from xiaoer.shop.doudian import OrderChangeLog
    from xiaoer.shop.doudian_push import PushLedger, PushMessage
    from xiaoer.shop.models import Recipient
    from xiaoer.shop.policies import ShopPolicies
    from xiaoer.shop.sqlite_backend import SqliteShopBackend, seed_demo_shop

    db = data_dir / "xiaoer.db"

    agents = AgentStore(db)
    admin = agents.create("admin", "Xiaoer-admin-2026", display_name="店长", role="admin")
    alice = agents.create(
        "xiaomei", "Xiaoer-agent-2026", display_name="小美", groups=["售后"], on_shift=True
    )

    handoffs = HandoffStore(db)
    h1 = handoffs.request(
        "buyer-zhang",
        "customer_asked",
        details="订单 DY20260518001 还没发货",
        priority=2,
        group="售后",
        intent="ask_shipping",
        summary={"order_id": "DY20260518001", "phone": "138****5678"},
    )
    handoffs.take(h1.id, alice.id)
    handoffs.agent_replied(h1.id)
    h2 = handoffs.request("buyer-li", "after_sales", details="想退货", intent="return_item")
    handoffs.mark_announced(h2.id)
    h3 = handoffs.request("buyer-wang", "angry", details="投诉物流太慢", in_hours=False)
    handoffs.close(h3.id, note="已补偿优惠券")

    settings = SettingsStore(db)
    settings.save("keywords", ["12315", "投诉", "差评"], by="admin")
    settings.save("reannounce_after_minutes", 5, by="admin")

    NoticeLog(db).told("buyer-li", EPOCH)

    urges = UrgeStore(db)
    urges.record("buyer-zhang", "DY20260518001", 30.5, buyer_id="B1001")
    urges.record("buyer-li", "DY20260517002", 50.0)

    inbox = RestInbox(db)
    inbox.add("buyer-zhang", {"text": "客服小美为您服务，请稍等。"})
    inbox.add("buyer-zhang", {"text": "已为您催促仓库发货。", "buttons": []})
    inbox.issue_token("buyer-zhang")

    memory = ButtonMemory(db)
    memory.remember(
        "buyer-zhang",
        [
            {
                "text": "请选择要查询的订单",
                "buttons": [
                    {
                        "title": "DY20260518001 T恤",
                        "payload": '/select_order{"order_id":"DY20260518001"}',
                    },
                    {
                        "title": "DY20260517002 卫衣",
                        "payload": '/select_order{"order_id":"DY20260517002"}',
                    },
                ],
            }
        ],
    )

    outbox = NotificationOutbox(db)
    n1 = outbox.add(
        "B1001",
        "shipped",
        "DY20260518001",
        "您的订单已发货：中通快递 7312345678",
        "ship:DY20260518001",
    )
    outbox.add("B1002", "refund", "DY20260517002", "您的退款已到账 ¥129.00", "refund:DY20260517002")
    assert n1 is not None
    outbox.mark_sent(n1.id)

    checks = OrderCheckStore(db)
    checks.lookup_allowed("buyer-zhang", "DY20260518001", 5)
    checks.record_verified("buyer-zhang", "DY20260518001")
    checks.record_failure("buyer-li", "DY20260517002")

    OrderChangeLog(db).touch("DY20260518001", EPOCH)
    ledger = PushLedger(db)
    ledger.record(
        [
            PushMessage(102, "push-0001", {"p_id": "DY20260518001", "order_status": 3}),
            PushMessage(200, "push-0002", {"p_id": "DY20260517002", "aftersale_id": "AS001"}),
        ],
        now=EPOCH,
    )
    ledger.claim("push-0001", now=EPOCH + 1)
    ledger.done("push-0001")

    leads = LeadStore(db)
    r1 = leads.record_message(
        "buyer-zhao",
        text="这款T恤批发100件什么价？我的电话13812345678",
        intent="ask_wholesale",
        message_id="m-1",
        at=T0,
        contacts=[CapturedContact("phone", "13812345678", "13812345678")],
        channel="douyin",
        name="赵先生",
    )
    lead = leads.lead_for("buyer-zhao")
    assert lead is not None, r1
    leads.record_message(
        "buyer-zhao",
        text="微信也可以 zhao_wx88",
        message_id="m-2",
        at=T0 + timedelta(minutes=3),
        contacts=[CapturedContact("wechat", "zhao_wx88", "zhao_wx88")],
        channel="douyin",
    )
    leads.add_note(lead.id, "xiaomei", "客户要100件，报价中")
    leads.set_assignee(lead.id, alice.id, "admin")
    leads.set_status(lead.id, "contacted", "xiaomei", note="已电话联系")
    leads.kv_set("last_rescore", T0.isoformat())
    leads.audit("admin", "export", {"count": 1})

    crm = CrmOutbox(db, CrmSettings(url="https://crm.example.com/hooks/xiaoer"))
    fresh = leads.get(lead.id)
    assert fresh is not None
    crm.enqueue(fresh, True)

    sessions = SessionStore(db, 8 * 3600)
    sessions.create(admin.id)

    # the event follower's cursor (its events.db is Rasa's own, not recorded here)
    follower = EventFollower(data_dir / "events.db", state_db=db, handlers=[], jobs=[])
    follower._save(42)

    # douyin.db: the Douyin channel's state
    douyin = DouyinStore(data_dir / "douyin.db")
    env = Envelope(
        event="im_receive_msg",
        from_user_id="ou_buyer_zhang",
        to_user_id="ou_shop",
        client_key="awx-test",
        content={
            "server_message_id": "7001",
            "text": "在吗，我的订单发货了吗",
            "conversation_short_id": "cs-1",
        },
        log_id="log-1",
    )
    ev = douyin.record(env, "ou_buyer_zhang", int(EPOCH), msg_id="7001")
    assert ev is not None
    douyin.claim(ev)
    douyin.done(ev)
    env2 = Envelope(
        event="im_receive_msg",
        from_user_id="ou_buyer_li",
        to_user_id="ou_shop",
        client_key="awx-test",
        content={"server_message_id": "7002", "text": "退货地址是哪里"},
        log_id="log-2",
    )
    douyin.record(env2, "ou_buyer_li", int(EPOCH) + 5, msg_id="7002")
    douyin.update_conversation(
        "ou_buyer_zhang",
        conversation_short_id="cs-1",
        last_msg_id="7001",
        last_msg_at=EPOCH,
        nickname="张**",
        last_customer_at=EPOCH,
    )
    douyin.add_outbox(
        "ou_buyer_zhang",
        {"msg_type": 1, "content": {"text": "您的订单已发货"}},
        "您的订单已发货",
        "timeout",
        EPOCH + 60,
    )
    douyin.remember_sent("ou_buyer_zhang", "8001", "您好，请问有什么可以帮您？")
    douyin.save_token(
        "awx-test",
        StoredToken("act.demo-access", "rft.demo-refresh", EPOCH + 86400, EPOCH + 30 * 86400),
    )

    # shop.db: the demo shop, seeded, and one address changed by a buyer
    seed_demo_shop(data_dir / "shop.db", now=T0)
    shop = SqliteShopBackend(data_dir / "shop.db", ShopPolicies.from_settings({}), seed=False)
    asyncio.run(
        shop.update_address(
            "6938271045123400001", Recipient("李四", "13900001111", "浙江省杭州市西湖区文三路90号")
        )
    )


def dump(path: Path, out: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        empty = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
            if conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] == 0
        ]
        if empty:
            raise SystemExit(f"{path.name}: tables without rows: {empty}")
        out.write_text("\n".join(conn.iterdump()) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else HERE
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        make(data_dir)
        for name in ("xiaoer.db", "douyin.db", "shop.db"):
            dump(data_dir / name, out_dir / name.replace(".db", ".sql"))
            print(f"wrote {out_dir / name.replace('.db', '.sql')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
