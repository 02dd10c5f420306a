"""Chinese labels of the codes agents and merchants see (handoff reasons, intents,
channels, flows, statuses): the one source the console, the analytics exports and
``xiaoer report`` all read, so a code is never shown raw."""

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
    "ask_wholesale": "批发合作", "ask_service_hours": "问客服时间", "how_to_buy": "怎么下单",
    "ask_comment_one": "评论区扣1", "ask_lucky_bag": "问福袋", "ask_live_link": "问直播链接",
    "EXTERNAL_douyin_greet": "主动问候", "EXTERNAL_ask_csat": "客服结束会话",
    "keyword_reply": "关键词回复",
}  # fmt: skip
CHANNELS = {
    "rest": "网页", "douyin": "抖音", "doudian_push": "抖店", "test-chat": "测试对话",
    "console": "客服工作台",
}  # fmt: skip
# what the bot did in a conversation (its forms and its answering actions)
FLOWS = {
    "order_status_form": "查订单", "urge_form": "催发货", "cancel_form": "取消订单",
    "address_form": "修改地址", "after_sales_form": "售后申请", "csat_form": "满意度评价",
    "action_order_status": "查订单", "action_answer_faq": "常见问题解答",
    "action_product_question": "商品咨询", "action_offer_human": "询问是否转人工",
    "action_handoff": "转人工", "action_decline_human": "不转人工",
    "action_default_fallback": "未识别", "action_thank_contact": "留联系方式",
    "action_wholesale": "批发合作", "action_urge_shipment": "催发货",
    "action_cancel_order": "取消订单", "action_change_address": "修改地址",
    "action_submit_after_sales": "提交售后", "action_douyin_greet": "主动问候",
    "action_service_hours": "客服时间", "action_live_room": "直播间", "action_greet": "打招呼",
    "action_keyword_reply": "关键词回复",
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
    """The intent in Chinese ("其他问题" for a code without a label, "—" for none)."""
    if not code or code == "?":
        return "—"
    return INTENTS.get(code) or "其他问题"


def channel(code: str) -> str:
    if not code:
        return "未知渠道"
    return CHANNELS.get(code) or "其他渠道"


def flow(code: str) -> str:
    if not code or code == "?":
        return "—"
    return FLOWS.get(code) or INTENTS.get(code) or "其他流程"


def after_sales_reason(text: str) -> str:
    """After-sales reasons are stored in Chinese (actions/aftersales.py); an empty one
    reads "未填写", a stray code (plain ASCII) "其他"."""
    text = (text or "").strip()
    if not text or text == "未填写":
        return "未填写"
    return "其他" if text.isascii() else text


def priority(level: int) -> str:
    return PRIORITIES.get(min(max(level, 0), 2), "普通")
