"""Lock stores: a Redis one whose tickets are atomic, for several Rasa servers, and a file
one for several Sanic workers of one Rasa server without Redis (:class:`FileLockStore`).

Rasa 3.6's ``RedisLockStore`` keeps a conversation's tickets as one JSON list that every
replica reads, changes and writes back without a transaction. When two replicas receive
messages of the same customer at the same moment, one overwrites the other's ticket: two
turns run at once and one message disappears from the tracker, or the lock vanishes under
a waiting request, which then fails with ``LockError`` (HTTP 500). The scale-out test
(tests/e2e/test_scale_out.py) reproduces both.

This store keeps Rasa's interface (only ``lock()`` is used by Rasa) and Rasa's semantics —
first come first served per conversation, a ticket expires after ``lock_lifetime`` — with
each step one atomic Redis script:

* ``{prefix}{id}:next``     ticket counter (INCR);
* ``{prefix}{id}:serving``  the ticket whose turn it is;
* ``{prefix}{id}:alive:N``  exists while ticket N is held or waited for (expires with the
  lock lifetime, so a crashed replica does not block the conversation for longer).

A waiter whose predecessor is no longer alive moves ``serving`` on. Idle conversations'
keys expire after a day.

endpoints.yml::

    lock_store:
      type: xiaoer.plugins.locks.AtomicRedisLockStore
      url: localhost
      port: 6379
      db: 1
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

IDLE_MS = 24 * 3600 * 1000
POLL_SECONDS = 0.02

# KEYS: next, serving, alive-prefix; ARGV: alive ttl ms, idle ttl ms
ISSUE = """
local t = redis.call('INCR', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], t) end
redis.call('SET', KEYS[3] .. t, 1, 'PX', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return t
"""

# KEYS: serving, next; ARGV: the ticket expected to be served, idle ttl ms
ADVANCE = """
local s = tonumber(redis.call('GET', KEYS[1]) or '0')
if s == tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], s + 1, 'PX', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return s + 1
end
return s
"""


class AtomicRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs}
            kwargs.pop("type", None)
        super().__init__(**kwargs)
        self._issue = self.red.register_script(ISSUE)
        self._advance = self.red.register_script(ADVANCE)

    def _keys(self, conversation_id: str) -> tuple[str, str, str]:
        base = f"{self.key_prefix}{conversation_id}:"
        return base + "next", base + "serving", base + "alive:"

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = POLL_SECONDS,
    ) -> AsyncGenerator[TicketLock, None]:
        next_key, serving_key, alive = self._keys(conversation_id)
        lifetime_ms = int(lock_lifetime * 1000)
        ticket = int(self._issue(keys=[next_key, serving_key, alive], args=[lifetime_ms, IDLE_MS]))
        try:
            await self._wait_for_turn(conversation_id, ticket, lock_lifetime)
            yield TicketLock(conversation_id)
        finally:
            self.red.delete(f"{alive}{ticket}")
            self._advance(keys=[serving_key, next_key], args=[ticket, IDLE_MS])

    async def _wait_for_turn(self, conversation_id: str, ticket: int, lifetime: float) -> None:
        next_key, serving_key, alive = self._keys(conversation_id)
        deadline = time.monotonic() + lifetime
        while True:
            serving = int(self.red.get(serving_key) or 0)
            if serving >= ticket:
                return
            if not self.red.exists(f"{alive}{serving}"):
                # the ticket being served was released, gave up or expired: move on
                self._advance(keys=[serving_key, next_key], args=[serving, IDLE_MS])
                continue
            if time.monotonic() > deadline:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            await asyncio.sleep(POLL_SECONDS)


# --- one machine, several Sanic workers, no Redis ---------------------------------------------
LOCK_FILE_NAME = "conversations.lock"
FILE_POLL_SECONDS = 0.005


def _lock_offset(conversation_id: str) -> int:
    """The byte of the lock file that stands for a conversation (62 bits of its hash: two
    conversations practically never share one)."""
    digest = hashlib.blake2b(conversation_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 62) - 1)


class FileLockStore(LockStore):
    """The turns of one conversation one at a time across the processes of one machine
    (several Sanic workers of a Rasa server), without Redis: the embedded default's lock
    store when ``SANIC_WORKERS`` > 1.

    One lock file (``path``, default ``$XIAOER_DATA_DIR/locks/conversations.lock``); a
    conversation holds an exclusive POSIX record lock (``fcntl``) on one byte of it, at an
    offset from its id. Inside a process, an ``asyncio.Lock`` per conversation comes first:
    first come first served among the process's requests, and one holder of the process's
    record lock at a time. The kernel drops the record locks of a process that dies, so a
    killed worker never blocks a conversation. A waiter gives up with ``LockError`` after
    ``lock_lifetime`` seconds, as with Rasa's lock stores.

    endpoints.yml::

        lock_store:
          type: xiaoer.plugins.locks.FileLockStore
          path: ${XIAOER_DATA_DIR}/locks/conversations.lock
    """

    def __init__(
        self, endpoint_config: EndpointConfig | None = None, path: str | None = None
    ) -> None:
        if path is None and endpoint_config is not None:
            path = endpoint_config.kwargs.get("path") or endpoint_config.url
        if path is None:
            path = os.path.join(os.environ.get("XIAOER_DATA_DIR", "var"), "locks", LOCK_FILE_NAME)
        self.path = str(path)
        self._fd: int | None = None
        self._pid = 0
        self._local: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        super().__init__()

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # record locks are per process
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
            self._local = {}
        return self._fd

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = FILE_POLL_SECONDS,
    ) -> AsyncGenerator[TicketLock, None]:
        fd = self._file()
        local, users = self._local.setdefault(conversation_id, (asyncio.Lock(), [0]))
        users[0] += 1
        deadline = time.monotonic() + lock_lifetime
        try:
            async with local:
                offset = _lock_offset(conversation_id)
                while True:
                    try:
                        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
                        break
                    except OSError as exc:  # EAGAIN/EACCES: another process holds it
                        if exc.errno not in (errno.EAGAIN, errno.EACCES):
                            raise
                    if time.monotonic() > deadline:
                        raise LockError(
                            f"Could not acquire lock for conversation_id '{conversation_id}'."
                        )
                    await asyncio.sleep(min(wait_time_in_seconds, FILE_POLL_SECONDS))
                try:
                    yield TicketLock(conversation_id)
                finally:
                    fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
        finally:
            users[0] -= 1
            if users[0] == 0:
                self._local.pop(conversation_id, None)

    # Rasa calls only ``lock()``; the ticket bookkeeping of its base class has nothing to
    # keep here
    def get_lock(self, conversation_id: str) -> TicketLock | None:
        return None

    def delete_lock(self, conversation_id: str) -> None:
        return None

    def save_lock(self, lock: TicketLock) -> None:
        return None
