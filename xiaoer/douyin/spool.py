"""The local spool: Douyin webhooks kept on disk while the database is down.

The platform tries a webhook 3 times over about 15 s; a PostgreSQL restart or failover
can last longer. A signed, verified event that cannot be recorded in the database is
appended to a file of the Rasa server's data folder (``douyin-spool.jsonl``: private,
0600, one JSON line per event, fsync'd before the webhook is answered 200) and imported
into ``douyin_events`` when the database is back (by the same Rasa server: the file is
local to its machine and the server holds the agent that answers; its import loop runs
every second and before each new webhook is recorded). Importing is idempotent (the
event's key and the delivery's ``Msg-Id`` are unique in the store), so a crash between
recording and rewriting the file records nothing twice; the events are then answered in
the customer's order (``create_time``) like any other.

The spool is bounded (``douyin.spool_max_kb``, 10 MB by default): when full, the webhook
gets 503 as before (the platform tries again) and an ERROR says so. A line that cannot be
read back (a half-written line after a power cut) is skipped with a WARNING. Several
processes of one data folder (Sanic workers) share the file under an exclusive lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SPOOL_FILE = "douyin-spool.jsonl"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class SpooledEvent:
    """One webhook kept in the spool: what :meth:`DouyinStore.record` needs."""

    envelope: dict[str, Any]
    sender_id: str
    create_time: int
    msg_id: str
    spooled_at: float


class Spool:
    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock_path = path.with_name(path.name + ".lock")
        self._full_logged = 0.0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, event: SpooledEvent) -> bool:
        """Keep an event on disk (written and fsync'd on return); False when the spool is
        full (nothing written)."""
        line = (json.dumps(event.__dict__, ensure_ascii=False) + "\n").encode("utf-8")
        with self._locked():
            if self.size() + len(line) > self.max_bytes:
                now = time.monotonic()
                if now - self._full_logged > 10:
                    self._full_logged = now
                    logger.error(
                        "douyin spool full (%s, %s bytes of %s): webhooks the database cannot "
                        "take are refused with 503 until it is back and the spool imported",
                        self.path, self.size(), self.max_bytes,
                    )  # fmt: skip
                return False
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return True

    def import_into(self, record: Callable[[SpooledEvent], object]) -> list[SpooledEvent]:
        """Hand each spooled event to ``record`` in the order it came, then drop it from
        the file. When ``record`` raises (the database is down again) the event and those
        after it stay for the next import, and the error is raised. Unreadable lines are
        skipped with a warning. Returns the events handed over."""
        if self.size() == 0:
            return []
        done: list[SpooledEvent] = []
        with self._locked():
            try:
                raw_lines = self.path.read_bytes().splitlines(keepends=True)
            except FileNotFoundError:
                return []
            kept: list[bytes] = []
            error: BaseException | None = None
            for number, raw in enumerate(raw_lines, 1):
                if error is not None:
                    kept.append(raw)
                    continue
                try:
                    event = SpooledEvent(**json.loads(raw))
                    if not isinstance(event.envelope, dict) or not event.sender_id:
                        raise ValueError("no envelope or no customer")
                except (ValueError, TypeError) as exc:
                    logger.warning(
                        "douyin spool %s: line %s unreadable, skipped (%s)",
                        self.path, number, str(exc)[:100],
                    )  # fmt: skip
                    continue
                try:
                    record(event)
                except Exception as exc:  # noqa: BLE001 - kept, raised after the rewrite
                    error = exc
                    kept.append(raw)
                    continue
                done.append(event)
            self._rewrite(kept)
        if done:
            logger.info("douyin spool: %s webhook(s) kept during the outage recorded", len(done))
        if error is not None:
            raise error
        return done

    def _rewrite(self, lines: list[bytes]) -> None:
        if not lines:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)


def default_spool(max_bytes: int = DEFAULT_MAX_BYTES) -> Spool:
    """The spool of this server's data folder."""
    from xiaoer.core.config import get_settings

    data_dir = Path(os.environ.get("XIAOER_DATA_DIR") or get_settings().data_dir)
    return Spool(data_dir / SPOOL_FILE, max_bytes)
