"""Douyin Open Platform: private messages of an enterprise account (企业号).

* :mod:`xiaoer.douyin.protocol` — webhook signature, envelope parsing (every payload shape
  the spec lists), the send-API request and answer shapes;
* :mod:`xiaoer.douyin.store` — SQLite state under the data folder: received events
  (dedupe across restarts, processing ledger), conversation state (answered message id,
  numbered options, pauses), the outbox of replies not delivered yet, access tokens;
* :mod:`xiaoer.douyin.client` — the send API and the token refresh, with retries;
* :mod:`xiaoer.douyin.greetings` — greeting scripts by customer segment and time of day;
* :mod:`xiaoer.douyin.simulator` — a local fake of the platform (``xiaoer simulate``).

The Rasa input/output channel lives in :mod:`xiaoer.channels.douyin`.
"""
