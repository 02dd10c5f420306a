"""The lead store, the CRM outbox and the demo shop on both project databases (SQLite and
PostgreSQL): what must hold when several processes use them at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from xiaoer.agents import Agent
from xiaoer.core.clock import BEIJING
from xiaoer.leads import CapturedContact
from xiaoer.leads.assign import AssignmentRules, assign_lead
from xiaoer.leads.crm import CrmOutbox, CrmSettings
from xiaoer.leads.store import LeadStore, lead_activity
from xiaoer.shop import demo_data
from xiaoer.shop.backend import OperationRejected
from xiaoer.shop.models import AfterSaleRequest, AfterSaleType, OrderStatus, Recipient
from xiaoer.shop.policies import ShopPolicies
from xiaoer.shop.sqlite_backend import SqliteShopBackend, orders, products, seed_demo_shop

D = datetime(2026, 11, 1, 12, 0, tzinfo=BEIJING)
T = TypeVar("T")

UNPAID, PAID, SHIPPED, DELIVERED = (
    "6938271045123400004",
    "6938271045123400001",
    "6938271045123400002",
    "6938271045123400007",
)


def at_once(*calls: Callable[[], T]) -> list[T | BaseException]:
    """Run the calls in threads released together; their results (or exceptions)."""
    barrier = threading.Barrier(len(calls))
    results: list[T | BaseException] = [RuntimeError("not run")] * len(calls)

    def run(i: int, call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


# --- leads ---------------------------------------------------------------------------------
def test_a_message_recorded_twice_counts_once_and_a_contact_finds_its_lead(project_db):
    store = LeadStore(project_db)
    phone = [CapturedContact("phone", "13812345678")]
    first = store.record_message("c1", text="电话13812345678", message_id="m1", contacts=phone)
    again = store.record_message("c1", text="电话13812345678", message_id="m1", contacts=phone)
    assert first.created and first.lead is not None
    assert not again.created and not again.changed and again.lead == first.lead
    # the same phone in another conversation: the same lead, now with both conversations
    other = store.record_message("c2", text="我的电话13812345678", message_id="m2", contacts=phone)
    assert other.lead is not None and other.lead.id == first.lead.id
    assert set(other.lead.senders) == {"c1", "c2"}
    assert [x.id for x in store.list_leads()] == [first.lead.id]
    with project_db.connect() as conn:
        counted = conn.execute(select(func.count()).select_from(lead_activity)).scalar_one()
    assert counted == 2


def test_leads_merge_and_the_lists_filter_on_both_databases(project_db):
    store = LeadStore(project_db)
    a = store.record_message(
        "m-a", text="电话", intent="ask_wholesale", message_id="1",
        contacts=[CapturedContact("phone", "13912345678")],
    ).lead  # fmt: skip
    b = store.record_message(
        "m-b", text="微信", message_id="2", contacts=[CapturedContact("wechat", "lucky_boss88")]
    ).lead
    assert a is not None and b is not None and a.id != b.id
    merged = store.record_message(
        "m-c", text="两个都给你", message_id="3", open_id="open-9", name="赵老板",
        contacts=[CapturedContact("wechat", "lucky_boss88"), CapturedContact("phone", "13912345678")],
    ).lead  # fmt: skip
    assert merged is not None and merged.id == a.id and merged.name == "赵老板"
    assert set(merged.senders) == {"m-a", "m-b", "m-c", "open-9"}
    assert store.get(b.id) == merged and store.lead_for("m-b") == merged
    assert [x.id for x in store.list_leads()] == [a.id]
    today = merged.created_at[:10]
    assert [x.id for x in store.list_leads(date_from=today, date_to=today)] == [a.id]
    assert store.list_leads(date_from="2000-01-01", date_to="2000-01-02") == []
    assert [x.id for x in store.list_leads(category=merged.category, unassigned=True)] == [a.id]
    assert [m["sender_id"] for m in store.activity(a.id)] == ["m-a", "m-b", "m-c"]
    assert any("合并了线索" in n.text for n in store.notes(a.id))
    store.set_status(a.id, "contacted", "amy", "已联系")
    assert store.get(a.id).status == "contacted"
    assert store.refresh_scores() == []  # nothing decayed within a second
    store.audit("amy", "export_csv", {"rows": 1})
    assert store.audit_log()[0]["detail"] == {"rows": 1}
    with pytest.raises(KeyError):
        store.add_note(9999, "amy", "?")


def test_the_same_message_from_two_processes_at_once_makes_one_lead(project_db):
    stores = [LeadStore(project_db), LeadStore(project_db)]
    phone = [CapturedContact("phone", "13912345678")]
    results = at_once(
        *(
            (lambda s=s: s.record_message("c3", text="13912345678", message_id="x", contacts=phone))
            for s in stores
        )
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    assert sum(r.created for r in results) == 1  # type: ignore[union-attr]
    assert len(stores[0].list_leads()) == 1


def test_a_lead_is_assigned_once_when_two_callers_assign_it_at_once(project_db):
    store = LeadStore(project_db)
    lead = store.record_message(
        "c4",
        text="电话13700001111",
        message_id="a",
        contacts=[CapturedContact("phone", "13700001111")],
    ).lead
    assert lead is not None and lead.assignee_id is None
    agents = [Agent(id=i, username=f"a{i}", display_name=f"客服{i}", role="agent") for i in (1, 2)]
    rules = AssignmentRules()
    results = at_once(
        lambda: assign_lead(LeadStore(project_db), lead, agents, rules),
        lambda: assign_lead(LeadStore(project_db), lead, agents, rules),
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    final = store.get(lead.id)
    assert final is not None and final.assignee_id in (1, 2)
    assert {r.assignee_id for r in results} == {final.assignee_id}  # type: ignore[union-attr]
    assignments = [n for n in store.notes(lead.id) if n.text.startswith("分配给")]
    assert len(assignments) == 1
    # the console still reassigns at will
    assert store.set_assignee(lead.id, 2 if final.assignee_id == 1 else 1, "boss").assignee_id


def test_two_leads_assigned_at_once_go_round_the_agents(project_db):
    store = LeadStore(project_db)
    made = [
        store.record_message(
            f"rr-{i}", text=p, message_id=p, contacts=[CapturedContact("phone", p)]
        ).lead
        for i, p in enumerate(("13700002222", "13700003333"))
    ]
    agents = [Agent(id=i, username=f"a{i}", display_name=f"客服{i}", role="agent") for i in (1, 2)]
    rules = AssignmentRules()
    results = at_once(
        *(
            (lambda lead=lead: assign_lead(LeadStore(project_db), lead, agents, rules))
            for lead in made
        )
    )
    assert sorted(r.assignee_id for r in results) == [1, 2]  # type: ignore[union-attr]
    assert store.open_counts() == {1: 1, 2: 1}


def test_an_agents_cap_holds_when_two_leads_are_assigned_at_once(project_db):
    store = LeadStore(project_db)
    made = [
        store.record_message(
            f"cap-{i}", text=p, message_id=p, contacts=[CapturedContact("phone", p)]
        ).lead
        for i, p in enumerate(("13700004444", "13700005555"))
    ]
    only = [Agent(id=7, username="amy", display_name="客服7", role="agent")]
    rules = AssignmentRules(max_open_per_agent=1)
    results = at_once(
        *(
            (lambda lead=lead: assign_lead(LeadStore(project_db), lead, only, rules))
            for lead in made
        )
    )
    assert sorted((r.assignee_id or 0) for r in results) == [0, 7]  # type: ignore[union-attr]
    assert store.open_counts() == {7: 1}


class CountingCrm:
    def __init__(self) -> None:
        self.deliveries: list[str] = []
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                crm.deliveries.append(self.headers["X-Xiaoer-Delivery"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/crm"


@pytest.fixture()
def crm() -> Iterator[CountingCrm]:
    c = CountingCrm()
    thread = threading.Thread(target=c.server.serve_forever, daemon=True)
    thread.start()
    yield c
    c.server.shutdown()
    c.server.server_close()


def test_two_senders_post_each_crm_delivery_once(project_db, crm, monkeypatch):
    monkeypatch.setenv("XIAOER_TEST_CRM_SECRET", "s")
    settings = CrmSettings(url=crm.url, secret_env="XIAOER_TEST_CRM_SECRET")
    store = LeadStore(project_db)
    box = CrmOutbox(project_db, settings)
    for i in range(6):
        phone = f"1360000000{i}"
        lead = store.record_message(
            f"crm-{i}", text=phone, message_id=phone, contacts=[CapturedContact("phone", phone)]
        ).lead
        assert lead is not None and box.enqueue(lead, created=True)
    results = at_once(
        lambda: CrmOutbox(project_db, settings).deliver_due(),
        lambda: CrmOutbox(project_db, settings).deliver_due(),
    )
    assert sum(r for r in results if isinstance(r, int)) == 6
    assert sorted(crm.deliveries) == sorted(str(r.id) for r in box.rows())
    assert box.rows(pending_only=True) == []


# --- the demo shop -------------------------------------------------------------------------
@pytest.fixture()
def shop(project_db) -> SqliteShopBackend:
    assert seed_demo_shop(project_db, now=D) is True
    return SqliteShopBackend(project_db, ShopPolicies.from_settings({}), seed=False)


def test_seeding_twice_is_idempotent_and_reset_restores_the_demo(project_db, shop):
    assert seed_demo_shop(project_db) is False
    assert SqliteShopBackend(project_db, ShopPolicies.from_settings({})).db is project_db
    with project_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(products)).scalar_one() == len(
            demo_data.PRODUCTS
        )
        assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == len(
            demo_data.orders(D)
        )
    asyncio.run(shop.cancel_order(UNPAID))
    assert seed_demo_shop(project_db, now=D, reset=True) is True
    order = asyncio.run(shop.get_order(UNPAID))
    assert order is not None and order.status == OrderStatus.UNPAID
    product = asyncio.run(shop.get_product("P1001"))
    assert product is not None and product.price == Decimal("89.00")
    assert [(v.color, v.size) for v in product.variants][:2] == [("白色", "S"), ("白色", "M")]


def test_seeding_from_two_processes_at_once_seeds_once(project_db):
    results = at_once(lambda: seed_demo_shop(project_db, now=D), lambda: seed_demo_shop(project_db))
    assert sorted(results) == [False, True]  # type: ignore[type-var]
    with project_db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == len(
            demo_data.orders(D)
        )


async def test_an_order_is_cancelled_once_and_a_shipped_one_not_at_all(shop):
    def cancel() -> Any:
        return asyncio.run(shop.cancel_order(UNPAID))

    results = at_once(cancel, cancel)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, OperationRejected) for r in results) == 1
    assert (await shop.get_order(UNPAID)).status == OrderStatus.CANCELLED
    with pytest.raises(OperationRejected):
        await shop.cancel_order(SHIPPED)
    assert (await shop.get_order(SHIPPED)).status == OrderStatus.SHIPPED


async def test_the_address_changes_before_shipping_only(shop):
    new = Recipient("王五", "13711112222", "浙江省杭州市西湖区文三路1号")
    changed = await shop.update_address(PAID, new)
    assert changed.recipient == new
    assert (await shop.get_order(PAID)).recipient == new
    with pytest.raises(OperationRejected):
        await shop.update_address(SHIPPED, new)
    assert (await shop.get_order(SHIPPED)).recipient.name == "张三"


async def test_after_sales_cases_opened_at_once_get_their_own_numbers(shop):
    def request(order_id: str) -> AfterSaleRequest:
        return AfterSaleRequest(order_id, AfterSaleType.RETURN_REFUND, "不喜欢", Decimal("299.00"))

    same = at_once(
        lambda: asyncio.run(shop.create_after_sale(request(DELIVERED))),
        lambda: asyncio.run(shop.create_after_sale(request(DELIVERED))),
    )
    assert sum(isinstance(r, OperationRejected) for r in same) == 1
    [case] = await shop.after_sales_for_order(DELIVERED)
    assert case.amount == Decimal("299.00") and case.status == "applied"
    other = await shop.create_after_sale(request("6938271045123400005"))
    assert other.case_id != case.case_id


async def test_the_shop_reads_the_same_as_from_its_own_sqlite_file(shop, tmp_path):
    """Every read of the demo shop on the project database (SQLite or PostgreSQL) equals the
    same read from a SQLite file of its own seeded at the same moment."""
    file_shop = SqliteShopBackend(tmp_path / "own" / "shop.db", shop.policies(), seed=False)
    assert seed_demo_shop(file_shop.db, now=D) is True

    async def reads(backend: SqliteShopBackend) -> list[Any]:
        out: list[Any] = [await backend.list_products()]
        for order_id in (o["order_id"] for o in demo_data.orders(D)):
            out += [
                await backend.get_order(order_id),
                await backend.after_sales_for_order(order_id),
            ]
        for buyer in ("buyer_demo_001", "buyer_demo_002", "nobody"):
            out += [await backend.orders_by_buyer(buyer, limit=3), await backend.get_buyer(buyer)]
        for product_id in ("P1001", "P1002", "P1003", "P1004"):
            out += [
                await backend.get_size_chart(product_id),
                await backend.popular_with(product_id),
            ]
        out.append(await backend.get_after_sale("AS20261101"))
        return out

    mine, theirs = await reads(shop), await reads(file_shop)
    assert mine == theirs
    shipped = await shop.get_order(SHIPPED)
    assert shipped.shipment.latest_trace.text == "【杭州转运中心】已发出，下一站【广州转运中心】"
    assert shipped.total == Decimal("299.00")
