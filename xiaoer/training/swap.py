"""Loading a new model into every running Rasa server, one after another, through Rasa's
model API (``PUT /model`` with the API token), and rolling back on failure.

Which servers: ``$XIAOER_RASA_URLS`` (comma-separated), else ``training.rasa_servers`` of
xiaoer.yml, else the one Rasa server of :func:`xiaoer.core.rasa_api.rasa_url`. A server
keeps answering with its current model while it loads the new one (the Rasa server loads
models in a thread, :mod:`xiaoer.servers.rasaserver`), and the next server is only
changed once every worker process of this one answers with the new model (a server of
several Sanic workers: ``PUT /model`` reaches one, the others follow it,
:mod:`xiaoer.servers.modelsync`), so at scale the others answer meanwhile.

Each server first tries the new model out (``POST /xiaoer/models/candidate``): it loads it
beside the running one and parses the probes with it, the knowledge base's run-time matcher
left out, so what is checked is what the model learnt; a model that fails is never put
live, and the ``PUT /model`` that follows puts the loaded one live without loading it
again (one load per server, where a check in a separate process used to load it once
more). A server without that route (a plain ``rasa run``) is checked in a child process
instead (:func:`xiaoer.training.check.check_model`). After each swap the server must parse
the probes again; otherwise every server changed so far goes back to the model it had.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from xiaoer.training import check
from xiaoer.training.check import Probe, failures

log = logging.getLogger(__name__)
SERVERS_ENV = "XIAOER_RASA_URLS"


def rasa_servers() -> list[str]:
    env = os.environ.get(SERVERS_ENV)
    if env:
        return [u.strip().rstrip("/") for u in env.split(",") if u.strip()]
    from xiaoer.core.config import get_settings

    configured = get_settings().section("training").get("rasa_servers")
    if configured:
        return [str(u).rstrip("/") for u in configured]
    from xiaoer.core.rasa_api import rasa_url

    return [rasa_url()]


class SwapError(RuntimeError):
    pass


class CheckFailed(SwapError):
    """The new model answered the probes wrongly before it was put live."""

    def __init__(self, url: str, problems: list[str]) -> None:
        super().__init__(f"{url} 新模型未通过检查：" + "；".join(problems))
        self.problems = problems


@dataclass
class ServerState:
    url: str
    previous: str = ""  # file name of the model it had
    previous_path: str = ""  # and where that model is, for a rollback
    swapped: bool = False


@dataclass
class SwapResult:
    ok: bool
    servers: list[ServerState] = field(default_factory=list)
    error: str = ""
    rolled_back: bool = False
    problems: list[str] = field(default_factory=list)  # the probes the new model got wrong
    live_changed: bool = False  # some server had answered with the new model


class ModelApi:
    """The few calls of Rasa's HTTP API a swap needs (blocking: the job runs in a thread)."""

    def __init__(self, token: str | None = None, timeout: float = 600) -> None:
        if token is None:
            from xiaoer.core.security import api_token

            token = api_token()
        self.token = token
        self.timeout = timeout
        # one connection for trying a model out and putting it live: the same worker
        # process of a server of several answers both, and loads the model once
        self.http = requests.Session()

    def status(self, url: str) -> dict[str, Any]:
        r = requests.get(f"{url}/status", params={"token": self.token}, timeout=30)
        if r.status_code != 200:
            raise SwapError(f"{url} 状态查询失败（HTTP {r.status_code}）")
        return dict(r.json())

    def try_model(
        self, url: str, model: Path | str, texts: list[str]
    ) -> list[dict[str, Any]] | None:
        """Load ``model`` beside the running one and parse ``texts`` with it (the answers,
        in order); None for a server without the route (a plain ``rasa run``)."""
        r = self.http.post(
            f"{url}/xiaoer/models/candidate",
            params={"token": self.token},
            json={"model_file": str(model), "probes": texts},
            timeout=self.timeout,
        )
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            detail = r.json().get("error", "") if r.headers.get("content-type", "").startswith(
                "application/json") else r.text[:200]  # fmt: skip
            raise SwapError(f"{url} 加载新模型失败（HTTP {r.status_code}）：{detail}")
        return list(r.json()["answers"])

    def load(self, url: str, model: Path | str) -> None:
        r = self.http.put(
            f"{url}/model",
            params={"token": self.token},
            json={"model_file": str(model)},
            timeout=self.timeout,
        )
        if r.status_code != 204:
            raise SwapError(f"{url} 加载模型失败（HTTP {r.status_code}）：{r.text[:200]}")

    def workers(self, url: str) -> dict[str, Any] | None:
        """Each Sanic worker's model (``GET /xiaoer/models``); None for a server without
        that route (a plain ``rasa run``: one process, ``/status`` tells)."""
        r = requests.get(f"{url}/xiaoer/models", params={"token": self.token}, timeout=30)
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise SwapError(f"{url} 模型状态查询失败（HTTP {r.status_code}）")
        return dict(r.json())

    def wait_every_worker(self, url: str, model: str, timeout: float, poll: float = 1.0) -> None:
        """Until every worker process of the server answers with ``model`` (a file name):
        ``PUT /model`` reached one of them, the others load it in the background."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.workers(url)
            if info is None:
                now = self.status(url)
                if Path(str(now.get("model_file") or "")).name != model:
                    raise SwapError(f"{url} 仍在使用旧模型 {now.get('model_file')}")
                return
            workers = info.get("workers") or []
            errors = [w["error"] for w in workers if w.get("error")]
            if errors:
                raise SwapError(f"{url} 有服务进程加载新模型失败：{errors[0]}")
            behind = [w for w in workers if w.get("model") != model]
            if len(workers) >= int(info.get("expected_workers") or 1) and not behind:
                return
            if time.monotonic() > deadline:
                raise SwapError(
                    f"{url} 仍有服务进程使用旧模型（{len(behind)} 个未切换，"
                    f"{len(workers)}/{info.get('expected_workers')} 个已报告）"
                )
            time.sleep(poll)

    def parse(self, url: str, text: str) -> dict[str, Any]:
        r = requests.post(
            f"{url}/model/parse", params={"token": self.token}, json={"text": text}, timeout=60
        )
        if r.status_code != 200:
            raise SwapError(f"{url} 解析失败（HTTP {r.status_code}）")
        return dict(r.json())


def find_model(name: str, places: list[Path]) -> str:
    """Where the model file ``name`` is (the models folder, earlier runs' models)."""
    for place in places:
        candidate = place if place.name == name else place / name
        if candidate.is_file():
            return str(candidate.resolve())
    return ""


def swap_all(
    model: Path,
    probes: list[Probe],
    *,
    servers: list[str] | None = None,
    api: ModelApi | None = None,
    known_models: list[Path] | None = None,
    progress: Callable[[str], None] | None = None,
    checked: Callable[[], None] | None = None,
) -> SwapResult:
    """Try ``model`` out on each server, put it live there, check it again; ``checked`` is
    called once the first server's try-out has passed (the run's state moves on)."""
    api = api or ModelApi()
    say = progress or (lambda text: None)
    urls = servers or rasa_servers()
    states = [ServerState(u) for u in urls]
    model = model.resolve()
    places = [model.parent, *(known_models or [])]
    in_child: list[str] | None = None  # the child process's check, for servers without the route
    for i, state in enumerate(states, 1):
        try:
            before = api.status(state.url)
            state.previous = str(before.get("model_file") or "")
            state.previous_path = (
                find_model(Path(state.previous).name, places) if state.previous else ""
            )
            say(f"检查新模型：第 {i}/{len(states)} 台机器人服务加载并试答 {len(probes)} 个问题")
            answers = api.try_model(state.url, model, [p.text for p in probes])
            if answers is None:
                if in_child is None:
                    in_child = check.check_model(model, probes)
                wrong = in_child
            else:
                wrong = failures(probes, answers)
            if wrong:
                raise CheckFailed(state.url, wrong)
            if i == 1 and checked is not None:
                checked()
            say(f"切换模型：第 {i}/{len(states)} 台机器人服务")
            api.load(state.url, model)
            state.swapped = True
            say(f"切换模型：第 {i}/{len(states)} 台机器人服务，等待每个服务进程加载新模型")
            api.wait_every_worker(state.url, model.name, timeout=api.timeout)
            answers = [api.parse(state.url, p.text) for p in probes]
            wrong = failures(probes, answers)
            if wrong:
                raise SwapError(f"{state.url} 切换后答错：" + "；".join(wrong))
        except (SwapError, requests.RequestException) as exc:
            log.warning("model swap failed on %s: %s", state.url, exc)
            error = (
                str(exc)
                if isinstance(exc, SwapError)
                else f"{state.url} 无法连接（{type(exc).__name__}）"
            )
            result = SwapResult(False, states, error)
            result.problems = exc.problems if isinstance(exc, CheckFailed) else []
            result.live_changed = any(s.swapped for s in states)
            result.rolled_back = rollback(states, api, say) if result.live_changed else False
            return result
    return SwapResult(True, states)


def rollback(states: list[ServerState], api: ModelApi, say: Callable[[str], None]) -> bool:
    """Put every swapped server back on its previous model: whether all went back."""
    ok = True
    for state in states:
        if not state.swapped:
            continue
        if not state.previous_path:
            log.error("no previous model to roll %s back to", state.url)
            ok = False
            continue
        say(f"回滚：{state.url} 恢复旧模型")
        try:
            api.load(state.url, state.previous_path)
            api.wait_every_worker(state.url, Path(state.previous_path).name, api.timeout)
            state.swapped = False
        except (SwapError, requests.RequestException):
            log.exception("rollback of %s failed", state.url)
            ok = False
    return ok
