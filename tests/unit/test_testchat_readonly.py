"""The console's test chat never changes the shop (issue 15): a cancellation, an address
change or an after-sales request confirmed in a test conversation (``test-chat:…``) says it
is a test and submits nothing; the order stays as it was, no after-sales case is opened.
The same confirmations from a real customer do change the shop (the control)."""

from __future__ import annotations

from typing import Any

import pytest

from actions.address import ActionChangeAddress
from actions.aftersales import ActionSubmitAfterSales
from actions.cancel import ActionCancelOrder
from actions.common import backend
from tests.helpers import run, texts
from tests.helpers import tracker as any_tracker
from xiaoer.core.senders import sandbox_id
from xiaoer.handoff.store import get_handoff_store
from xiaoer.shop.backend import ReadOnlyBackend, ReadOnlyRefused
from xiaoer.shop.factory import get_backend
from xiaoer.shop.models import AfterSaleRequest, AfterSaleType, OrderStatus, Recipient

pytestmark = pytest.mark.usefixtures("data_dir")

ORDER_PAID, ORDER_UNPAID, ORDER_NEW_DELIVERED = (
    "6938271045123400001",
    "6938271045123400004",
    "6938271045123400007",
)
TEST_CHAT = sandbox_id("1-0123456789ab")
NEW_ADDRESS = {
    "new_name": "李四",
    "new_phone": "13912345678",
    "new_address": "浙江省杭州市西湖区文三路100号",
}
RETURN = {"as_type": "return_refund", "as_reason": "不想要了", "as_confirmed": True}


def tracker(sender_id: str, **kw: Any):
    """The demo buyer's confirmation, as the flows see it (the buyer known, as on Douyin)."""
    return any_tracker(
        intent="affirm", channel="douyin", metadata={"buyer_id": "buyer_demo_001"},
        sender_id=sender_id, **kw,
    )  # fmt: skip


async def test_a_cancellation_in_the_test_chat_leaves_the_order_as_it_was():
    t = tracker(TEST_CHAT, slots={"order_id": ORDER_UNPAID, "cancel_confirmed": True})
    msgs, _ = await run(ActionCancelOrder(), t)
    said = texts(msgs)
    assert "测试会话" in said and "不会真的提交" in said and ORDER_UNPAID in said
    assert "已为您取消" not in said
    assert (await get_backend().get_order(ORDER_UNPAID)).status == OrderStatus.UNPAID
    assert get_handoff_store().waiting() == []
    # the control: a real customer's same confirmation cancels it
    msgs, _ = await run(ActionCancelOrder(), tracker("rest:real-buyer", slots=t.slots))
    assert "已为您取消" in texts(msgs)
    assert (await get_backend().get_order(ORDER_UNPAID)).status == OrderStatus.CANCELLED


async def test_an_address_change_in_the_test_chat_leaves_the_recipient_as_it_was():
    before = (await get_backend().get_order(ORDER_PAID)).recipient
    slots = {"order_id": ORDER_PAID, **NEW_ADDRESS, "address_confirmed": True}
    msgs, _ = await run(ActionChangeAddress(), tracker(TEST_CHAT, slots=slots))
    said = texts(msgs)
    assert "测试会话" in said and "不会真的提交" in said and "已为您修改" not in said
    assert (await get_backend().get_order(ORDER_PAID)).recipient == before
    msgs, _ = await run(ActionChangeAddress(), tracker("rest:real-buyer", slots=slots))
    assert "已为您修改" in texts(msgs)
    assert (await get_backend().get_order(ORDER_PAID)).recipient.name == "李四"


async def test_an_after_sales_request_in_the_test_chat_opens_no_case():
    slots = {"order_id": ORDER_NEW_DELIVERED, **RETURN}
    msgs, _ = await run(ActionSubmitAfterSales(), tracker(TEST_CHAT, slots=slots))
    said = texts(msgs)
    assert "测试会话" in said and "退货退款" in said and "不会新增售后单" in said
    assert await get_backend().after_sales_for_order(ORDER_NEW_DELIVERED) == []
    assert get_handoff_store().waiting() == []
    msgs, _ = await run(ActionSubmitAfterSales(), tracker("rest:real-buyer", slots=slots))
    (case,) = await get_backend().after_sales_for_order(ORDER_NEW_DELIVERED)
    assert case.case_id in texts(msgs)


async def test_the_test_chats_backend_reads_the_shop_and_refuses_every_change():
    shop = backend(any_tracker(sender_id=TEST_CHAT))
    assert isinstance(shop, ReadOnlyBackend)
    assert not isinstance(backend(any_tracker(sender_id="rest:someone")), ReadOnlyBackend)
    order = await shop.get_order(ORDER_UNPAID)
    assert order is not None and order.status == OrderStatus.UNPAID
    assert shop.policies().facts() == get_backend().policies().facts()
    with pytest.raises(ReadOnlyRefused):
        await shop.cancel_order(ORDER_UNPAID)
    with pytest.raises(ReadOnlyRefused):
        await shop.update_address(ORDER_PAID, Recipient("李四", "13912345678", "文三路100号"))
    request = AfterSaleRequest(
        order_id=ORDER_NEW_DELIVERED, case_type=AfterSaleType.REFUND_ONLY, reason="不想要了",
        amount=order.total,
    )  # fmt: skip
    with pytest.raises(ReadOnlyRefused):
        await shop.create_after_sale(request)
    assert (await get_backend().get_order(ORDER_UNPAID)).status == OrderStatus.UNPAID
    assert await get_backend().after_sales_for_order(ORDER_NEW_DELIVERED) == []
