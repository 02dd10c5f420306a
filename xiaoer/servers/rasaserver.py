"""``rasa run`` without the HTTP API token on the command line, and never without its stores.

``python -m xiaoer.servers.rasaserver <rasa run options>`` runs Rasa's own ``rasa run`` in this
process; when ``--enable-api`` is given, the token comes from ``$XIAOER_API_TOKEN`` (or
``var/api_token``) and is handed to Rasa inside the process, so ``ps`` shows no secret.
The process also gets the private umask and the log masking (the channels install it
again after Rasa has configured its logging).

Before Rasa starts, the start-up checks (xiaoer/core/startup.py) run: the model is a Rasa
model archive, the port is free, the tracker store, the event broker and a Redis lock store
of ``--endpoints`` answer (the URL Rasa itself builds) and the project database is at the
newest schema. A failure is one line (``start-up check failed: tracker store unreachable:
…``) and exit code 3. Rasa 3.6 would otherwise start, say "Rasa server is up and running"
and keep every conversation in memory; the same fallback at run time (the database going
away later) is turned into an error of the request (:func:`refuse_memory_fallback`).

Every server also answers ``GET /webhooks/health/ready`` (xiaoer/servers/readiness.py).

The speed levers of xiaoer/plugins/speed.py are installed (compiled action-response
validator, one transaction per turn in the SQL tracker store and event broker, SQLite WAL,
warm-up before the server accepts connections). ``SANIC_WORKERS`` > 1 runs several Sanic
workers (processes) on the one port; without a ``lock_store`` in the endpoints file they
share :class:`xiaoer.plugins.locks.FileLockStore` (no Redis needed on one machine), and
each worker's TensorFlow gets one thread per operation unless
``TF_INTRA_OP_PARALLELISM_THREADS`` / ``TF_INTER_OP_PARALLELISM_THREADS`` say otherwise.
"""

from __future__ import annotations

from xiaoer.core import quiet

quiet.install()  # before Rasa, TensorFlow or SQLAlchemy is imported

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from xiaoer.core.security import api_token, process_start  # noqa: E402

logger = logging.getLogger("xiaoer.servers.rasaserver")


def rasa_argv(args: list[str]) -> list[str]:
    if "--auth-token" in args:
        raise SystemExit("error: pass the token through $XIAOER_API_TOKEN, not --auth-token")
    argv = ["rasa", "run", *args]
    if "--enable-api" in args:
        argv += ["--auth-token", api_token()]
    return argv


def _options(args: list[str]) -> argparse.Namespace:
    """The ``rasa run`` options the checks need (defaults as Rasa's)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-m", "--model", default="models")
    parser.add_argument("--endpoints", default="endpoints.yml")
    parser.add_argument("-i", "--interface", default="0.0.0.0")
    parser.add_argument("-p", "--port", type=int, default=5005)
    known, _ = parser.parse_known_args(args)
    return known


def preflight(args: list[str]) -> None:
    """The start-up checks of a Rasa server (StartupError on the first failure)."""
    from xiaoer.core import startup

    options = _options(args)
    model = startup.check_model(Path(options.model))
    startup.check_ports({"Rasa server": options.port}, options.interface)
    stores = startup.check_endpoint_stores(Path(options.endpoints))
    project = startup.check_project_db()
    logger.info(
        "start-up checks passed: model %s, %s, project database %s",
        model.name, ", ".join(f"{s.kind} {s.where}" for s in stores), project,
    )  # fmt: skip


def refuse_memory_fallback() -> None:
    """Rasa's FailSafeTrackerStore answers a failing tracker store by keeping the
    conversation in memory (and a failing read by starting it afresh): lost history,
    silently. Make it an error of the request instead, logged as such."""
    from rasa.core.tracker_store import FailSafeTrackerStore

    def on_error(self: Any, error: Exception) -> None:
        logger.error(
            "tracker store %s failed, the message is refused rather than kept in memory: %s",
            type(self._tracker_store).__name__, error,
        )  # fmt: skip
        raise error

    FailSafeTrackerStore.on_tracker_store_error = on_error
    FailSafeTrackerStore.on_tracker_store_retrieve_error = on_error


def add_readiness_route() -> None:
    """``GET /webhooks/health/ready`` on the app ``rasa run`` builds."""
    import rasa.core.run as rasa_run

    from xiaoer.servers.readiness import blueprint

    configure = rasa_run.configure_app

    def configure_app(*args: Any, **kwargs: Any) -> Any:
        app = configure(*args, **kwargs)
        app.blueprint(blueprint())
        return app

    rasa_run.configure_app = configure_app


def load_models_in_thread() -> None:
    """``PUT /model`` (the hot swap of a retrained model, xiaoer/training/swap.py) loads the
    new model in a thread: Rasa 3.6 loads it on the event loop, which then answers nobody
    for the 10-30 s a model takes to load. The stores and endpoints of the new agent are
    still made on the loop, as Rasa makes them; the running agent answers until the new
    one is ready, then Rasa replaces it in one assignment. A model this process has just
    tried out (:mod:`xiaoer.servers.modelsync`, ``POST /xiaoer/models/candidate``) is not
    loaded a second time: that agent is the one put live."""
    import asyncio

    import rasa.core.agent as rasa_agent
    import rasa.server as rasa_server
    from rasa.exceptions import ModelNotFound

    from xiaoer.servers import modelsync

    original = rasa_server._load_agent

    async def _load_agent(
        model_path: str | None = None,
        model_server: Any = None,
        remote_storage: str | None = None,
        endpoints: Any = None,
    ) -> Any:
        if model_server or remote_storage or not model_path or (endpoints and endpoints.model):
            return await original(model_path, model_server, remote_storage, endpoints)
        tried = modelsync.take_candidate(model_path)
        if tried is not None:
            logger.info("model put live without loading it again: %s", Path(model_path).name)
            return tried
        agent = await rasa_agent.load_agent(endpoints=endpoints)  # stores, no model yet
        try:
            await asyncio.get_running_loop().run_in_executor(None, agent.load_model, model_path)
        except (ModelNotFound, OSError, ValueError) as exc:
            logger.warning("model %s could not be loaded: %s", model_path, exc)
        except Exception as exc:  # noqa: BLE001 - Rasa's own handler answers 500 for the same
            logger.exception("model %s could not be loaded", model_path)
            raise rasa_server.ErrorResponse(
                500, "LoadingError", "the model could not be loaded"
            ) from exc
        if not agent.is_ready():
            raise rasa_server.ErrorResponse(
                400, "BadRequest", f"Agent with name '{model_path}' could not be loaded."
            )
        logger.info("model loaded in the background: %s", Path(model_path).name)
        return agent

    rasa_server._load_agent = _load_agent


FILE_LOCK_STORE = "xiaoer.plugins.locks.FileLockStore"


def sanic_workers() -> int:
    """``SANIC_WORKERS``; without it ``server.workers`` of xiaoer.yml, exported for Rasa."""
    if "SANIC_WORKERS" not in os.environ:
        from xiaoer.core.config import get_settings

        workers = get_settings().section("server").get("workers") or 1
        os.environ["SANIC_WORKERS"] = str(workers)
    try:
        return max(1, int(os.environ["SANIC_WORKERS"]))
    except ValueError:
        return 1


def share_lock_store_between_workers() -> None:
    """Several Sanic workers need a lock store all of them see: without one in the
    endpoints file, the file lock store in the data folder (Rasa would otherwise refuse
    the workers and run one)."""
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.endpoints import EndpointConfig

    read = AvailableEndpoints.read_endpoints.__func__

    def read_endpoints(cls: Any, endpoint_file: Any) -> Any:
        endpoints = read(cls, endpoint_file)
        if endpoints.lock_store is None:
            path = os.path.join(os.environ.get("XIAOER_DATA_DIR", "var"), "locks",
                                "conversations.lock")  # fmt: skip
            endpoints.lock_store = EndpointConfig(type=FILE_LOCK_STORE, path=path)
            logger.info("%d Sanic workers share the file lock store %s", sanic_workers(), path)
        return endpoints

    AvailableEndpoints.read_endpoints = classmethod(read_endpoints)


def one_tensorflow_thread_per_worker() -> None:
    """Workers each on a core: TensorFlow's thread pools of one thread, unless set."""
    os.environ.setdefault("TF_INTRA_OP_PARALLELISM_THREADS", "1")
    os.environ.setdefault("TF_INTER_OP_PARALLELISM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    from xiaoer.core.config import export_endpoint_defaults
    from xiaoer.core.startup import StartupError, fail

    export_endpoint_defaults()  # endpoints.yml reads them
    args = sys.argv[1:] if argv is None else argv
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    process_start()
    try:
        preflight(args)
    except StartupError as exc:
        return fail(exc, logger)
    finally:  # Rasa configures its own logging: no line twice
        for handler in set(root.handlers) - set(before):
            root.removeHandler(handler)
    refuse_memory_fallback()
    from xiaoer.servers import actions_down

    actions_down.install()  # the action server down: one polite message, a human offered
    from xiaoer.servers import reconnect

    reconnect.install()  # Rasa's SQL stores check their connections (database restarts)
    add_readiness_route()
    load_models_in_thread()
    from xiaoer.plugins import speed

    if speed.install() and sanic_workers() > 1:
        share_lock_store_between_workers()
        one_tensorflow_thread_per_worker()
        if os.environ.get("XIAOER_SHARE_SEGMENTER", "on").lower() != "off":
            from xiaoer.nlu.tokenizer import share_segmenter_model

            share_segmenter_model()  # one copy of pkuseg's model for all workers
    from xiaoer.servers import modelsync

    modelsync.install()  # PUT /model reaches one worker: the others follow it

    from xiaoer.core.clock import install_demo_clock

    install_demo_clock()  # only with $XIAOER_DEMO_CLOCK (xiaoer demo-traffic)
    sys.argv = rasa_argv(args)
    from rasa.__main__ import main as rasa_main

    rasa_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
