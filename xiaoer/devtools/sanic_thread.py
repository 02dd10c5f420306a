"""Run a Sanic app on its own event loop in a daemon thread (the local fake platforms:
``xiaoer.doudian.fake`` and the Douyin simulator), on a socket bound before start so
that the caller knows the port at once."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Awaitable, Callable

from sanic import Sanic
from sanic.log import error_logger
from sanic.server.async_server import AsyncioServer


class _NoProductionBanner(logging.Filter):
    """Drops Sanic's "Sanic is running in PRODUCTION mode. Consider using '--debug'..."
    (logged when stdout is a terminal): advice for Sanic developers, noise in the
    terminal of a local fake platform (``xiaoer simulate``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "running in PRODUCTION mode" not in record.getMessage()


_QUIET = _NoProductionBanner()


class SanicThread:
    def __init__(
        self,
        make_app: Callable[[], Sanic],
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.make_app = make_app
        self.name = name
        self.on_stop = on_stop  # e.g. close the app's own client sessions
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.loop = asyncio.new_event_loop()
        self.server: AsyncioServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            self.loop.close()
            return
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self._shutdown())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _start(self) -> None:
        # At each app's startup Sanic 21.12 rewrites its HTTP class from the source
        # ("touch-up"), which works once per process unless in test mode, where the
        # original is kept: set for the process, so that fakes, Rasa channels under test
        # and other Sanic apps can start one after another.
        Sanic.test_mode = True
        # no signal handlers: create_server leaves them to the caller; its banner is
        # silenced for these embedded servers only (the filter is removed right after)
        error_logger.addFilter(_QUIET)
        try:
            server = await self.make_app().create_server(
                sock=self.sock, return_asyncio_server=True, access_log=False
            )
        finally:
            error_logger.removeFilter(_QUIET)
        if server is None:
            raise RuntimeError("Sanic returned no server")
        await server.startup()
        await server.before_start()
        await server.after_start()
        self.server = server

    async def _shutdown(self, grace: float = 0.5) -> None:
        if self.on_stop is not None:
            await self.on_stop()
        server = self.server
        if server is None:
            return
        await server.before_stop()
        closed = server.close()  # stop listening
        for conn in list(server.connections):
            conn.close_if_idle()
        current = asyncio.current_task()
        pending = {t for t in asyncio.all_tasks() if t is not current}
        if pending:  # answers under way get a moment to finish, then are cut
            _, pending = await asyncio.wait(pending, timeout=grace)
        for conn in list(server.connections):
            conn.abort()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if closed is not None:
            await closed
        await server.after_stop()

    def start(self) -> None:
        self.thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"{self.name} did not start: {self._error!r}")

    def stop(self) -> None:
        if self.thread.is_alive() and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.sock.close()
