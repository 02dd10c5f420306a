"""Chinese labels of the codes agents see (reasons, intents, statuses)."""

from __future__ import annotations

REASONS = {
    "requested": "客户要求人工",
    "complaint": "投诉",
    "keyword": "投诉关键词",
    "repeated_failure": "机器人多次未理解",
    "needs_agent": "需要人工",
    "order_not_found": "订单号多次未找到",
    "backend_error": "系统繁忙",
    "after_sales": "售后申请",
    "after_sales_past_window": "超期售后",
    "after_sales_no_insurance": "无运费险退货",
    "cancel_order": "取消订单",
    "cancel_paid_order": "取消已付款订单",
    "cancel_shipped": "已发货要取消",
    "change_address": "修改地址",
    "address_shipped": "已发货改地址",
    "coupon": "优惠券",
    "urge_overdue": "超时催发货",
    "order_id_missing": "未提供订单号",
    "quality_issue": "质量问题",
    "lookup_limited": "查询次数过多",
    "verify_failed": "身份核验未通过",
    "attribute_unknown": "商品参数未知",
}
INTENTS = {
    "greet": "打招呼", "goodbye": "告别", "thank": "感谢", "affirm": "确认", "deny": "否定",
    "bot_challenge": "问是否机器人", "out_of_scope": "无关问题", "request_human": "转人工",
    "complain": "投诉", "order_status": "查订单", "shipping_time": "发货时间",
    "urge_shipment": "催发货", "change_address": "改地址", "cancel_order": "取消订单",
    "inform_order_id": "提供订单号", "return_goods": "退货", "refund": "退款",
    "exchange": "换货", "return_policy": "退换政策", "quality_issue": "质量问题",
    "ask_price": "问价格", "ask_discount": "问优惠", "ask_size": "问尺码", "ask_stock": "问库存",
    "product_info": "商品信息", "ask_shipping": "问物流", "ask_invoice": "问发票",
    "provide_contact": "留联系方式", "nlu_fallback": "未识别", "rate_service": "评分",
    "ask_wholesale": "批发合作",
}  # fmt: skip
STATUSES = {"waiting": "排队中", "active": "接待中", "closed": "已结束"}
PRIORITIES = {2: "紧急", 1: "优先", 0: "普通"}
SLOTS = {
    "order_id": "订单号", "product": "商品", "color": "颜色", "size": "尺码",
    "as_type": "售后类型", "as_reason": "售后原因", "as_photo": "照片",
    "wanted_variant": "想换的款式", "new_name": "新收件人", "new_phone": "新电话",
    "new_address": "新地址", "height_cm": "身高(cm)", "weight_kg": "体重(kg)",
}  # fmt: skip


def reason(code: str) -> str:
    """The reason in Chinese; a code without a label is never shown raw."""
    return REASONS.get(code) or ("其他原因" if code else "—")


def intent(code: str) -> str:
    return INTENTS.get(code, code or "—")


def priority(level: int) -> str:
    return PRIORITIES.get(min(max(level, 0), 2), "普通")
