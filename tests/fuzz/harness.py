"""Fuzzing Xiaoer's public endpoints with hypothesis against real running servers.

Shared by the short CI run (tests/fuzz/test_fuzz_endpoints.py) and the benchmark
(bench/fuzz.py, >= 10,000 requests). Generated requests go to the REST webhook and inbox,
the Douyin webhook, the Doudian push webhook and the console's JSON and form endpoints
(anonymous and as a logged-in admin with a valid CSRF token). Every answer must be below
500, every server must stay up, and a rejected request (4xx) must leave every store as
it was (row counts of every table of every SQLite file). Webhook requests are not
signed: the platform webhooks must reject all of them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from xiaoer.devtools.stack import Stack

DOUDIAN_APP_KEY = "fuzz_app_key"
DOUDIAN_APP_SECRET = "fuzz_app_secret"
DOUDIAN_CREDENTIALS = f"""xiaoer.channels.doudian.DoudianPushInput:
  app_key: {DOUDIAN_APP_KEY}
  app_secret: {DOUDIAN_APP_SECRET}
"""
DOUYIN_ENV = {
    "XIAOER_DOUYIN_CLIENT_KEY": "fuzz_client_key",
    "XIAOER_DOUYIN_CLIENT_SECRET": "fuzz_client_secret",
    "XIAOER_DOUYIN_ACCOUNT_OPEN_ID": "fuzz_account",
    "XIAOER_DOUYIN_ACCESS_TOKEN": "fuzz_access_token",
    "XIAOER_DOUYIN_BASE_URL": "http://127.0.0.1:9",  # never reached: nothing is signed
}
ADMIN, ADMIN_PASSWORD = "fuzzadmin", "Fuzz-admin-2026"
# tables the event followers write later (leads, analytics and the learning inbox, from
# accepted messages): they may change while a rejected request runs, so they are not compared
ASYNC_TABLES = re.compile(
    r":(leads|lead_contacts|lead_senders|lead_activity|lead_kv|crm_outbox|event_cursor"
    r"|analytics_[a-z]+|inbox_items|inbox_sightings|learning_senders|variant_exposures)$"
)
# no background writer during the run: the console's re-announcement of long waits would
# append to conversations at any moment
FUZZ_SETTINGS = {
    "console": {"reannounce_check_seconds": 86400},
    "handoff": {"reannounce_after_minutes": 100000},
}

# --- strategies ---------------------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False),
    st.text(max_size=40),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
senders = st.one_of(
    st.from_regex(r"\Afz-[a-z0-9]{1,12}\Z"),  # valid
    st.text(max_size=140),
    json_values,
)
messages = st.one_of(
    st.sampled_from(["你好", "在吗", "订单6938271045123400002到哪了", "/complain", "我要退货",
                     "我的电话13912345678", "", "   ", "/affirm", "转人工"]),
    st.text(max_size=300),
    st.text(min_size=2001, max_size=2100),
    json_values,
)  # fmt: skip
metadata = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "buyer_id": st.text(max_size=20), "nickname": st.text(max_size=20),
            "lead_card": json_values, "product_id": json_values, "attachments": json_values,
            "handoff_limited": json_values, "is_external": json_values,
        },
    ),
)  # fmt: skip
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=gbk",
    ]
)


def header(value: str | bytes) -> bytes:
    """A header value an HTTP client can send (no line breaks, no surrounding blanks):
    anything else, non-ASCII bytes included, goes through."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    raw = bytes(b for b in raw if b not in b"\r\n\0")
    return raw.strip(b" \t\x0b\x0c") or b"x"


def _json_body(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


valid_senders = st.from_regex(r"\Afz-[a-z0-9]{1,12}\Z")
valid_messages = st.one_of(
    st.sampled_from(["你好", "在吗", "订单6938271045123400002到哪了", "/complain", "我要退货",
                     "我的电话13912345678", "/affirm", "转人工", "多少钱", "/deny"]),
    st.text(min_size=1, max_size=200).filter(str.strip),
)  # fmt: skip
valid_rest = st.builds(
    lambda s, m, md: _json_body({"sender": s, "message": m, "metadata": md}),
    valid_senders, valid_messages, st.one_of(st.just({}), metadata.filter(lambda m: isinstance(m, dict))),
)  # fmt: skip
rest_bodies = st.one_of(
    valid_rest,
    valid_rest,
    valid_rest,
    st.builds(
        lambda s, m, md, keep: _json_body(
            {k: v for k, v in {"sender": s, "message": m, "metadata": md}.items() if k in keep}
        ),
        senders, messages, metadata,
        st.sets(st.sampled_from(["sender", "message", "metadata"]), min_size=0, max_size=3),
    ),
    st.binary(max_size=300),
    st.builds(_json_body, json_values),
)  # fmt: skip

douyin_events = st.sampled_from(
    ["im_receive_msg", "im_send_msg", "im_enter_direct_msg", "new_follow_action",
     "verify_webhook", "unknown", ""]
)  # fmt: skip
douyin_bodies = st.one_of(
    st.builds(
        lambda e, f, t, c: _json_body({"event": e, "from_user_id": f, "to_user_id": t,
                                        "client_key": "fuzz_client_key", "content": c}),
        douyin_events, st.text(max_size=30), st.text(max_size=30),
        st.one_of(json_values, st.builds(lambda v: json.dumps(v), json_values)),
    ),
    st.binary(max_size=300),
    st.builds(_json_body, json_values),
)  # fmt: skip
signatures = st.one_of(
    st.none(), st.text(max_size=50), st.from_regex(r"\A[0-9a-f]{40}\Z"),
    st.from_regex(r"\A[0-9a-f]{32}\Z"), st.binary(max_size=40),
)  # fmt: skip
doudian_bodies = st.one_of(
    st.builds(
        lambda items: _json_body(items),
        st.lists(
            st.fixed_dictionaries(
                {"tag": st.sampled_from(["100", "101", "102", "200", "x"]),
                 "msg_id": st.text(max_size=20),
                 "data": st.one_of(json_values, st.builds(json.dumps, json_values))}
            ),
            max_size=3,
        ),
    ),
    st.binary(max_size=300),
    st.builds(_json_body, json_values),
)  # fmt: skip

ids = st.one_of(st.integers(0, 6), st.integers(-5, 2**40))
form_values = st.dictionaries(
    st.sampled_from(["note", "status", "text", "group", "agent_id", "on_shift", "username",
                     "password", "next", "role", "display_name", "keywords", "start", "end",
                     "tags", "handoff_id", "quick_replies", "greet_new_customer_day", "x"]),
    st.one_of(st.text(max_size=60), st.sampled_from(["1", "0", "new", "contacted", "售前", ""])),
    max_size=5,
)  # fmt: skip
console_forms = st.one_of(
    st.tuples(st.just("/handoffs/{id}/take"), ids, form_values),
    st.tuples(st.just("/handoffs/{id}/close"), ids, form_values),
    st.tuples(st.just("/handoffs/{id}/reassign"), ids, form_values),
    st.tuples(st.just("/handoffs/{id}/transfer"), ids, form_values),
    st.tuples(st.just("/customers/profile"), ids, form_values),
    st.tuples(st.just("/admin/settings"), ids, form_values),
    st.tuples(st.just("/leads/{id}/note"), ids, form_values),
    st.tuples(st.just("/leads/{id}/status"), ids, form_values),
    st.tuples(st.just("/leads/{id}/assign"), ids, form_values),
    st.tuples(st.just("/me/shift"), ids, form_values),
    st.tuples(st.just("/login"), ids, form_values),
)
console_json = st.tuples(
    ids, st.one_of(st.builds(_json_body, json_values), st.binary(max_size=200),
                   st.builds(lambda t: _json_body({"text": t}), st.text(max_size=300)))
)  # fmt: skip
console_gets = st.tuples(
    st.sampled_from(["/api/queue", "/api/leads", "/api/handoffs/{id}/messages", "/leads/{id}",
                     "/handoffs/{id}", "/leads/export.csv", "/leads/export.xlsx", "/history",
                     "/api/openapi.yaml", "/admin/agents", "/admin/settings", "/outbox",
                     "/workspace", "/search", "/handoffs/{id}/pane"]),
    ids,
    st.dictionaries(st.sampled_from(["q", "status", "category", "page", "after", "group"]),
                    st.text(max_size=20), max_size=3),
)  # fmt: skip


# --- the run --------------------------------------------------------------------------------
def table_counts(workdir: Path) -> dict[str, tuple[int, int]]:
    """Per table of every SQLite file: its highest rowid (any new row raises it, even if
    another was deleted) and its row count."""
    counts: dict[str, tuple[int, int]] = {}
    for path in sorted([*workdir.glob("*.db"), *(workdir / "var").glob("*.db")]):
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as conn:
            tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            for (table,) in tables:
                if table == "sqlite_sequence":
                    # AUTOINCREMENT counters, one row per table: compared per table, so that
                    # an event follower's first row in its own table (an async table) is not
                    # taken for a write of the rejected request
                    for name, seq in conn.execute("SELECT name, seq FROM sqlite_sequence"):
                        counts[f"{path.name}:sqlite_sequence:{name}"] = (int(seq or 0), 1)
                    continue
                try:
                    row = conn.execute(f'SELECT max(rowid), count(*) FROM "{table}"').fetchone()
                except sqlite3.OperationalError:  # WITHOUT ROWID
                    row = (0, conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
                counts[f"{path.name}:{table}"] = (int(row[0] or 0), int(row[1]))
    return counts


def stable(counts: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    return {k: v for k, v in counts.items() if not ASYNC_TABLES.search(k)}


@dataclass
class FuzzRun:
    stack: Stack
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    requests: int = 0
    problems: list[str] = field(default_factory=list)
    admin: requests.Session | None = None
    csrf: str = ""

    # helpers
    def _send(self, endpoint: str, method: str, url: str, check_stores: bool, **kwargs: Any) -> int:
        before = stable(table_counts(self.stack.workdir)) if check_stores else None
        try:
            session = kwargs.pop("session", None) or requests
            r = session.request(method, url, timeout=60, allow_redirects=False, **kwargs)
            status = r.status_code
        except requests.RequestException as exc:
            self.problems.append(f"{endpoint}: no answer ({type(exc).__name__})")
            raise AssertionError(f"{endpoint}: no answer: {exc}") from exc
        self.requests += 1
        self.statuses[(endpoint, status)] += 1
        assert status < 500, f"{endpoint}: HTTP {status}: {r.text[:300]}"
        if before is not None and status >= 400:
            after = stable(table_counts(self.stack.workdir))
            changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
            assert not changed, f"{endpoint}: rejected ({status}) but stores changed: {changed}"
        return status

    def login(self) -> None:
        s = requests.Session()
        page = s.get(f"{self.stack.console_url}/login", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        r = s.post(
            f"{self.stack.console_url}/login",
            data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": token.group(1)},
            timeout=10,
        )
        assert r.status_code == 200, r.status_code
        meta = re.search(r'name="csrf-token" content="([^"]+)"', r.text)
        assert meta
        self.admin, self.csrf = s, meta.group(1)

    # endpoints
    def rest(self, body: bytes, ctype: str) -> None:
        self._send("rest webhook", "POST", self.stack.webhook, True, data=body,
                   headers={"Content-Type": ctype} if ctype else {})  # fmt: skip

    def inbox(self, sender: Any, after: Any, token: Any) -> None:
        headers = {"X-Xiaoer-Inbox-Token": header(token)} if isinstance(token, str) else {}
        status = self._send(
            "rest inbox", "GET", f"{self.stack.rasa_url}/webhooks/rest/inbox", True,
            params={"sender": str(sender), "after": str(after)}, headers=headers,
        )  # fmt: skip
        assert status != 200, "an inbox was read without its token"

    def douyin(self, body: bytes, sig: Any, ctype: str) -> None:
        headers = {"Content-Type": ctype} if ctype else {}
        if sig is not None:
            headers["X-Douyin-Signature"] = header(sig)
        status = self._send("douyin webhook", "POST",
                            f"{self.stack.rasa_url}/webhooks/douyin/webhook", True,
                            data=body, headers=headers)  # fmt: skip
        assert status >= 400, "an unsigned Douyin event was accepted"

    def douyin_signed(self, body: bytes) -> None:
        """Correctly signed bodies reach the parser: malformed ones get a 4xx, valid
        events are stored and answered in the background (so stores are not compared)."""
        from xiaoer.douyin.protocol import signature

        sig = signature(DOUYIN_ENV["XIAOER_DOUYIN_CLIENT_SECRET"], body)
        self._send("douyin webhook (signed)", "POST",
                   f"{self.stack.rasa_url}/webhooks/douyin/webhook", False, data=body,
                   headers={"Content-Type": "application/json", "X-Douyin-Signature": sig})  # fmt: skip

    def doudian(self, body: bytes, sig: Any) -> None:
        headers = {"app-id": DOUDIAN_APP_KEY, "Content-Type": "application/json"}
        if sig is not None:
            headers["event-sign"] = header(sig)
        status = self._send("doudian push", "POST",
                            f"{self.stack.rasa_url}/webhooks/doudian_push/webhook", True,
                            data=body, headers=headers)  # fmt: skip
        assert status >= 400, "an unsigned Doudian push was accepted"

    def console_form(self, path: str, rid: int, form: dict[str, str], as_admin: bool) -> None:
        url = self.stack.console_url + path.replace("{id}", str(rid))
        kwargs: dict[str, Any] = {"data": {k.encode(): v.encode() for k, v in form.items()}}
        if as_admin and self.admin is not None:
            kwargs["session"] = self.admin
            kwargs["headers"] = {"X-CSRF-Token": self.csrf}
            self._send(f"console form {path}", "POST", url, True, **kwargs)
            return
        # anonymous: refused whatever the answer (a redirect to the login included)
        before = stable(table_counts(self.stack.workdir))
        status = self._send(f"console form {path} (anonymous)", "POST", url, False, **kwargs)
        assert status in (302, 303, 401, 403, 404, 405, 429), f"anonymous {path}: {status}"
        assert stable(table_counts(self.stack.workdir)) == before, f"anonymous {path} stored"

    def console_reply(self, rid: int, body: bytes, as_admin: bool) -> None:
        url = f"{self.stack.console_url}/api/handoffs/{rid}/reply"
        kwargs: dict[str, Any] = {"data": body, "headers": {"Content-Type": "application/json"}}
        if as_admin and self.admin is not None:
            kwargs["session"] = self.admin
            kwargs["headers"]["X-CSRF-Token"] = self.csrf
        self._send("console json reply", "POST", url, True, **kwargs)

    def console_get(self, path: str, rid: int, params: dict[str, str], as_admin: bool) -> None:
        url = self.stack.console_url + path.replace("{id}", str(rid))
        kwargs: dict[str, Any] = {"params": params}
        if as_admin and self.admin is not None:
            kwargs["session"] = self.admin
        self._send(f"console GET {path}", "GET", url, False, **kwargs)

    # the whole run
    def run(self, per_endpoint: dict[str, int], seed: int | None = None) -> None:
        def run_given(n: int, strategy: Any, fn: Callable[..., None]) -> None:
            if n <= 0:
                return
            config = settings(
                max_examples=n, deadline=None, database=None, derandomize=seed is not None,
                phases=[Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            config(given(strategy)(lambda args: fn(*args)))()

        self.login()
        self.settle()
        run_given(per_endpoint.get("rest", 0), st.tuples(rest_bodies, content_types),
                  lambda b, c: self.rest(b, c))  # fmt: skip
        self.settle()
        run_given(per_endpoint.get("inbox", 0), st.tuples(senders, st.text(max_size=12),
                  st.one_of(st.none(), st.text(max_size=40))), self.inbox)  # fmt: skip
        run_given(per_endpoint.get("douyin", 0), st.tuples(douyin_bodies, signatures,
                  content_types), self.douyin)  # fmt: skip
        run_given(per_endpoint.get("doudian", 0), st.tuples(doudian_bodies, signatures),
                  self.doudian)  # fmt: skip
        run_given(per_endpoint.get("console_form", 0), st.tuples(console_forms, st.booleans()),
                  lambda f, a: self.console_form(f[0], f[1], f[2], a))  # fmt: skip
        run_given(per_endpoint.get("console_json", 0), st.tuples(console_json, st.booleans()),
                  lambda j, a: self.console_reply(j[0], j[1], a))  # fmt: skip
        run_given(per_endpoint.get("console_get", 0), st.tuples(console_gets, st.booleans()),
                  lambda g, a: self.console_get(g[0], g[1], g[2], a))  # fmt: skip
        # last: accepted signed events are answered in the background, writing to stores
        run_given(per_endpoint.get("douyin_signed", 0), st.tuples(douyin_bodies),
                  self.douyin_signed)  # fmt: skip

    def settle(self, quiet: float = 2.0, limit: float = 60.0) -> None:
        """Wait until no store changes for ``quiet`` seconds (background work of accepted
        requests done), so that a later rejected request is judged alone."""
        deadline = time.monotonic() + limit
        last, since = table_counts(self.stack.workdir), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < quiet:
            time.sleep(0.25)
            now = table_counts(self.stack.workdir)
            if now != last:
                last, since = now, time.monotonic()

    def servers_alive(self) -> list[str]:
        dead = [name for name, proc in (("rasa", self.stack.rasa), ("actions", self.stack.actions))
                if proc.poll() is not None]  # fmt: skip
        for url in (f"{self.stack.rasa_url}/", f"{self.stack.actions_url}/health",
                    f"{self.stack.console_url}/login"):  # fmt: skip
            try:
                if requests.get(url, timeout=10).status_code >= 500:
                    dead.append(url)
            except requests.RequestException:
                dead.append(url)
        return dead

    def histogram(self) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        for (endpoint, status), n in sorted(self.statuses.items()):
            out.setdefault(endpoint, {})[status] = n
        return out


def fuzz_env(data_dir: Path) -> dict[str, str]:
    """Environment of the fuzzed stack: Douyin configured (so its webhook checks
    signatures instead of answering 503)."""
    return dict(DOUYIN_ENV)


def create_admin(data_dir: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "XIAOER_DATA_DIR": str(data_dir), "XIAOER_ADMIN_PASSWORD": ADMIN_PASSWORD}
    subprocess.run(
        [sys.executable, "-m", "xiaoer.cli", "create-admin", ADMIN, "--groups", "售前", "售后"],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    time.sleep(0)
