"""The action server: rasa-sdk's app, bound to 127.0.0.1 and refusing every request that
does not carry the shared secret the Rasa server sends from its action endpoint.

``python -m xiaoer.servers.actionserver --port 5055 [--host 127.0.0.1] [--actions actions]``

The secret is read from ``$XIAOER_ACTION_TOKEN`` or ``var/action_token`` (0600, created at
first start), never from the command line. The Rasa server sends it as the
``X-Xiaoer-Action-Token`` header (``action_endpoint.headers`` in endpoints.yml, filled
from the same environment variable). ``GET /health`` stays open (it says only "ok").

Before it listens, the start-up checks run (xiaoer/core/startup.py): the port is free, the
project database is at the newest schema, the shop backend has its credentials and answers
a test call; a failure is one logged line and exit code 3.
"""

from __future__ import annotations

from xiaoer.core import quiet

quiet.install()  # before Rasa, TensorFlow or SQLAlchemy is imported

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from sanic import Sanic, response  # noqa: E402
from sanic.request import Request  # noqa: E402
from sanic.response import HTTPResponse  # noqa: E402

from xiaoer.core.config import get_settings  # noqa: E402
from xiaoer.core.security import (  # noqa: E402
    ACTION_TOKEN_HEADER,
    action_token,
    process_start,
    same_secret,
)

logger = logging.getLogger("xiaoer.servers.actionserver")

OPEN_PATHS = frozenset({"/health"})


def protect(app: Sanic, secret: str) -> Sanic:
    """Refuse (401) every request but ``/health`` without the shared secret."""
    if not secret:
        raise ValueError("the action server needs a shared secret")

    @app.middleware("request")
    async def require_secret(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        if same_secret(request.headers.get(ACTION_TOKEN_HEADER), secret):
            return None
        logger.warning("action server: request to %s refused (no or wrong secret)", request.path)
        return response.json(
            {"error": "unauthorized", "message": "missing or wrong action server secret"},
            status=401,
        )

    return app


# the Rasa server sends the whole tracker with every action call, every event of the
# conversation since its first message: a customer of many sessions, or a long live-room
# chat, passes the public servers' request cap (server.max_body_kb) within a few hundred turns
DEFAULT_ACTIONS_MAX_BODY_KB = 64 * 1024


def actions_max_body() -> int:
    """The action server's request cap in bytes (``server.actions_max_body_kb``)."""
    section = get_settings().section("server")
    kb = int(section.get("actions_max_body_kb") or DEFAULT_ACTIONS_MAX_BODY_KB)
    return max(kb, 1024) * 1024


def create_app(actions: str = "actions", secret: str | None = None) -> Sanic:
    from rasa_sdk.endpoint import create_app as sdk_app

    app = sdk_app(actions, cors_origins=None)
    # not the public servers' cap Sanic took from $SANIC_REQUEST_MAX_SIZE: the only caller
    # is the Rasa server, with the secret, on the loopback address
    app.config.REQUEST_MAX_SIZE = actions_max_body()
    return protect(app, secret if secret is not None else action_token())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xiaoer.servers.actionserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--actions", default="actions")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    process_start()
    from xiaoer.core import startup

    try:  # before saying ready: the port, the project database, the shop backend
        startup.check_ports({"action server": args.port}, args.host)
        project = startup.check_project_db()
        backend = startup.check_backend(get_settings())
    except startup.StartupError as exc:
        return startup.fail(exc, logger)
    logger.info("start-up checks passed: project database %s, shop backend %s", project, backend)
    app = create_app(args.actions)
    logger.info("action server on http://%s:%s (shared secret required)", args.host, args.port)
    app.run(host=args.host, port=args.port, workers=1, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
