"""``GET /webhooks/health/ready`` on the Rasa server: what a load balancer polls.

200 ``{"ready": true, "model": "<file>", "tracker_store": "ok", "project_db": "ok",
"backend": "ok"}`` when the model is loaded, the tracker store Rasa uses answers, the project
database answers at the newest schema and the shop backend answers a cheap read within its
timeout; otherwise 503 with the failing check's short reason in its place (e.g.
``"project_db": "unreachable"``). The full reason (addresses included) goes to the log
only: the path is under ``/webhooks/``, which faces the internet. Results are kept for
:data:`CACHE_SECONDS`, so frequent polling does not load the database or the backend.

``xiaoer.servers.rasaserver`` adds the route to every Rasa server it starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy import text

from xiaoer.core import startup
from xiaoer.core.startup import StartupError

logger = logging.getLogger("xiaoer.servers.readiness")

PATH = "/webhooks/health/ready"
CACHE_SECONDS = 5.0
CHECK_TIMEOUT_SECONDS = 10.0


def _sql_engine(store: Any) -> Any:
    """The SQLAlchemy engine under Rasa's tracker store wrappers, if it is an SQL one."""
    seen = 0
    while store is not None and seen < 5:
        engine = getattr(store, "engine", None)
        if engine is not None:
            return engine
        store = getattr(store, "_tracker_store", None)
        seen += 1
    return None


def _inner_store(store: Any) -> Any:
    while getattr(store, "_tracker_store", None) is not None:
        store = store._tracker_store
    return store


class Readiness:
    """The checks of one Rasa server process, cached for :data:`CACHE_SECONDS`."""

    def __init__(self) -> None:
        self._result: tuple[float, int, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        self._db: Any = None
        self._backend: Any = None
        self._last_failures: dict[str, str] = {}

    async def result(self, agent: Any) -> tuple[int, dict[str, Any]]:
        async with self._lock:
            now = time.monotonic()
            if self._result and now - self._result[0] < CACHE_SECONDS:
                return self._result[1], self._result[2]
            status, body = await self._run(agent)
            self._result = (time.monotonic(), status, body)
            return status, body

    async def _run(self, agent: Any) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"ready": False, "model": None}
        failures: dict[str, str] = {}
        if agent is not None and agent.is_ready():
            body["model"] = agent.model_name
        else:
            failures["model"] = "model not loaded"
            body["model"] = "not loaded"
        checks = {
            "tracker_store": self._tracker_store(agent),
            "project_db": asyncio.to_thread(self._project_db),
            "backend": self._shop_backend(),
        }
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
                body[name] = "ok"
            except StartupError as exc:
                body[name] = exc.short
                failures[name] = str(exc)
            except asyncio.TimeoutError:
                body[name] = "timeout"
                failures[name] = f"{name}: no answer within {CHECK_TIMEOUT_SECONDS:g} s"
        body["ready"] = not failures
        for name, detail in failures.items():
            if self._last_failures.get(name) != detail:
                logger.error("readiness: %s failing: %s", name, detail)
        for name in set(self._last_failures) - set(failures):
            logger.info("readiness: %s ok again", name)
        self._last_failures = failures
        return (200 if body["ready"] else 503), body

    async def _tracker_store(self, agent: Any) -> None:
        store = getattr(agent, "tracker_store", None)
        engine = _sql_engine(store)
        if engine is None:
            inner = type(_inner_store(store)).__name__ if store is not None else "none"
            if inner == "InMemoryTrackerStore":
                return  # configured so (no tracker_store in the endpoints file)
            if store is None:
                raise StartupError("tracker store: none loaded", "not loaded")
            return  # another kind of store (Redis, Mongo): Rasa reports its own errors

        def ping() -> None:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                raise StartupError(
                    f"tracker store unreachable: {startup.masked_url(engine.url)}: "
                    f"{startup._one_line(exc)}",
                    "unreachable",
                ) from exc

        await asyncio.to_thread(ping)

    def _project_db(self) -> None:
        from xiaoer.core.db import create_database, default_url

        if self._db is None:
            self._db = create_database(default_url())
        startup.check_project_db(upgrade_sqlite=False, db=self._db)

    async def _shop_backend(self) -> None:
        from xiaoer.core.config import get_settings

        settings = get_settings()
        if self._backend is None:
            self._backend = startup.build_backend(settings)
        await startup.probe_backend(self._backend, settings.backend_timeout, settings.backend_type)


def blueprint() -> Blueprint:
    bp = Blueprint("xiaoer_readiness")
    readiness = Readiness()

    @bp.get(PATH)
    async def ready(request: Request) -> HTTPResponse:
        agent = getattr(request.app.ctx, "agent", None)
        status, body = await readiness.result(agent)
        return response.json(body, status=status)

    return bp
