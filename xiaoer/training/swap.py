"""Loading a new model into every running Rasa server, one after another, through Rasa's
model API (``PUT /model`` with the API token), and rolling back on failure.

Which servers: ``$XIAOER_RASA_URLS`` (comma-separated), else ``training.rasa_servers`` of
xiaoer.yml, else the one Rasa server of :func:`xiaoer.core.rasa_api.rasa_url`. A server
keeps answering with its current model while it loads the new one (the Rasa server loads
models in a thread, :mod:`xiaoer.servers.rasaserver`), and the next server is only
changed once this one answers with the new model, so at scale the others answer
meanwhile. After each swap the server must parse the probes as the check did; otherwise
every server changed so far goes back to the model it had.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

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


class ModelApi:
    """The few calls of Rasa's HTTP API a swap needs (blocking: the job runs in a thread)."""

    def __init__(self, token: str | None = None, timeout: float = 600) -> None:
        if token is None:
            from xiaoer.core.security import api_token

            token = api_token()
        self.token = token
        self.timeout = timeout

    def status(self, url: str) -> dict[str, Any]:
        r = requests.get(f"{url}/status", params={"token": self.token}, timeout=30)
        if r.status_code != 200:
            raise SwapError(f"{url} 状态查询失败（HTTP {r.status_code}）")
        return dict(r.json())

    def load(self, url: str, model: Path | str) -> None:
        r = requests.put(
            f"{url}/model",
            params={"token": self.token},
            json={"model_file": str(model)},
            timeout=self.timeout,
        )
        if r.status_code != 204:
            raise SwapError(f"{url} 加载模型失败（HTTP {r.status_code}）：{r.text[:200]}")

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
) -> SwapResult:
    api = api or ModelApi()
    say = progress or (lambda text: None)
    urls = servers or rasa_servers()
    states = [ServerState(u) for u in urls]
    model = model.resolve()
    places = [model.parent, *(known_models or [])]
    for i, state in enumerate(states, 1):
        try:
            before = api.status(state.url)
            state.previous = str(before.get("model_file") or "")
            state.previous_path = (
                find_model(Path(state.previous).name, places) if state.previous else ""
            )
            say(f"切换模型：第 {i}/{len(states)} 台机器人服务")
            api.load(state.url, model)
            state.swapped = True
            now = api.status(state.url)
            if Path(str(now.get("model_file") or "")).name != model.name:
                raise SwapError(f"{state.url} 仍在使用旧模型 {now.get('model_file')}")
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
            result.rolled_back = rollback(states, api, say)
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
            state.swapped = False
        except (SwapError, requests.RequestException):
            log.exception("rollback of %s failed", state.url)
            ok = False
    return ok
