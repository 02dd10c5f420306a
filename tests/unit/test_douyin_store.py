"""The Douyin store on the project database (SQLite and PostgreSQL) and the worker's
Douyin jobs: an outbox row is sent by one process only, in order; expired pauses end
once; nothing is lost when Rasa or the platform is away."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from rasa.shared.core.events import ConversationResumed

from xiaoer.core.rasa_api import RasaApiError, RasaClient
from xiaoer.douyin.bridge import HttpBridge
from xiaoer.douyin.client import DouyinClient, DouyinConfig
from xiaoer.douyin.jobs import expire_pauses, resend_outbox
from xiaoer.douyin.outbox import ReplySender
from xiaoer.douyin.protocol import SCENE_ENTER, Envelope, send_body, text_content
from xiaoer.douyin.settings import ChannelSettings
from xiaoer.douyin.simulator import DouyinSimulator, running_simulator
from xiaoer.douyin.store import DouyinStore


@pytest.fixture()
def store(project_db: Any, data_dir: Any) -> DouyinStore:
    return DouyinStore(project_db)


@pytest.fixture()
def sim():
    with running_simulator() as simulator:
        yield simulator


def config(sim: DouyinSimulator) -> DouyinConfig:
    return DouyinConfig(
        base_url=sim.base_url,
        client_key=sim.client_key,
        client_secret=sim.client_secret,
        account_open_id=sim.account_open_id,
        access_token=sim.access_token,
        refresh_token=sim.refresh_token,
        token_expires_at=sim.tokens[sim.access_token],
        timeout_seconds=5.0,
        retries=0,
        backoff_seconds=0.01,
    )


def queue(store: DouyinStore, sim: DouyinSimulator, customer: str, texts: list[str]) -> None:
    """Replies the platform did not take earlier, due now."""
    conv = sim.customer(customer)
    for text in texts:
        body = send_body(
            customer,
            text_content(text),
            conversation_id=conv.conversation_id,
            scene=SCENE_ENTER,
        )
        store.add_outbox(customer, body, text, "HTTP 502", time.time() - 1)


class FakeBridge:
    """Records what would be appended to the trackers (all paused)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def append(self, sender_id, build, metadata) -> bool:
        await asyncio.sleep(0.01)  # a round trip to Rasa
        self.events.extend((sender_id, e) for e in build(True))
        return True


# --- events -------------------------------------------------------------------------------
def test_an_event_and_a_delivery_are_recorded_once(store: DouyinStore):
    envelope = Envelope("im_receive_msg", "buyer", "shop", "ck", {"server_message_id": "m1"})
    first = store.record(envelope, "buyer", 1_764_000_000_000, "delivery-1")
    assert first is not None
    assert store.record(envelope, "buyer", 1_764_000_000_000, "delivery-1") is None
    assert store.record(envelope, "buyer", 1_764_000_000_000, "delivery-2") is None
    [pending] = store.pending_for("buyer")
    assert (pending.id, pending.create_time) == (first, 1_764_000_000_000)
    assert pending.envelope.content == {"server_message_id": "m1"}
    assert store.count_events() == 1


def test_an_event_is_claimed_by_one_server_only(store: DouyinStore):
    envelope = Envelope("im_receive_msg", "buyer", "shop", "ck", {"server_message_id": "m2"})
    event_id = store.record(envelope, "buyer", 1, "")
    assert event_id is not None
    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(lambda _: store.claim(event_id), range(8)))
    assert claims.count(True) == 1


def test_a_dead_servers_events_are_taken_over_and_a_live_ones_are_not(store: DouyinStore):
    from xiaoer.worker.leases import LeaseStore

    alive, dead = "douyin.server:a", "douyin.server:b"
    LeaseStore(store.db, holder=alive).acquire(alive, 60)
    LeaseStore(store.db, holder=dead).acquire(dead, 60)
    ids = {}
    for who, holder in (("kept", alive), ("orphan", dead)):
        envelope = Envelope("im_receive_msg", who, "shop", "ck", {"server_message_id": who})
        ids[who] = store.record(envelope, who, 1, "", received_by=holder)
        assert store.claim(ids[who], holder)
    assert store.senders_with_pending(older_than=60) == []  # both servers live
    assert not store.claim(ids["orphan"], alive)
    LeaseStore(store.db, holder=dead).release(dead)  # b died: its lease is gone
    assert store.senders_with_pending(older_than=60) == ["orphan"]
    assert store.count_orphaned() == 1
    [event] = store.pending_for("orphan")
    assert event.claimed_by == dead  # the taker knows it was taken before
    assert store.claim(ids["orphan"], alive) and not store.claim(ids["kept"], "douyin.server:c")
    assert store.claim(ids["kept"], alive)  # its own claim, tried again


def test_a_reply_answering_a_message_is_known_sent_or_queued(store: DouyinStore):
    assert not store.answered("buyer", "m9")
    store.remember_sent("buyer", "out-1", "您好", answers="m9")
    assert store.answered("buyer", "m9") and not store.answered("other", "m9")
    store.add_outbox("buyer", {"msg_id": "m10", "content": {}}, "…", "503", 0.0)
    assert store.answered("buyer", "m10")


# --- outbox -------------------------------------------------------------------------------
def test_an_outbox_row_is_claimed_by_one_sender_only(store: DouyinStore):
    item = store.add_outbox("buyer", {"x": 1}, "你好", "HTTP 502", time.time())
    with ThreadPoolExecutor(max_workers=8) as pool:
        claims = list(pool.map(lambda _: store.claim_outbox(item), range(8)))
    assert claims.count(True) == 1
    # the holder died while sending: after the lease another sender may take it
    assert store.claim_outbox(item, lease=0.0)
    store.outbox_sent(item)
    assert not store.claim_outbox(item, lease=0.0)
    assert store.outbox_pending("buyer") == []


async def test_two_processes_resending_at_once_send_each_reply_once_and_in_order(
    store: DouyinStore, sim: DouyinSimulator
):
    queue(store, sim, "buyer_q", ["第一句", "第二句", "第三句"])
    queue(store, sim, "buyer_r", ["只有一句"])
    settings = ChannelSettings(outbox_interval_seconds=0.2)
    # two senders with their own clients and locks: the Rasa server and a worker
    senders = [ReplySender(DouyinClient(config(sim), store), store, settings) for _ in "ab"]
    try:
        for _ in range(20):
            await asyncio.gather(*(resend_outbox(s) for s in senders))
            if not store.outbox_pending():
                break
            await asyncio.sleep(0.05)
    finally:
        for sender in senders:
            await sender.aclose()
    assert [r.text for r in sim.replies("buyer_q")] == ["第一句", "第二句", "第三句"]
    assert [r.text for r in sim.replies("buyer_r")] == ["只有一句"]
    assert store.outbox_pending() == [] and sim.rejected == []


async def test_the_resend_job_keeps_what_the_platform_refuses(
    store: DouyinStore, sim: DouyinSimulator, monkeypatch: pytest.MonkeyPatch
):
    # the worker's own configuration: credentials.yml and the environment
    for name, value in sim.env().items():
        monkeypatch.setenv(name, value)
    queue(store, sim, "buyer_w", ["稍后重发"])
    sim.fail_next(times=1, status=503)
    assert await resend_outbox() == 0
    [kept] = store.outbox_pending("buyer_w")
    assert kept.attempts == 2 and "503" in (kept.last_error or "")
    assert kept.next_attempt_at > time.time()  # backoff: not due at once
    assert await resend_outbox() == 0  # not due yet: nothing sent
    store.outbox_failed(kept.id, kept.last_error or "", time.time() - 1)  # due now
    assert await resend_outbox() == 1
    assert [r.text for r in sim.replies("buyer_w")] == ["稍后重发"]
    assert store.outbox_pending() == []


# --- pauses -------------------------------------------------------------------------------
async def test_expired_pauses_end_once_even_with_two_workers(store: DouyinStore):
    store.update_conversation("buyer_p", paused_until=time.time() - 1)
    store.update_conversation("buyer_later", paused_until=time.time() + 600)
    bridge = FakeBridge()
    ended = await asyncio.gather(expire_pauses(store, bridge), expire_pauses(store, bridge))
    assert sorted(ended) == [0, 1]
    assert [(s, type(e)) for s, e in bridge.events] == [("buyer_p", ConversationResumed)]
    assert store.conversation("buyer_p").paused_until == 0.0
    assert store.conversation("buyer_later").paused_until > time.time()


async def test_a_pause_stays_recorded_while_rasa_is_unreachable(store: DouyinStore):
    store.update_conversation("buyer_u", paused_until=time.time() - 1)
    unreachable = HttpBridge(RasaClient("http://127.0.0.1:9", token="t", timeout=2))
    with pytest.raises(RasaApiError):
        await expire_pauses(store, unreachable)
    assert 0 < store.conversation("buyer_u").paused_until <= time.time()
    assert store.expired_pauses() == ["buyer_u"]  # the next round tries again


# --- tokens -------------------------------------------------------------------------------
async def test_a_token_refreshed_by_one_process_is_used_by_the_others(
    store: DouyinStore, sim: DouyinSimulator
):
    """The worker and the Rasa servers share the stored token: a token refused in one
    after another refreshed it is replaced by the stored one, not refreshed again."""
    server, worker = (DouyinClient(config(sim), store) for _ in "ab")
    conv = sim.customer("buyer_t")
    body = send_body("buyer_t", text_content("你好"), conversation_id=conv.conversation_id,
                     scene=SCENE_ENTER)  # fmt: skip
    try:
        await server.send(body)  # the server has the configured token in use
        sim.expire_token()
        await worker.send(body)  # refused: the worker refreshes and stores the new token
        await server.send(body)  # refused: the server takes the stored one
    finally:
        await server.aclose()
        await worker.aclose()
    assert sim.refreshes == 1
    assert len(sim.replies("buyer_t")) == 3
    stored = store.token(sim.client_key)
    assert stored is not None and stored.access_token == sim.access_token
