"""Douyin Open Platform: private messages of an enterprise account (企业号).

* :mod:`xiaoer.douyin.protocol` — webhook signature, envelope parsing (every payload shape
  the spec lists), the send-API request and answer shapes;
* :mod:`xiaoer.douyin.service` — what happens to an accepted webhook event (recorded,
  deduplicated, processed through Rasa); :mod:`xiaoer.douyin.workers` — one task per
  customer, in the customer's order;
* :mod:`xiaoer.douyin.bridge` — tracker operations besides a user message (append events,
  trigger the greeting intent);
* :mod:`xiaoer.douyin.replies` — a turn's messages merged into platform messages, numbered
  options; :mod:`xiaoer.douyin.outbox` — sending in order, the outbox of what the platform
  did not take;
* :mod:`xiaoer.douyin.pauses` — the bot's pause after a human answered from the app;
* :mod:`xiaoer.douyin.greetings` — greeting scripts by customer segment and time of day,
  and the greeting itself;
* :mod:`xiaoer.douyin.jobs` — the worker's jobs: outbox resend, pause expiry;
* :mod:`xiaoer.douyin.store` — the channel's tables in the project database: received
  events (dedupe across restarts, processing ledger), conversation state (answered message
  id, numbered options, pauses), the outbox, access tokens;
* :mod:`xiaoer.douyin.settings` — merchant settings and credentials;
  :mod:`xiaoer.douyin.client` — the send API and the token refresh, with retries;
* :mod:`xiaoer.douyin.simulator` — a local fake of the platform (``xiaoer simulate``).

The Rasa input/output channel (a thin adapter) lives in :mod:`xiaoer.channels.douyin`.
"""
