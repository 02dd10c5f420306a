"""A fake Doudian (抖店) open-API server for tests and local runs.

It checks what the real platform checks (app_key, access_token, the signature in both
sign methods, a timestamp within 5 minutes in both formats) and serves the demo shop's
records (``xiaoer.shop.demo_data``, times relative to the moment the fake is created) in
Doudian's shapes, mixing on purpose the variations real answers show: ids as strings, as
numbers and wrapped in literal quotes, amounts and statuses as strings, ``has_more:
"true"``, ``err_no`` / ``message`` beside or instead of ``code``, both spellings of the
route list. Faults (slow answers, HTTP 5xx, business errors) can be injected per method
from Python or through ``/__fake__/faults``.

    with running_fake_doudian() as fake:      # a background thread, a free local port
        fake.base_url, fake.app_key, fake.app_secret, fake.access_token
        fake.inject("order.orderDetail", status=502, times=1)

    python -m xiaoer.doudian.fake --port 8771
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hmac
import json
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote

from sanic import Request, Sanic, response
from sanic.config import Config
from sanic.constants import HTTP_METHODS
from sanic.handlers import ErrorHandler
from sanic.headers import parse_content_header
from sanic.log import error_logger
from sanic.response import HTTPResponse

from xiaoer.core.clock import now_beijing
from xiaoer.devtools.sanic_thread import SanicThread
from xiaoer.doudian.protocol import (
    SIGN_METHODS,
    encode_params,
    method_path,
    parse_timestamp,
    sign,
)
from xiaoer.shop import demo_data

DEFAULT_APP_KEY = "fake_app_key"
DEFAULT_APP_SECRET = "fake_app_secret"
DEFAULT_ACCESS_TOKEN = "fake_access_token"
MAX_CLOCK_SKEW_SECONDS = 300
ADMIN = "/__fake__"

COURIER_CODES = {"顺丰速运": "shunfeng", "中通快递": "zhongtong", "圆通速递": "yuantong"}
ORDER_STATUS_CODES = {"unpaid": 1, "paid": 2, "shipped": 3, "delivered": 3, "completed": 5}
ORDER_STATUS_DESC = {1: "待支付", 105: "已支付", 2: "备货中", 101: "部分发货", 3: "已发货"}
ORDER_STATUS_DESC.update({4: "已取消", 5: "已完成"})
RECIPIENTS = {
    "buyer_demo_001": ("张三", "13800000000", ("广东省", "广州市", "天河区", "体育西路100号")),
    "buyer_demo_002": ("李四", "13900000000", ("广东省", "广州市", "白云区", "机场路200号")),
}
# the fake's error answers (shapes of the real API; the numbers are the fake's own)
ERR_MISSING = (40001, "缺少必选参数", "isv.missing-parameter")
ERR_INVALID = (40002, "非法的参数", "isv.parameter-invalid")
ERR_SIGN = (40003, "签名校验失败", "isv.sign-invalid")
ERR_TIMESTAMP = (40004, "时间戳已过期或格式错误", "isv.timestamp-invalid")
ERR_APP_KEY = (30001, "app_key不存在", "isv.app-key-not-exist")
ERR_TOKEN = (30002, "access_token已过期或不存在", "isv.access-token-invalid")
ERR_BUSINESS = (50002, "业务处理失败", "isv.business-failed")


def _ts(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def _fen(amount: str | Decimal) -> int:
    return int((Decimal(str(amount)) * 100).to_integral_value())


def _masked_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


def _query(request: Request) -> dict[str, str]:
    """The query string, first value of each name, blank values kept."""
    return {k: v[0] for k, v in request.get_args(keep_blank_values=True).items()}


def _path(request: Request) -> str:
    return unquote(request.path)


def _json(body: Any, status: int = 200) -> HTTPResponse:
    return response.json(
        body, status=status, dumps=json.dumps, content_type="application/json; charset=utf-8"
    )


class _Errors(ErrorHandler):
    """Sanic's error answers, logged without the URL (its query holds the access_token)."""

    @staticmethod
    def log(request: Request, exception: BaseException) -> None:
        if not getattr(exception, "quiet", False):
            error_logger.exception("fake Doudian: error handling %s", _path(request))


@dataclass
class Fault:
    """What to do to the next calls of one method ("*": every method)."""

    delay: float = 0.0  # seconds before answering
    status: int | None = None  # answer with this HTTP status (e.g. 500, 502)
    error_code: int | None = None  # answer with this Doudian business error
    error_msg: str = "业务处理失败"
    sub_code: str = "isv.business-failed"
    sub_msg: str = "模拟的业务错误"
    times: int | None = None  # how many calls it affects (None: until cleared)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    sign_method: str
    timestamp: str
    outcome: str  # "ok", "error <code>", "http <status>"
    sign: str = ""
    at: float = field(default_factory=time.time)


class FakeDoudian:
    """The records, the checks and the fault switches of the fake (thread-safe)."""

    def __init__(
        self,
        app_key: str = DEFAULT_APP_KEY,
        app_secret: str = DEFAULT_APP_SECRET,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        now: datetime | None = None,
        clock: Callable[[], float] = time.time,
        buyer_param: str = "open_id",
    ) -> None:
        self.app_key = app_key
        self.app_secret = app_secret
        self.access_token = access_token
        self.d = (now or now_beijing()).replace(microsecond=0)
        self.clock = clock
        self.buyer_param = buyer_param
        self.base_url = ""
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self.calls: list[Call] = []
        self.orders: dict[str, dict[str, Any]] = {}
        self.routes: dict[str, list[tuple[datetime, str]]] = {}
        self.after_sales: dict[str, dict[str, Any]] = {}
        self._load_demo_shop()

    # --- records ------------------------------------------------------------------
    def _load_demo_shop(self) -> None:
        products = {p["product_id"]: p for p in demo_data.PRODUCTS}
        for index, o in enumerate(demo_data.orders(self.d)):
            status = ORDER_STATUS_CODES[o["status"]]
            name, phone, (province, city, town, detail) = RECIPIENTS[o["buyer_id"]]
            items = []
            for seq, (pid, color, size, qty, price) in enumerate(o["items"], start=1):
                spec = [{"name": "颜色", "value": color}]
                if size:
                    spec.append({"name": "尺码", "value": size})
                after_sale_info = {"after_sale_status": 0, "after_sale_type": 0, "refund_status": 0}
                items.append(
                    {
                        "order_id": f"{o['order_id']}{seq}",
                        "parent_order_id": o["order_id"],
                        "product_id": 3600000000000000000 + int(pid[1:]),
                        "out_product_id": pid,
                        "product_name": products[pid]["name"],
                        "spec": spec,
                        "item_num": qty,
                        "goods_price": _fen(price),
                        "origin_amount": _fen(price) * qty,
                        "after_sale_info": after_sale_info,
                    }
                )
            record: dict[str, Any] = {
                "order_id": o["order_id"],
                "order_status": status,
                "order_status_desc": ORDER_STATUS_DESC[status],
                "create_time": _ts(o["created_at"]),
                "pay_time": _ts(o.get("paid_at")),
                "update_time": _ts(o.get("delivered_at") or o.get("shipped_at") or o["created_at"]),
                "finish_time": _ts(o.get("delivered_at")) if status == 5 else 0,
                "order_amount": _fen(o["total"]),
                "pay_amount": _fen(o["total"]) if o.get("paid_at") else 0,
                "post_amount": 0,
                "open_id": o["buyer_id"],
                "sku_order_list": items,
                "logistics_info": [],
                "post_receiver": name,
                "post_tel": phone,
                "post_addr": {
                    "province": {"name": province},
                    "city": {"name": city},
                    "town": {"name": town},
                    "street": {"name": ""},
                    "detail": detail,
                },
                "mask_post_receiver": name[0] + "*",
                "mask_post_tel": _masked_phone(phone),
                "mask_post_addr": {
                    "province": {"name": province},
                    "city": {"name": city},
                    "town": {"name": town},
                    "detail": detail[:2] + "****",
                },
            }
            if o.get("tracking_no"):
                record["logistics_info"] = [
                    {
                        "tracking_no": o["tracking_no"],
                        "company": COURIER_CODES[o["courier"]],
                        "company_name": o["courier"],
                        "ship_time": _ts(o.get("shipped_at")),
                        "delivery_id": f"D{o['order_id'][-6:]}",
                    }
                ]
                self.routes[o["tracking_no"]] = list(o.get("traces", []))
            if index == 6:  # …007: a receipt time beside the signed-for trace
                record["receipt_time"] = _ts(o.get("delivered_at"))
            self.orders[o["order_id"]] = record
        for c in demo_data.after_sales(self.d):
            type_code = {"return_refund": 0, "refund_only": 1, "exchange": 3}[c["case_type"]]
            case = {
                "aftersale_id": c["case_id"],
                "order_id": c["order_id"],
                "aftersale_type": type_code,
                "aftersale_status": 12,  # the shop agreed; the refund is under way
                "refund_status": 2,
                "refund_amount": _fen(c["amount"]),
                "apply_time": _ts(c["opened_at"]),
                "update_time": _ts(self.d - timedelta(days=1)),
                "reason": c["reason"],
            }
            self.after_sales[c["case_id"]] = case
            for item in self.orders[c["order_id"]]["sku_order_list"]:
                item["after_sale_info"] = {
                    "after_sale_status": 12,
                    "after_sale_type": type_code,
                    "refund_status": 2,
                }

    def update_order(self, order_id: str, **fields: Any) -> None:
        """Change a record (e.g. ``order_status=3, logistics_info=[...]``)."""
        with self._lock:
            self.orders[order_id].update(copy.deepcopy(fields))

    def add_route(self, tracking_no: str, when: datetime, text: str) -> None:
        with self._lock:
            self.routes.setdefault(tracking_no, []).append((when, text))

    # --- faults -------------------------------------------------------------------
    def inject(self, method: str = "*", **fault: Any) -> None:
        """E.g. ``inject("order.orderDetail", delay=5)``, ``inject(status=502, times=1)``,
        ``inject("afterSale.Detail", error_code=50002, sub_msg="...")``."""
        with self._lock:
            self._faults[method] = Fault(**fault)

    def clear_faults(self, method: str | None = None) -> None:
        with self._lock:
            if method is None:
                self._faults.clear()
            else:
                self._faults.pop(method, None)

    def _take_fault(self, method: str) -> Fault | None:
        with self._lock:
            for key in (method, "*"):
                fault = self._faults.get(key)
                if fault is None:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[key]
                return copy.copy(fault)
        return None

    def calls_of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    # --- HTTP ---------------------------------------------------------------------
    def make_app(self) -> Sanic:
        """A Sanic app of its own (not in Sanic's registry of app names, no logging
        set-up, no environment settings, no access log, no banner)."""
        config = Config(env_prefix=None)
        config.update(
            REGISTER=False,
            ACCESS_LOG=False,
            MOTD=False,
            KEEP_ALIVE_TIMEOUT=75,  # an aiohttp client may reuse a connection a while
            REQUEST_TIMEOUT=3600,  # injected delays decide how long an answer takes
            RESPONSE_TIMEOUT=3600,
        )
        name = f"fake_doudian_{id(self)}_{uuid.uuid4().hex[:8]}"
        app = Sanic(name, config=config, configure_logging=False, error_handler=_Errors())
        # every path and method comes to ``_route_request``, which serves the admin
        # endpoints for their methods only and the API for everything else
        app.add_route(self._route_request, "/", methods=HTTP_METHODS, name="root")
        app.add_route(self._route_request, "/<path:path>", methods=HTTP_METHODS, name="any")
        return app

    def _admin_routes(
        self,
    ) -> dict[tuple[str, str], Callable[[Request], Awaitable[HTTPResponse]]]:
        return {
            ("POST", ADMIN + "/faults"): self._admin_inject,
            ("DELETE", ADMIN + "/faults"): self._admin_clear,
            ("GET", ADMIN + "/calls"): self._admin_calls,
            ("HEAD", ADMIN + "/calls"): self._admin_calls,
        }

    async def _route_request(self, request: Request, path: str = "") -> HTTPResponse:
        admin = self._admin_routes().get((request.method, _path(request)))
        if admin is not None:
            return await admin(request)
        # like aiohttp's server, finish (and record) a call whose client went away
        return await asyncio.shield(self._handle(request))

    async def _admin_inject(self, request: Request) -> HTTPResponse:
        body = json.loads(request.body)
        method = str(body.pop("method", "*"))
        try:
            self.inject(method, **body)
        except TypeError as exc:
            return _json({"error": str(exc)}, status=400)
        return _json({"ok": True})

    async def _admin_clear(self, request: Request) -> HTTPResponse:
        self.clear_faults(_query(request).get("method"))
        return _json({"ok": True})

    async def _admin_calls(self, request: Request) -> HTTPResponse:
        with self._lock:
            calls = [asdict(c) for c in self.calls]
        return _json(calls)

    @staticmethod
    def _error(spec: tuple[int, str, str], detail: str = "", variant: int = 0) -> dict[str, Any]:
        code, msg, sub_code = spec
        answer: dict[str, Any] = {
            "code": code if variant % 2 == 0 else str(code),
            "msg": msg,
            "sub_code": sub_code + (f":{detail}" if detail and detail.isascii() else ""),
            "sub_msg": detail or msg,
            "log_id": uuid.uuid4().hex,
            "data": {},
        }
        if variant % 2:
            answer.update(err_no=code, message=msg)
        return answer

    @staticmethod
    def _ok(data: dict[str, Any], variant: int = 0) -> dict[str, Any]:
        """Success in one of three shapes: ``code`` 10000; ``code`` "10000" with
        ``err_no`` and ``message``; ``err_no`` / ``message`` only (older answers)."""
        log_id = uuid.uuid4().hex
        if variant % 3 == 0:
            return {"code": 10000, "msg": "success", "data": data, "log_id": log_id}
        if variant % 3 == 1:
            return {
                "code": "10000",
                "msg": "success",
                "err_no": 0,
                "message": "success",
                "data": data,
                "log_id": log_id,
            }
        return {"err_no": 0, "message": "success", "data": data, "log_id": log_id}

    @staticmethod
    def _param_json(request: Request) -> str:
        mime, options = parse_content_header(request.content_type)
        if mime == "application/x-www-form-urlencoded":
            charset = str(options.get("charset") or "utf-8")
            text = request.body.rstrip().decode(charset)
            form = parse_qsl(text, keep_blank_values=True, encoding=charset)
            value = next((v for k, v in form if k == "param_json"), None)
            if value is not None:
                return value
        raw = request.body
        if raw:
            return raw.decode("utf-8")
        return _query(request).get("param_json", "{}")

    def _check(
        self, request: Request, method: str, param_json: str
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The parameters, or an error answer for a request the platform would refuse."""
        q = _query(request)
        for name in ("app_key", "method", "timestamp", "sign", "v"):
            if not q.get(name):
                return {}, self._error(ERR_MISSING, name)
        if q["app_key"] != self.app_key:
            return {}, self._error(ERR_APP_KEY)
        if q["v"] != "2":
            return {}, self._error(ERR_INVALID, "v")
        if method_path(q["method"]) != _path(request).rstrip("/"):
            return {}, self._error(ERR_INVALID, "method does not match the path")
        sign_method = q.get("sign_method", "md5")
        if sign_method not in SIGN_METHODS:
            return {}, self._error(ERR_INVALID, "sign_method")
        stamp = parse_timestamp(q["timestamp"])
        if stamp is None or abs(self.clock() - stamp) > MAX_CLOCK_SKEW_SECONDS:
            return {}, self._error(ERR_TIMESTAMP)
        expected = sign(
            self.app_key, self.app_secret, method, param_json, q["timestamp"], sign_method
        )
        if not hmac.compare_digest(expected, q["sign"].lower()):
            return {}, self._error(ERR_SIGN)
        if q.get("access_token") != self.access_token:
            return {}, self._error(ERR_TOKEN)
        try:
            params = json.loads(param_json)
        except ValueError:
            return {}, self._error(ERR_INVALID, "param_json")
        if not isinstance(params, dict) or encode_params(params) != param_json:
            # the platform signs what it receives; the fake is stricter about the format
            return {}, self._error(ERR_INVALID, "param_json must be sorted, compact JSON")
        return params, None

    async def _handle(self, request: Request) -> HTTPResponse:
        q = _query(request)
        method = q.get("method") or _path(request).strip("/").replace("/", ".")
        fault = self._take_fault(method)
        if fault and fault.delay:
            await asyncio.sleep(fault.delay)
        param_json = self._param_json(request)
        sign_method = q.get("sign_method", "md5")
        timestamp = q.get("timestamp", "")
        given_sign = q.get("sign", "")
        if fault and fault.status:
            outcome = f"http {fault.status}"
            self._record(Call(method, {}, sign_method, timestamp, outcome, given_sign))
            return response.html(
                f"<html><body>{fault.status} fake gateway error</body></html>",
                status=fault.status,
            )
        answer: dict[str, Any] = {}
        params, error = self._check(request, method, param_json)
        if error is None and fault and fault.error_code is not None:
            spec = (fault.error_code, fault.error_msg, fault.sub_code)
            error = self._error(spec, fault.sub_msg)
        if error is None:
            handler = self._methods().get(method)
            if handler is None:
                error = self._error(ERR_INVALID, "method not found")
            else:
                with self._lock:
                    answer = handler(params)
        if error is not None:
            answer = error
        code = answer.get("code", answer.get("err_no"))
        outcome = "ok" if str(code) in ("10000", "0") else f"error {code}"
        self._record(Call(method, params, sign_method, timestamp, outcome, given_sign))
        return response.text(
            json.dumps(answer, ensure_ascii=False),
            content_type="application/json; charset=utf-8",
        )

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "order.orderDetail": self._order_detail,
            "order.searchList": self._search_list,
            "logistics.trackNoRouteDetail": self._route,
            "afterSale.List": self._after_sale_list,
            "afterSale.Detail": self._after_sale_detail,
        }

    # --- the methods (called with the lock held) ----------------------------------
    def _variant(self, order_id: str) -> int:
        ids = list(self.orders)
        return ids.index(order_id) if order_id in ids else 0

    def _shape_order(self, record: dict[str, Any], variant: int) -> dict[str, Any]:
        """One record as Doudian sends it; odd variants send numbers as strings."""
        out = copy.deepcopy(record)
        if variant % 2:
            for key in ("order_status", "create_time", "pay_time", "order_amount", "pay_amount"):
                out[key] = str(out[key])
            for item in out["sku_order_list"]:
                item["goods_price"] = str(item["goods_price"])
                item["item_num"] = str(item["item_num"])
                item["product_id"] = str(item["product_id"])
            for parcel in out["logistics_info"]:
                parcel["ship_time"] = str(parcel["ship_time"])
        else:
            out["order_id"] = int(out["order_id"])
        if variant == 2:  # …003: the id wrapped in literal quotes
            out["order_id"] = f'"{record["order_id"]}"'
        return out

    def _order_detail(self, params: dict[str, Any]) -> dict[str, Any]:
        order_id = str(params.get("shop_order_id") or "").strip()
        if not order_id:
            return self._error(ERR_MISSING, "shop_order_id")
        record = self.orders.get(order_id)
        if record is None:
            return self._error(ERR_BUSINESS, "订单不存在")
        variant = self._variant(order_id)
        return self._ok({"shop_order_detail": self._shape_order(record, variant)}, variant)

    def _search_list(self, params: dict[str, Any]) -> dict[str, Any]:
        buyer = params.get(self.buyer_param)
        page = int(params.get("page") or 0)
        size = max(1, min(100, int(params.get("size") or 10)))
        found = [
            r for r in self.orders.values() if buyer in (None, "") or r["open_id"] == str(buyer)
        ]
        found.sort(key=lambda r: (r["create_time"], r["order_id"]), reverse=True)
        chunk = found[page * size : (page + 1) * size]
        more = (page + 1) * size < len(found)
        orders = [self._shape_order(r, self._variant(r["order_id"])) for r in chunk]
        data = {
            "shop_order_list": orders,
            "page": page,
            "size": size,
            "total": str(len(found)),
            "has_more": "true" if more else "false",
        }
        return self._ok(data, variant=page + 1)

    def _route(self, params: dict[str, Any]) -> dict[str, Any]:
        track_no = str(params.get("track_no") or "")
        if not track_no or not params.get("logistics_code"):
            return self._error(ERR_MISSING, "track_no" if not track_no else "logistics_code")
        if track_no not in self.routes:
            return self._error(ERR_BUSINESS, "运单号不存在")
        nodes = sorted(self.routes[track_no])
        if track_no.startswith("SF"):  # route_node_list, Unix seconds as numbers
            data: dict[str, Any] = {
                "route_node_list": [
                    {"content": text, "timestamp": _ts(when), "state": "1"} for when, text in nodes
                ]
            }
            return self._ok(data, 0)
        if track_no.startswith("YT"):  # nested, datetime strings, err_no only
            data = {
                "track_info": {
                    "track_no": track_no,
                    "express": params["logistics_code"],
                    "route_node_list": [
                        {"content": text, "time": f"{when:%Y-%m-%d %H:%M:%S}"}
                        for when, text in nodes
                    ],
                }
            }
            return self._ok(data, 2)
        data = {  # route__node_list (double underscore), Unix seconds as strings
            "route__node_list": [
                {"content": text, "timestamp": str(_ts(when))} for when, text in nodes
            ]
        }
        return self._ok(data, 1)

    def _after_sale_list(self, params: dict[str, Any]) -> dict[str, Any]:
        order_id = str(params.get("order_id") or "")
        case_id = str(params.get("aftersale_id") or "")
        page = int(params.get("page") or 0)
        size = max(1, min(100, int(params.get("size") or 10)))
        cases = [
            c
            for c in self.after_sales.values()
            if (not order_id or c["order_id"] == order_id)
            and (not case_id or c["aftersale_id"] == case_id)
        ]
        chunk = cases[page * size : (page + 1) * size]
        items = []
        for c in chunk:
            items.append(
                {
                    "aftersale_info": {
                        "aftersale_id": c["aftersale_id"],
                        "aftersale_type": str(c["aftersale_type"]),
                        "aftersale_status": c["aftersale_status"],
                        "refund_status": str(c["refund_status"]),
                        "refund_amount": str(c["refund_amount"]),
                        "apply_time": str(c["apply_time"]),
                        "update_time": c["update_time"],
                        "reason": c["reason"],
                    },
                    "order_info": {"shop_order_id": int(c["order_id"])},
                }
            )
        more = (page + 1) * size < len(cases)
        data = {"items": items, "has_more": more, "total": str(len(cases)), "page": page}
        return self._ok(data, 1)

    def _after_sale_detail(self, params: dict[str, Any]) -> dict[str, Any]:
        case_id = str(params.get("after_sale_id") or "").strip()
        if not case_id:
            return self._error(ERR_MISSING, "after_sale_id")
        c = self.after_sales.get(case_id)
        if c is None:
            return self._error(ERR_BUSINESS, "售后单不存在")
        data = {
            "process_info": {
                "after_sale_info": {
                    "after_sale_id": f'"{c["aftersale_id"]}"',
                    "after_sale_type": c["aftersale_type"],
                    "after_sale_status": str(c["aftersale_status"]),
                    "refund_status": c["refund_status"],
                    "refund_amount": c["refund_amount"],
                    "apply_time": c["apply_time"],
                    "reason": c["reason"],
                }
            },
            "order_info": {"shop_order_id": c["order_id"]},
        }
        return self._ok(data, 0)


@contextmanager
def running_fake_doudian(port: int = 0, **kwargs: Any) -> Iterator[FakeDoudian]:
    """Start the fake on a free localhost port (a background thread); yields it with
    ``base_url`` set."""
    fake = FakeDoudian(**kwargs)
    server = SanicThread(fake.make_app, name="fake Doudian", port=port)
    server.start()
    fake.base_url = f"http://{server.host}:{server.port}"
    try:
        yield fake
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Doudian open-API server (demo shop).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument("--app-key", default=DEFAULT_APP_KEY)
    parser.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    parser.add_argument("--access-token", default=DEFAULT_ACCESS_TOKEN)
    args = parser.parse_args(argv)
    fake = FakeDoudian(args.app_key, args.app_secret, args.access_token)
    print(
        f"fake Doudian on http://{args.host}:{args.port} "
        f"(demo shop seeded at {fake.d:%Y-%m-%d %H:%M:%S})\n"
        f"  export XIAOER_BACKEND=doudian XIAOER_DOUDIAN_BASE_URL=http://{args.host}:{args.port}\n"
        f"  export XIAOER_DOUDIAN_APP_KEY={args.app_key}\n"
        f"  export XIAOER_DOUDIAN_APP_SECRET={args.app_secret}\n"
        f"  export XIAOER_DOUDIAN_ACCESS_TOKEN={args.access_token}\n"
        f'faults: curl -X POST http://{args.host}:{args.port}{ADMIN}/faults -d \'{{"method": "order.orderDetail", "delay": 5}}\'',
        flush=True,
    )
    # no "Sanic is running in PRODUCTION mode" hint on a terminal: this is a fake
    error_logger.addFilter(lambda record: "PRODUCTION mode" not in record.getMessage())
    server = SanicThread(fake.make_app, name="fake Doudian", host=args.host, port=args.port)
    server.start()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly, as on Ctrl-C
    try:
        while server.thread.is_alive():
            server.thread.join(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
