"""State of the Douyin channel, in the project database (:mod:`xiaoer.core.db`).

* ``douyin_events``: every accepted webhook event, keyed by what identifies the event
  (``server_message_id``, else ``log_id``, else a hash of the content), with its
  processing state: a duplicate delivery — also after a restart — is recognised here,
  and an event whose processing was cut short is processed again;
* ``douyin_deliveries``: the ``Msg-Id`` of every delivery (a retry of one delivery);
* ``douyin_conversations``: per customer: the message to answer and its conversation id,
  the numbered options last offered, a pause after a human answered from the app;
* ``douyin_outbox``: replies the send API did not take (after retries), resent later
  in order, visible to agents (console page 待重发 ``/outbox``, ``xiaoer douyin-outbox``),
  never dropped. A sender *claims* a row before sending it (a conditional UPDATE), so two
  processes (the Rasa server and the worker, or two of either) never send one twice;
* ``douyin_sent``: messages the bot sent, to tell the platform's ``im_send_msg`` echo of
  them apart from a human's message;
* ``douyin_tokens``: the access / refresh token after a refresh (never logged).

Table and column names are those of the earlier ``douyin.db`` (times are Unix seconds,
``create_time`` milliseconds); ``douyin_outbox.claimed_at`` is new.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    Table,
    Text,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, CursorResult, Row
from sqlalchemy.exc import IntegrityError

from xiaoer.core.db import Database, database_for, metadata
from xiaoer.douyin.protocol import Envelope, as_object
from xiaoer.worker.leases import worker_leases

MAX_ATTEMPTS = 5
CLAIM_LEASE_SECONDS = 120.0
ECHO_WINDOW_SECONDS = 600.0
SENT_KEPT_SECONDS = 24 * 3600

douyin_events = Table(
    "douyin_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_key", Text, nullable=False, unique=True),
    Column("event", Text, nullable=False),
    Column("sender_id", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False, server_default="0"),  # ms
    Column("envelope", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("claimed_at", Float),
    Column("processed_at", Float),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    # the Rasa servers that recorded and claimed the event: their leases (worker_leases)
    # say whether they still live, so that another server takes over a dead one's events
    Column("received_by", Text),
    Column("claimed_by", Text),
    Index("douyin_events_pending", "processed_at", "sender_id"),
    sqlite_autoincrement=True,
)

douyin_deliveries = Table(
    "douyin_deliveries",
    metadata,
    Column("msg_id", Text, primary_key=True),
    Column("event_key", Text, nullable=False),
    Column("received_at", Float, nullable=False),
)

douyin_conversations = Table(
    "douyin_conversations",
    metadata,
    Column("sender_id", Text, primary_key=True),
    Column("conversation_short_id", Text),
    Column("last_msg_id", Text),
    Column("last_msg_at", Float),
    Column("nickname", Text),
    Column("options", Text),  # JSON list of the numbered options' payloads
    Column("paused_until", Float),
    Column("last_customer_at", Float),
    Column("last_greeted_at", Float),
)

douyin_outbox = Table(
    "douyin_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", Text, nullable=False),
    Column("body", Text, nullable=False),  # the send API's JSON body
    Column("preview", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text),
    Column("sent_at", Float),
    Column("claimed_at", Float),  # a sender holds the row until then + the lease
    Index("douyin_outbox_pending", "sent_at", "sender_id", "id"),
    sqlite_autoincrement=True,
)

douyin_sent = Table(
    "douyin_sent",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sender_id", Text, nullable=False),
    Column("msg_id", Text),
    Column("text_hash", Text),
    Column("sent_at", Float, nullable=False),
    Column("answers", Text),  # the customer's server_message_id this message answered
    Index("douyin_sent_by_sender", "sender_id", "sent_at"),
    sqlite_autoincrement=True,
)

douyin_tokens = Table(
    "douyin_tokens",
    metadata,
    Column("client_key", Text, primary_key=True),
    Column("access_token", Text, nullable=False),
    Column("refresh_token", Text),
    Column("expires_at", Float),
    Column("refresh_expires_at", Float),
    Column("updated_at", Float, nullable=False),
)


def _alive(holder: Any, now: float) -> Any:
    """SQL: the lease named by the column ``holder`` exists and has not expired."""
    return exists().where(worker_leases.c.name == holder, worker_leases.c.expires_at >= now)


def text_hash(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event_key: str
    event: str
    sender_id: str
    create_time: int
    envelope: Envelope
    attempts: int
    claimed_by: str | None = None  # set: an earlier claim (a server that died, a failure)


@dataclass(frozen=True)
class Conversation:
    sender_id: str
    conversation_short_id: str = ""
    last_msg_id: str = ""
    last_msg_at: float = 0.0
    nickname: str = ""
    options: tuple[str, ...] = ()
    paused_until: float = 0.0
    last_customer_at: float = 0.0
    last_greeted_at: float = 0.0


@dataclass(frozen=True)
class OutboxItem:
    id: int
    sender_id: str
    body: dict[str, Any]
    preview: str  # what the customer would read (masked when shown)
    created_at: float
    attempts: int
    next_attempt_at: float
    last_error: str | None
    sent_at: float | None


@dataclass(frozen=True)
class StoredToken:
    access_token: str
    refresh_token: str
    expires_at: float
    refresh_expires_at: float


def _inserted(conn: Connection, stmt: Any) -> CursorResult | None:
    """Run an INSERT in a savepoint: its result, or None when it hit a unique key."""
    try:
        with conn.begin_nested():
            return conn.execute(stmt)
    except IntegrityError:
        return None


_events = douyin_events.c
_outbox = douyin_outbox.c
_conv = douyin_conversations.c
_sent = douyin_sent.c


class DouyinStore:
    def __init__(self, db: Database | str | Path | None = None) -> None:
        self.db = database_for(db)

    # --- events -------------------------------------------------------------------------
    def record(
        self,
        envelope: Envelope,
        sender_id: str,
        create_time: int,
        msg_id: str = "",
        received_by: str | None = None,
    ) -> int | None:
        """Store an accepted event; None when this delivery or this event was seen."""
        now = time.time()
        key = envelope.event_key
        with self.db.begin() as conn:
            # a savepoint per insert: a duplicate key is an answer here, not an error, and
            # the delivery stays recorded when the event itself was seen before
            if msg_id and not _inserted(
                conn,
                insert(douyin_deliveries).values(msg_id=msg_id, event_key=key, received_at=now),
            ):
                return None
            stmt = insert(douyin_events).values(
                event_key=key,
                event=envelope.event,
                sender_id=sender_id,
                create_time=create_time,
                envelope=json.dumps(envelope.__dict__, ensure_ascii=False),
                received_at=now,
                received_by=received_by,
            )
            result = _inserted(conn, stmt)
            return int(result.inserted_primary_key[0]) if result else None

    @staticmethod
    def _event(row: Row) -> StoredEvent:
        raw = as_object(row.envelope)
        return StoredEvent(
            id=row.id,
            event_key=row.event_key,
            event=row.event,
            sender_id=row.sender_id,
            create_time=row.create_time,
            envelope=Envelope(**raw),
            attempts=row.attempts,
            claimed_by=row.claimed_by,
        )

    def pending_for(self, sender_id: str) -> list[StoredEvent]:
        """Unprocessed events of one customer, in the order the customer sent them."""
        query = (
            select(douyin_events)
            .where(
                _events.sender_id == sender_id,
                _events.processed_at.is_(None),
                _events.attempts < MAX_ATTEMPTS,
            )
            .order_by(_events.create_time, _events.id)
        )
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [self._event(r) for r in rows]

    def senders_with_pending(self, older_than: float = 0.0) -> list[str]:
        """Customers with events nobody works on: unclaimed for ``older_than`` seconds or
        recorded by a server that is gone, claimed by a server that is gone (its lease in
        ``worker_leases`` expired: killed, crashed, its machine lost) or for longer than
        the claim lease. Events of live servers are theirs."""
        now = time.time()
        query = (
            select(_events.sender_id)
            .distinct()
            .where(
                _events.processed_at.is_(None),
                _events.attempts < MAX_ATTEMPTS,
                or_(
                    and_(
                        _events.claimed_at.is_(None),
                        or_(
                            _events.received_at <= now - older_than,
                            and_(
                                _events.received_by.is_not(None), ~_alive(_events.received_by, now)
                            ),
                        ),
                    ),
                    and_(
                        _events.claimed_at.is_not(None),
                        or_(
                            _events.claimed_at < now - CLAIM_LEASE_SECONDS,
                            and_(_events.claimed_by.is_not(None), ~_alive(_events.claimed_by, now)),
                        ),
                    ),
                ),
            )
        )
        with self.db.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def count_orphaned(self, older_than: float = 0.0) -> int:
        """Events waiting on a server that is gone, received at least ``older_than``
        seconds ago (the worker's ``douyin.inbound`` job reports them)."""
        now = time.time()
        query = (
            select(func.count())
            .select_from(douyin_events)
            .where(
                _events.processed_at.is_(None),
                _events.received_at <= now - older_than,
                _events.attempts < MAX_ATTEMPTS,
                or_(
                    and_(_events.claimed_by.is_not(None), ~_alive(_events.claimed_by, now)),
                    and_(
                        _events.claimed_at.is_(None),
                        _events.received_by.is_not(None),
                        ~_alive(_events.received_by, now),
                    ),
                ),
            )
        )
        with self.db.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def claim(self, event_id: int, holder: str | None = None) -> bool:
        """Take an event for processing (False: done, given up, or taken elsewhere).
        A claim whose holder (a Rasa server's lease) is gone, or older than the claim
        lease, is taken over."""
        now = time.time()
        free = [
            _events.claimed_at.is_(None),
            _events.claimed_at < now - CLAIM_LEASE_SECONDS,
            and_(_events.claimed_by.is_not(None), ~_alive(_events.claimed_by, now)),
        ]
        if holder is not None:
            free.append(_events.claimed_by == holder)  # this server tries again
        stmt = (
            update(douyin_events)
            .where(
                _events.id == event_id,
                _events.processed_at.is_(None),
                _events.attempts < MAX_ATTEMPTS,
                or_(*free),
            )
            .values(claimed_at=now, claimed_by=holder)
        )
        with self.db.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def done(self, event_id: int) -> None:
        stmt = (
            update(douyin_events)
            .where(_events.id == event_id)
            .values(processed_at=time.time(), error=None)
        )
        with self.db.begin() as conn:
            conn.execute(stmt)

    def failed(self, event_id: int, error: str) -> None:
        # claimed_by stays: the next try knows the event was taken before (it may have
        # been answered in the tracker already)
        stmt = (
            update(douyin_events)
            .where(_events.id == event_id)
            .values(claimed_at=None, attempts=_events.attempts + 1, error=error)
        )
        with self.db.begin() as conn:
            conn.execute(stmt)

    def event_state(self, event_key: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            row = conn.execute(select(douyin_events).where(_events.event_key == event_key)).first()
        return dict(row._mapping) if row else None

    def count_events(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(douyin_events)).scalar_one())

    # --- conversations ------------------------------------------------------------------
    def conversation(self, sender_id: str) -> Conversation:
        with self.db.connect() as conn:
            row = conn.execute(
                select(douyin_conversations).where(_conv.sender_id == sender_id)
            ).first()
        if row is None:
            return Conversation(sender_id)
        return Conversation(
            sender_id=sender_id,
            conversation_short_id=row.conversation_short_id or "",
            last_msg_id=row.last_msg_id or "",
            last_msg_at=row.last_msg_at or 0.0,
            nickname=row.nickname or "",
            options=tuple(json.loads(row.options or "[]")),
            paused_until=row.paused_until or 0.0,
            last_customer_at=row.last_customer_at or 0.0,
            last_greeted_at=row.last_greeted_at or 0.0,
        )

    def update_conversation(self, sender_id: str, **fields: Any) -> None:
        """Set some columns (``options`` as a list); the row is created when missing."""
        if "options" in fields:
            fields["options"] = json.dumps(list(fields["options"] or []), ensure_ascii=False)
        allowed = set(Conversation.__dataclass_fields__) - {"sender_id"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown conversation fields: {sorted(unknown)}")
        with self.db.begin() as conn:
            self.db.upsert(
                conn,
                douyin_conversations,
                {"sender_id": sender_id, **fields},
                key=["sender_id"],
                update=list(fields),
            )

    def forget_greetings(self) -> int:
        """Let every customer be greeted again (``xiaoer seed --reset``): the greeting's
        cooldown counts from the last greeting and from the customer's last message;
        how many conversations had either."""
        stmt = (
            update(douyin_conversations)
            .where(or_(_conv.last_greeted_at > 0, _conv.last_customer_at > 0))
            .values(last_greeted_at=None, last_customer_at=None)
        )
        with self.db.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def expired_pauses(self, now: float | None = None) -> list[str]:
        """Customers whose pause (after a human answered from the app) is over."""
        now = time.time() if now is None else now
        query = select(_conv.sender_id).where(_conv.paused_until > 0, _conv.paused_until <= now)
        with self.db.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def end_pause(self, sender_id: str, now: float | None = None) -> bool:
        """Clear an expired pause; False when it is not (or no longer) expired — another
        process ended it first, or a new human message extended it."""
        now = time.time() if now is None else now
        stmt = (
            update(douyin_conversations)
            .where(_conv.sender_id == sender_id, _conv.paused_until > 0, _conv.paused_until <= now)
            .values(paused_until=0.0)
        )
        with self.db.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    # --- outbox -------------------------------------------------------------------------
    def add_outbox(
        self, sender_id: str, body: dict[str, Any], preview: str, error: str, retry_at: float
    ) -> int:
        stmt = insert(douyin_outbox).values(
            sender_id=sender_id,
            body=json.dumps(body, ensure_ascii=False),
            preview=preview,
            created_at=time.time(),
            attempts=1 if error else 0,
            next_attempt_at=retry_at,
            last_error=error or None,
        )
        with self.db.begin() as conn:
            return int(conn.execute(stmt).inserted_primary_key[0])

    @staticmethod
    def _outbox(row: Row) -> OutboxItem:
        return OutboxItem(
            id=row.id,
            sender_id=row.sender_id,
            body=json.loads(row.body),
            preview=row.preview,
            created_at=row.created_at,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            sent_at=row.sent_at,
        )

    def outbox_pending(self, sender_id: str | None = None, limit: int = 500) -> list[OutboxItem]:
        """Unsent replies, oldest first (of one customer, or of everyone)."""
        query = select(douyin_outbox).where(_outbox.sent_at.is_(None))
        if sender_id is not None:
            query = query.where(_outbox.sender_id == sender_id)
        with self.db.connect() as conn:
            rows = conn.execute(query.order_by(_outbox.id).limit(limit)).all()
        return [self._outbox(r) for r in rows]

    def outbox_senders_due(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        first = func.min(_outbox.id)
        query = (
            select(_outbox.sender_id)
            .where(_outbox.sent_at.is_(None))
            .group_by(_outbox.sender_id)
            .having(func.min(_outbox.next_attempt_at) <= now)
            .order_by(first)
        )
        with self.db.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def has_outbox(self, sender_id: str) -> bool:
        query = (
            select(_outbox.id)
            .where(_outbox.sender_id == sender_id, _outbox.sent_at.is_(None))
            .limit(1)
        )
        with self.db.connect() as conn:
            return conn.execute(query).first() is not None

    def claim_outbox(self, item_id: int, lease: float = CLAIM_LEASE_SECONDS) -> bool:
        """Take an unsent row for sending: one conditional UPDATE, so of two processes
        trying at once exactly one gets it (also on PostgreSQL). A claim older than
        ``lease`` (its holder died while sending) can be taken again."""
        now = time.time()
        stmt = (
            update(douyin_outbox)
            .where(
                _outbox.id == item_id,
                _outbox.sent_at.is_(None),
                or_(_outbox.claimed_at.is_(None), _outbox.claimed_at < now - lease),
            )
            .values(claimed_at=now)
        )
        with self.db.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def outbox_sent(self, item_id: int) -> None:
        stmt = (
            update(douyin_outbox)
            .where(_outbox.id == item_id)
            .values(sent_at=time.time(), last_error=None, claimed_at=None)
        )
        with self.db.begin() as conn:
            conn.execute(stmt)

    def outbox_failed(self, item_id: int, error: str, retry_at: float) -> None:
        stmt = (
            update(douyin_outbox)
            .where(_outbox.id == item_id)
            .values(
                attempts=_outbox.attempts + 1,
                last_error=error,
                next_attempt_at=retry_at,
                claimed_at=None,
            )
        )
        with self.db.begin() as conn:
            conn.execute(stmt)

    # --- echoes of the bot's own messages -----------------------------------------------
    def remember_sent(self, sender_id: str, msg_id: str, text: str, answers: str = "") -> None:
        now = time.time()
        with self.db.begin() as conn:
            conn.execute(
                insert(douyin_sent).values(
                    sender_id=sender_id,
                    msg_id=msg_id or None,
                    text_hash=text_hash(text) if text else None,
                    sent_at=now,
                    answers=answers or None,
                )
            )
            conn.execute(delete(douyin_sent).where(_sent.sent_at < now - SENT_KEPT_SECONDS))

    def answered(self, sender_id: str, server_message_id: str) -> bool:
        """Whether a reply to this customer message was sent or queued in the outbox."""
        if not server_message_id:
            return False
        with self.db.connect() as conn:
            query = select(_sent.id).where(
                _sent.sender_id == sender_id, _sent.answers == server_message_id
            )
            if conn.execute(query.limit(1)).first() is not None:
                return True
            bodies = conn.execute(
                select(_outbox.body).where(
                    _outbox.sender_id == sender_id,
                    _outbox.created_at >= time.time() - SENT_KEPT_SECONDS,
                )
            ).scalars()
            return any(
                str(json.loads(body).get("msg_id") or "") == server_message_id for body in bodies
            )

    def is_own_echo(self, sender_id: str, msg_id: str, text: str) -> bool:
        """True when ``im_send_msg`` reports a message the bot sent itself."""
        with self.db.connect() as conn:
            if msg_id:
                query = select(_sent.id).where(_sent.msg_id == msg_id).limit(1)
                if conn.execute(query).first() is not None:
                    return True
            if not text:
                return False
            query = (
                select(_sent.id)
                .where(
                    _sent.sender_id == sender_id,
                    _sent.text_hash == text_hash(text),
                    _sent.sent_at >= time.time() - ECHO_WINDOW_SECONDS,
                )
                .limit(1)
            )
            return conn.execute(query).first() is not None

    # --- tokens -------------------------------------------------------------------------
    def token(self, client_key: str) -> StoredToken | None:
        with self.db.connect() as conn:
            row = conn.execute(
                select(douyin_tokens).where(douyin_tokens.c.client_key == client_key)
            ).first()
        if row is None:
            return None
        return StoredToken(
            row.access_token,
            row.refresh_token or "",
            row.expires_at or 0.0,
            row.refresh_expires_at or 0.0,
        )

    def save_token(self, client_key: str, token: StoredToken) -> None:
        values = {
            "client_key": client_key,
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_at": token.expires_at,
            "refresh_expires_at": token.refresh_expires_at,
            "updated_at": time.time(),
        }
        with self.db.begin() as conn:
            self.db.upsert(conn, douyin_tokens, values, key=["client_key"], update=list(values)[1:])


def get_douyin_store() -> DouyinStore:
    """The store on the project database (cheap: the database is cached)."""
    return DouyinStore()
