"""Sliding-window rate limits.

:class:`SlidingWindow` counts in the memory of one process (tests, single-process tools);
:func:`shared_window` gives the one the servers use, counted together by every process of
a machine (:class:`SharedSlidingWindow`, the Sanic workers of a Rasa server) or by every
server (:class:`RedisSlidingWindow`, the scale-out profile), so ``server.workers`` or
replicas never multiply a sender's allowance (docs/deployment.md)."""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from xiaoer.core.outage import log_unavailable

logger = logging.getLogger(__name__)

# the shared file forgets the events of quiet keys every this many decisions
PRUNE_EVERY = 1000


class SlidingWindow:
    """At most ``limit`` events per key within ``window`` seconds."""

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = int(limit)
        self.window = float(window)
        self.clock = clock
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self.max_keys:
                self._prune(now)
            events = self._events[key] = deque()
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._events.items() if not v or v[-1] <= now - self.window]:
            del self._events[key]
        if len(self._events) >= self.max_keys:  # still full: forget the oldest keys
            for key in list(self._events)[: self.max_keys // 10]:
                del self._events[key]

    def count(self, key: str) -> int:
        return len(self._recent(key, self.clock()))

    def allow(self, key: str) -> bool:
        """Record one event for ``key`` unless the limit is reached (then False)."""
        if self.limit <= 0:
            return True
        now = self.clock()
        events = self._recent(key, now)
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True

    def hit(self, key: str) -> None:
        """Record one event regardless of the limit."""
        self._recent(key, self.clock()).append(self.clock())

    def retry_after(self, key: str) -> int:
        events = self._recent(key, self.clock())
        if not events:
            return 0
        return max(1, int(events[0] + self.window - self.clock()) + 1)


class SharedSlidingWindow:
    """:class:`SlidingWindow` with its counts shared by every process of one machine (the
    Sanic workers of a Rasa server): one small SQLite file (``path``, WAL, no fsync - the
    counts are disposable), each decision one short write transaction (well under a
    millisecond). ``name`` keeps the windows of one file apart.

    A storage error lets the message through (logged): a rate limit never stops service.
    """

    def __init__(
        self,
        name: str,
        limit: int,
        window: float,
        path: str | os.PathLike[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.limit = int(limit)
        self.window = float(window)
        self.path = str(path)
        self.clock = clock
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._calls = 0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # never share one across a fork
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            os.chmod(self.path, 0o600)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS hits (name TEXT NOT NULL, key TEXT NOT NULL,"
                " t REAL NOT NULL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS hits_key ON hits (name, key, t)")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _run(self, key: str, record: bool, enforce: bool) -> tuple[bool, int, float | None]:
        """One transaction: forget old events of ``key``, count, maybe record one.
        Returns (allowed, count before, oldest event time)."""
        now = self.clock()
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "DELETE FROM hits WHERE name = ? AND key = ? AND t <= ?",
                    (self.name, key, now - self.window),
                )
                count, oldest = conn.execute(
                    "SELECT count(*), min(t) FROM hits WHERE name = ? AND key = ?",
                    (self.name, key),
                ).fetchone()
                allowed = not enforce or self.limit <= 0 or count < self.limit
                if record and allowed:
                    conn.execute(
                        "INSERT INTO hits (name, key, t) VALUES (?, ?, ?)", (self.name, key, now)
                    )
                self._calls += 1
                if self._calls % PRUNE_EVERY == 0:  # keys that went quiet
                    conn.execute(
                        "DELETE FROM hits WHERE name = ? AND t <= ?",
                        (self.name, now - self.window),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return allowed, int(count), oldest

    def _safe(self, key: str, record: bool, enforce: bool) -> tuple[bool, int, float | None]:
        try:
            return self._run(key, record, enforce)
        except sqlite3.Error as exc:
            log_unavailable(logger, "rate limit file", f"rate limit {self.name} (let through)", exc)
            return True, 0, None

    def count(self, key: str) -> int:
        return self._safe(key, record=False, enforce=False)[1]

    def allow(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        return self._safe(key, record=True, enforce=True)[0]

    def hit(self, key: str) -> None:
        self._safe(key, record=True, enforce=False)

    def retry_after(self, key: str) -> int:
        oldest = self._safe(key, record=False, enforce=False)[2]
        if oldest is None:
            return 0
        return max(1, int(oldest + self.window - self.clock()) + 1)


# KEYS: the sorted set; ARGV: window ms, limit (0: no limit), record (1/0), member suffix.
# Redis's own clock, so the servers' clocks need not agree.
REDIS_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[2])
local allowed = 1
if limit > 0 and count >= limit then allowed = 0 end
if allowed == 1 and ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local wait = 0
if oldest then wait = tonumber(oldest) + window - now end
return {allowed, count, wait}
"""


class RedisSlidingWindow:
    """:class:`SlidingWindow` shared by every Rasa server of the scale-out profile: one
    Redis sorted set per key, each decision one atomic script. Redis down: the message is
    let through (logged)."""

    def __init__(
        self, name: str, limit: int, window: float, client: Any, prefix: str = "xiaoer:rl:"
    ) -> None:
        self.name = name
        self.limit = int(limit)
        self.window = float(window)
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(REDIS_WINDOW)
        self._seq = itertools.count()
        self._tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def _run(self, key: str, record: bool, enforce: bool) -> tuple[bool, int, int]:
        import redis  # type: ignore[import-untyped,unused-ignore]

        try:
            allowed, count, wait_ms = self._script(
                keys=[f"{self.prefix}{self.name}:{key}"],
                args=[
                    int(self.window * 1000),
                    self.limit if enforce else 0,
                    1 if record else 0,
                    f"{self._tag}-{next(self._seq)}",
                ],
            )
        except redis.RedisError as exc:
            log_unavailable(logger, "Redis", f"rate limit {self.name} (let through)", exc)
            return True, 0, 0
        return bool(allowed), int(count), int(wait_ms)

    def count(self, key: str) -> int:
        return self._run(key, record=False, enforce=False)[1]

    def allow(self, key: str) -> bool:
        if self.limit <= 0:
            return True
        return self._run(key, record=True, enforce=True)[0]

    def hit(self, key: str) -> None:
        self._run(key, record=True, enforce=False)

    def retry_after(self, key: str) -> int:
        _, count, wait_ms = self._run(key, record=False, enforce=False)
        if not count:
            return 0
        return max(1, wait_ms // 1000 + 1)


RateLimit = SlidingWindow | SharedSlidingWindow | RedisSlidingWindow


def shared_window(name: str, limit: int, window: float) -> RateLimit:
    """The window every process counts together: Redis when ``XIAOER_REDIS_HOST`` is set
    (the scale-out profile: all servers), else the file ``$XIAOER_DATA_DIR/ratelimit.db``
    (the Sanic workers of one machine)."""
    host = os.environ.get("XIAOER_REDIS_HOST")
    if host:
        import redis

        client = redis.Redis(
            host=host,
            port=int(os.environ.get("XIAOER_REDIS_PORT") or 6379),
            db=int(os.environ.get("XIAOER_REDIS_RATE_LIMIT_DB") or 2),
            password=os.environ.get("XIAOER_REDIS_PASSWORD") or None,
            socket_timeout=1,
            socket_connect_timeout=1,
        )
        return RedisSlidingWindow(name, limit, window, client)
    path = os.path.join(os.environ.get("XIAOER_DATA_DIR", "var"), "ratelimit.db")
    return SharedSlidingWindow(name, limit, window, path)
