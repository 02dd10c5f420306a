"""Rasa's SQL stores reconnect by themselves after the database restarted.

Rasa 3.6 builds the engines of its SQL tracker store and SQL event broker without
``pool_pre_ping``: after PostgreSQL restarts, every pooled connection is dead and the
first request on each fails ("server closed the connection unexpectedly") before the pool
notices. :func:`install` (called by :mod:`xiaoer.servers.rasaserver`) makes both check a
connection before handing it out (SQLAlchemy's pessimistic disconnect handling), as the
project database does (``xiaoer.core.engine``): once the database is back, the next
message works. While it is down, requests fail with a clear error (``xiaoer.core.outage``).
"""

from __future__ import annotations

from typing import Any


def install() -> None:
    import rasa.core.tracker_store as tracker_store
    import sqlalchemy
    import sqlalchemy.orm
    from rasa.core.brokers.sql import SQLEventBroker

    if getattr(tracker_store.create_engine_kwargs, "_xiaoer_pre_ping", False):
        return
    original_kwargs = tracker_store.create_engine_kwargs

    def create_engine_kwargs(url: Any) -> dict[str, Any]:
        return {**original_kwargs(url), "pool_pre_ping": True}

    create_engine_kwargs._xiaoer_pre_ping = True  # type: ignore[attr-defined]
    tracker_store.create_engine_kwargs = create_engine_kwargs

    original_init = SQLEventBroker.__init__

    def broker_init(self: SQLEventBroker, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        url = self.engine.url
        self.engine.dispose()
        self.engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
        self.sessionmaker = sqlalchemy.orm.sessionmaker(bind=self.engine)

    SQLEventBroker.__init__ = broker_init
