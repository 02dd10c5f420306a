"""Every Sanic worker of a Rasa server answers with the model ``PUT /model`` loaded.

A Rasa server started with several Sanic workers (``server.workers``, ``SANIC_WORKERS``) is
several processes behind one port: ``PUT /model`` reaches one of them. Here:

* the worker that loaded a model through ``PUT /model`` records it as the server's
  *wanted* model (``<data_dir>/run/rasa-<server id>/wanted.json``; the server id is made by
  the main process before Rasa forks its workers, so the workers of one server share it
  and two servers on one machine do not);
* every worker watches that file (a ``stat`` every :data:`CHECK_SECONDS`) and, when it
  names another model than the one it answers with, loads it in a thread as the ``PUT``
  path does (the worker keeps answering with its current model meanwhile) and replaces
  its agent in one assignment;
* every worker reports the model it answers with (``worker-<pid>.json``), and
  ``GET /xiaoer/models?token=<API token>`` (any worker answers) returns the expected number
  of workers, the wanted model and each live worker's model: the hot swap
  (xiaoer/training/swap.py) waits until every worker reports the new one.

Before any of that, the swap tries the new model out in the server that will answer with
it: ``POST /xiaoer/models/candidate?token=<API token>`` with ``{"model_file", "probes":
[texts]}`` loads the model in a thread (the running one keeps answering), parses the probe
texts with it, the knowledge base's run-time matcher left out (``MODEL_CHECK_FLAG``: what the
model itself learnt), and answers what it understood. The process keeps that agent, and
the ``PUT /model`` of the same file that follows (or this worker's following of it) puts
it live without loading it a second time (:func:`take_candidate`); a model failing its
probes never answers a customer. One model is held at a time, for
:data:`CANDIDATE_SECONDS` at most.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("xiaoer.servers.modelsync")

SERVER_ID_ENV = "XIAOER_RASA_SERVER_ID"
PATH = "/xiaoer/models"
CANDIDATE_PATH = f"{PATH}/candidate"
CHECK_SECONDS = 1.0
# a tried model not put live within this time is let go (it failed its probes, or the
# swap stopped): the PUT follows the try-out at once
CANDIDATE_SECONDS = 300.0
MAX_PROBES = 50
_candidate: dict[str, Any] = {}  # this process's tried model: path, agent, at


def server_id() -> str:
    """This server's id (set once by the main process, inherited by its workers)."""
    if SERVER_ID_ENV not in os.environ:
        os.environ[SERVER_ID_ENV] = f"{os.getpid()}-{int(time.time())}"
    return os.environ[SERVER_ID_ENV]


def state_dir() -> Path:
    base = Path(os.environ.get("XIAOER_DATA_DIR", "var"))
    return base / "run" / f"rasa-{server_id()}"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)  # readers see the old or the new file, never half of one


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def record_wanted(model_path: str) -> None:
    """The model every worker of this server must answer with."""
    _write_json(state_dir() / "wanted.json", {"model": str(model_path), "at": time.time()})


def wanted() -> dict[str, Any] | None:
    return _read_json(state_dir() / "wanted.json")


def report(model_file: str | None, error: str = "") -> None:
    """This worker answers with ``model_file`` (a file name)."""
    data = {"pid": os.getpid(), "model": model_file or "", "error": error, "at": time.time()}
    _write_json(state_dir() / f"worker-{os.getpid()}.json", data)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


WORKERS_ENV = "XIAOER_RASA_WORKERS"  # how many workers Rasa decided to run


def workers_expected() -> int:
    try:
        return max(1, int(os.environ.get(WORKERS_ENV) or os.environ.get("SANIC_WORKERS") or 1))
    except ValueError:
        return 1


def snapshot() -> dict[str, Any]:
    """What ``GET /xiaoer/models`` answers."""
    workers = []
    for path in sorted(state_dir().glob("worker-*.json")):
        data = _read_json(path)
        if data and _alive(int(data.get("pid") or 0)):
            workers.append({k: data.get(k) for k in ("pid", "model", "error")})
    want = wanted()
    return {
        "expected_workers": workers_expected(),
        "wanted": Path(want["model"]).name if want else None,
        "workers": workers,
        "answered_by": os.getpid(),
    }


def _same_file(path: str) -> str:
    return str(Path(path).resolve()) if Path(path).exists() else path


def hold_candidate(model_path: str, agent: Any) -> None:
    _candidate.clear()
    _candidate.update(path=_same_file(model_path), agent=agent, at=time.monotonic())


def release_stale_candidate() -> None:
    if _candidate and time.monotonic() - float(_candidate["at"]) > CANDIDATE_SECONDS:
        logger.info("tried model %s let go: not put live", Path(_candidate["path"]).name)
        _candidate.clear()


def take_candidate(model_path: str) -> Any | None:
    """The agent of ``model_path`` if this process has just tried it out (else None); any
    load lets go of the one held."""
    held = dict(_candidate)
    _candidate.clear()
    if not held or held["path"] != _same_file(model_path):
        return None
    if time.monotonic() - float(held["at"]) > CANDIDATE_SECONDS:
        return None
    return held["agent"]


def model_name(agent: Any) -> str:
    processor = getattr(agent, "processor", None)
    return str(getattr(processor, "model_filename", "") or "") if processor else ""


class Follower:
    """The watch of one worker process: load the wanted model when it changes."""

    def __init__(self, app: Any, endpoints: Any, loader: Any) -> None:
        self.app = app
        self.endpoints = endpoints
        self.loader = loader  # Rasa's model loader (in a thread), which records nothing
        self.seen_mtime = 0.0
        self.failed = ""  # a wanted model this worker could not load (not retried)
        self.reported = ""

    def _report_current(self) -> None:
        current = model_name(getattr(self.app.ctx, "agent", None))
        if current != self.reported:
            report(current)
            self.reported = current

    async def check(self) -> None:
        release_stale_candidate()
        self._report_current()
        path = state_dir() / "wanted.json"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        if mtime == self.seen_mtime:
            return
        want = wanted()
        if not want:
            return
        model_path = str(want["model"])
        if Path(model_path).name == self.reported:
            self.seen_mtime = mtime
            if self.failed:  # e.g. rolled back to the model it kept: no error left
                self.failed = ""
                report(self.reported)
            return
        if model_path == self.failed:
            return
        logger.info("worker %d loads the server's new model %s", os.getpid(), model_path)
        try:
            agent = await self.loader(model_path, endpoints=self.endpoints)
        except Exception as exc:  # noqa: BLE001 - reported, the current model keeps answering
            logger.exception("worker %d could not load %s", os.getpid(), model_path)
            self.failed = model_path
            report(self.reported, error=f"{Path(model_path).name}: {type(exc).__name__}")
            return
        old = getattr(self.app.ctx, "agent", None)
        if old is not None and getattr(old, "lock_store", None) is not None:
            agent.lock_store = old.lock_store
        self.app.ctx.agent = agent
        self.seen_mtime = mtime
        self.failed = ""
        self._report_current()

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the watch goes on
                logger.exception("model watch failed")
            await asyncio.sleep(CHECK_SECONDS)


def install() -> None:
    """Record ``PUT /model``'s model, watch it in every worker, serve ``GET /xiaoer/models``.
    Call after every other wrapper of ``load_agent_on_start`` / ``_load_agent``."""
    import rasa.core.run as rasa_run
    import rasa.core.utils as rasa_utils
    import rasa.server as rasa_server

    server_id()  # made here, in the main process, before the workers are forked
    decide = rasa_utils.number_of_sanic_workers

    def number_of_sanic_workers(*args: Any, **kwargs: Any) -> int:
        # Rasa runs one worker instead of SANIC_WORKERS without a shared lock store
        workers = int(decide(*args, **kwargs))
        os.environ[WORKERS_ENV] = str(workers)  # inherited by the workers
        return workers

    rasa_utils.number_of_sanic_workers = number_of_sanic_workers

    loader = rasa_server._load_agent

    async def _load_agent(model_path: str | None = None, *args: Any, **kwargs: Any) -> Any:
        agent = await loader(model_path, *args, **kwargs)
        if model_path and agent is not None and agent.is_ready():
            record_wanted(str(Path(model_path).resolve()) if Path(model_path).exists()
                          else model_path)  # fmt: skip
        return agent

    rasa_server._load_agent = _load_agent

    load = rasa_run.load_agent_on_start

    async def load_and_follow(
        model_path: Any, endpoints: Any, remote_storage: Any, app: Any, loop: Any
    ) -> Any:
        agent = await load(model_path, endpoints, remote_storage, app, loop)
        app.ctx.xiaoer_endpoints = endpoints  # for the candidate route
        follower = Follower(app, endpoints, loader)  # follows, never records
        follower._report_current()
        app.ctx.model_follower = asyncio.get_running_loop().create_task(follower.run())
        return agent

    rasa_run.load_agent_on_start = load_and_follow

    configure = rasa_run.configure_app

    def configure_app(*args: Any, **kwargs: Any) -> Any:
        app = configure(*args, **kwargs)
        from sanic import response

        from xiaoer.core.security import api_token, same_secret

        @app.get(PATH)
        async def models(request: Any) -> Any:
            if not same_secret(request.args.get("token"), api_token()):
                return response.json({"error": "unauthorized"}, status=401)
            return response.json(snapshot())

        @app.post(CANDIDATE_PATH)
        async def candidate(request: Any) -> Any:
            if not same_secret(request.args.get("token"), api_token()):
                return response.json({"error": "unauthorized"}, status=401)
            body = request.json if isinstance(request.json, dict) else {}
            model_file, texts = body.get("model_file"), body.get("probes", [])
            if not isinstance(model_file, str) or not model_file:
                return response.json({"error": "model_file (a model file's path) is required"},
                                     status=400)  # fmt: skip
            if (not isinstance(texts, list) or len(texts) > MAX_PROBES
                    or not all(isinstance(t, str) for t in texts)):  # fmt: skip
                return response.json(
                    {"error": f"probes must be a list of at most {MAX_PROBES} texts"}, status=400
                )
            _candidate.clear()  # one model held at a time
            try:
                agent = await loader(model_file, endpoints=request.app.ctx.xiaoer_endpoints)
                from xiaoer.training.check import parse_probes

                answers = await parse_probes(agent, texts)
            except rasa_server.ErrorResponse as exc:
                return response.json({"error": exc.error_info["message"]}, status=int(exc.status))
            except Exception as exc:  # noqa: BLE001 - the running model keeps answering
                logger.exception("model %s failed while tried out", model_file)
                return response.json({"error": f"the model failed: {type(exc).__name__}"},
                                     status=500)  # fmt: skip
            hold_candidate(model_file, agent)
            logger.info("model %s tried out on %d probes", Path(model_file).name, len(texts))
            return response.json({"model": Path(model_file).name, "answers": answers})

        return app

    rasa_run.configure_app = configure_app
