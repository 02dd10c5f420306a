"""Deliver queued proactive notifications (order shipped, refund done...) to buyers.

Each pending notification of the outbox (``xiaoer.notifications.outbox``) is appended to the
buyer's conversation as a bot message through Rasa's HTTP API
(:class:`xiaoer.core.rasa_api.RasaClient`, with ``execute_side_effects``), so Rasa sends it
through the output channel the buyer last used (the Douyin channel on Douyin, the REST
inbox for REST) and the tracker keeps it. A notification is marked sent only after Rasa
accepted it; failures stay queued for the next round. The worker runs this every few
seconds (``notifications.deliver`` in :mod:`xiaoer.notifications.jobs`).
"""

from __future__ import annotations

import asyncio
import logging

from xiaoer.core.rasa_api import RasaApiError, RasaClient
from xiaoer.notifications.outbox import NotificationOutbox, get_outbox

logger = logging.getLogger(__name__)


class RasaNotifier:
    def __init__(
        self,
        rasa_url: str | None = None,
        token: str | None = None,
        outbox: NotificationOutbox | None = None,
    ) -> None:
        self.rasa = RasaClient(rasa_url, token)
        self.outbox = outbox or get_outbox()

    async def deliver(self, limit: int = 50) -> int:
        """Send what is queued, oldest first; returns how many were delivered. Stops at the
        first refusal (Rasa down or the token wrong): the rest waits for the next round."""
        delivered = 0
        pending = await asyncio.to_thread(self.outbox.pending, limit)
        for note in pending:
            try:
                await self.rasa.send_bot_message(
                    note.buyer_id, note.text, {"notification": note.kind}
                )
            except RasaApiError as exc:
                why = f"HTTP {exc.status}" if exc.status else type(exc.__cause__).__name__
                logger.warning("notification %s not delivered: %s", note.id, why)
                break
            await asyncio.to_thread(self.outbox.mark_sent, note.id)
            delivered += 1
            logger.info("notification %s (%s) delivered", note.id, note.kind)
        return delivered

    def deliver_pending(self, limit: int = 50) -> int:
        """:meth:`deliver` for callers without an event loop (``xiaoer notify``, tests)."""
        return asyncio.run(self.deliver(limit))
