"""The Doudian (抖店) open platform: orders and after-sales of the merchant's shop.

* :mod:`xiaoer.doudian.protocol` — signing, the answer envelope, defensive value parsing,
  push-message tags, the package's errors;
* :mod:`xiaoer.doudian.client` — the settings and the signed HTTP client (timeouts, retries);
* :mod:`xiaoer.doudian.parsing` — answers → the shop's domain model (orders, parcels,
  after-sales cases);
* :mod:`xiaoer.doudian.store` — the change log and push ledger (tables of the project
  database) and the in-memory order cache;
* :mod:`xiaoer.doudian.backend` — ``DoudianShopBackend``, the shop backend on the API;
* :mod:`xiaoer.doudian.push` — push messages: signature, parsing, de-duplicated
  processing, proactive notifications (no Rasa);
* :mod:`xiaoer.doudian.fake` — a local fake of the open API (``python -m xiaoer.doudian.fake``).

The Rasa input channel for push messages lives in :mod:`xiaoer.channels.doudian`.
"""
