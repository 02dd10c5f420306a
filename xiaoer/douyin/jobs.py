"""Background jobs of the Douyin channel (run by the worker, ``xiaoer worker``).

* ``douyin.outbox``: replies the platform did not take after the send API's retries wait in
  the outbox; resent here when due, in order per customer, with a growing pause per row.
  A reply right after a turn is still sent by the Rasa server at once (latency); rows are
  claimed before sending, so the server and workers never send one twice.
* ``douyin.inbound``: customer messages acknowledged by a Rasa server that died before
  answering them are taken over by the other Rasa servers (heartbeat leases, see
  :mod:`xiaoer.douyin.workers`); this job warns when such messages still wait because no
  Rasa server runs.
* ``douyin.pauses``: after a human answered from the Douyin app the bot was paused for
  ``douyin.pause_after_human_minutes``; when that is over the conversation is resumed
  (through Rasa's HTTP API), unless an agent holds it. The customer's next message resumes
  it too, whichever comes first.

Both run without a Douyin channel configured: they find nothing to do. How often:
``douyin.outbox_resend_seconds`` and ``douyin.sweep_seconds`` of xiaoer.yml.
"""

from __future__ import annotations

import logging

from xiaoer.douyin import pauses
from xiaoer.douyin.bridge import Bridge, HttpBridge
from xiaoer.douyin.outbox import ReplySender
from xiaoer.douyin.settings import ChannelSettings, load_config
from xiaoer.douyin.store import DouyinStore, get_douyin_store
from xiaoer.worker.jobs import Job

logger = logging.getLogger(__name__)


async def resend_outbox(sender: ReplySender | None = None) -> int:
    """Resend every customer's due outbox rows; returns how many platform messages went."""
    if sender is not None:
        return await sender.flush_due()
    store = get_douyin_store()
    if not store.outbox_senders_due():
        return 0
    config, missing = load_config()
    if config is None:
        logger.warning(
            "douyin outbox: replies wait but the channel is not configured (%s)",
            ", ".join(missing),
        )
        return 0
    from xiaoer.douyin.client import DouyinClient

    own = ReplySender(DouyinClient(config, store), store, ChannelSettings.load())
    try:
        sent = await own.flush_due()
    finally:
        await own.aclose()
    if sent:
        logger.info("douyin outbox: %s queued replies resent", sent)
    return sent


async def expire_pauses(store: DouyinStore | None = None, bridge: Bridge | None = None) -> int:
    """Resume the conversations whose pause after a human's answer is over."""
    store = store or get_douyin_store()
    if bridge is None:
        if not store.expired_pauses():
            return 0
        from xiaoer.core.rasa_api import RasaClient

        bridge = HttpBridge(RasaClient())
    ended = await pauses.expire_pauses(store, bridge)
    if ended:
        logger.info("douyin: %s paused conversation(s) resumed", ended)
    return ended


async def watch_inbound(store: DouyinStore | None = None) -> int:
    """Customer messages acknowledged to Douyin whose Rasa server stopped before answering
    them are taken over by the other Rasa servers (their sweep, every ``sweep_seconds``)
    or by the next one to start. When they still wait well after that, no Rasa server
    runs: say so (a warning per round, with how many wait). Returns how many wait."""
    store = store or get_douyin_store()
    settings = ChannelSettings.load()
    grace = settings.server_lease_seconds + 2 * settings.sweep_interval_seconds
    waiting = store.count_orphaned(older_than=grace)
    if waiting:
        logger.warning(
            "douyin: %s customer message(s) wait for a Rasa server (the one that took them "
            "stopped and no other took them over in %.0f s): start a Rasa server; they are "
            "answered then",
            waiting, grace,
        )  # fmt: skip
    return waiting


async def _watch_inbound_job() -> None:
    await watch_inbound()


async def _resend_outbox_job() -> None:
    await resend_outbox()


async def _expire_pauses_job() -> None:
    await expire_pauses()


_settings = ChannelSettings.load()

JOBS = [
    Job(name="douyin.outbox", every=_settings.outbox_interval_seconds, run=_resend_outbox_job),
    Job(name="douyin.pauses", every=_settings.sweep_interval_seconds, run=_expire_pauses_job),
    Job(name="douyin.inbound", every=_settings.sweep_interval_seconds, run=_watch_inbound_job),
]
