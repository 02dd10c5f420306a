"""Deliver queued proactive notifications (order shipped, refund done...) to buyers.

Each pending notification of the outbox (``xiaoer.notifications.outbox``) is appended to the buyer's
conversation as a bot message through Rasa's HTTP API with ``execute_side_effects``, so
Rasa sends it through the output channel the buyer last used (the Douyin channel on
Douyin) and the tracker keeps it. A notification is marked sent only after Rasa accepted
it; failures stay queued for the next round.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

import requests

from xiaoer.notifications.outbox import NotificationOutbox, get_outbox

logger = logging.getLogger(__name__)


class RasaNotifier:
    def __init__(self, rasa_url: str, token: str, outbox: NotificationOutbox | None = None) -> None:
        self.rasa_url = rasa_url.rstrip("/")
        self.token = token
        self.outbox = outbox or get_outbox()

    def deliver_pending(self, limit: int = 50) -> int:
        """Send what is queued; returns how many were delivered."""
        delivered = 0
        for note in self.outbox.pending(limit=limit):
            url = f"{self.rasa_url}/conversations/{quote(note.buyer_id, safe=':@')}/tracker/events"
            try:
                response = requests.post(
                    url,
                    params={
                        "token": self.token,
                        "output_channel": "latest",
                        "execute_side_effects": "true",
                    },
                    json={
                        "event": "bot",
                        "text": note.text,
                        "metadata": {"notification": note.kind},
                    },
                    timeout=10,
                )
            except requests.RequestException as exc:
                logger.warning("notification %s not delivered: %s", note.id, type(exc).__name__)
                break
            if response.status_code != 200:
                logger.warning(
                    "notification %s not delivered: HTTP %s", note.id, response.status_code
                )
                break
            self.outbox.mark_sent(note.id)
            delivered += 1
            logger.info("notification %s (%s) delivered", note.id, note.kind)
        return delivered

    def run_forever(self, stop: threading.Event, interval: float = 10.0) -> None:
        while not stop.is_set():
            try:
                self.deliver_pending()
            except Exception:  # noqa: BLE001 - the loop must survive a bad round
                logger.exception("notification round failed")
            stop.wait(interval)
