"""``xiaoer shell`` and ``xiaoer interactive``: Rasa's ``shell`` and ``interactive`` for
conversation designers, runnable while ``xiaoer up`` serves the standard ports.

Thin wrappers: the command line is Rasa's, with what the project needs filled in:

* the current model, trained only when ``data/``, ``domain.yml`` or ``config.yml``
  changed (``xiaoer train``'s fingerprint; ``rasa interactive`` would otherwise train a
  new model into ``models/`` every time);
* free ports (``--port``; ``interactive`` also serves its story graph on port + 1);
* an action server of their own on a free port with a fresh secret, or the running one
  (``--actions-url``, its secret from ``$XIAOER_ACTION_TOKEN`` or ``var/action_token``);
  the secret travels in the environment, never on a command line;
* endpoints with the action server only: the designer's test conversations stay in
  memory, out of the shop's tracker store and event broker (no leads from them);
* ``interactive`` exports into the project's layout: stories to
  ``data/stories/interactive.yml`` (appended), NLU to ``data/nlu/interactive.yml``
  (merged); its domain export (Rasa always writes one, default ``domain.yml``, which it
  would rewrite without comments) goes to a temporary copy that is discarded:
  ``domain.yml`` is never written. What the session added to the domain (new actions or
  responses) is printed for the designer to add by hand.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from xiaoer.core.security import ACTION_TOKEN_ENV, ACTION_TOKEN_HEADER
from xiaoer.devtools.stack import RASA_ENV, StartError, free_port, private_log, stop, wait_http

STORY_EXPORT = "data/stories/interactive.yml"
NLU_EXPORT = "data/nlu/interactive.yml"
DOMAIN_KEYS = ("intents", "entities", "slots", "responses", "actions", "forms")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free port whose next one is free too (``rasa interactive`` serves its story
    graph on port + 1)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and port_free(port + 1):
            return port
    raise StartError("no two consecutive free ports")


def write_endpoints(path: Path, actions_url: str) -> Path:
    """Endpoints with only the action server (its secret read from the environment):
    trackers in memory, no event broker."""
    endpoints = {
        "action_endpoint": {
            "url": actions_url,
            "headers": {ACTION_TOKEN_HEADER: f"${{{ACTION_TOKEN_ENV}}}"},
        }
    }
    path.write_text(yaml.safe_dump(endpoints, sort_keys=False), encoding="utf-8")
    return path


def shell_command(model: Path, endpoints: Path, port: int, extra: list[str]) -> list[str]:
    """``rasa shell`` on ``model`` with the given endpoints, its server on ``port``."""
    rasa = str(Path(sys.executable).with_name("rasa"))
    return [rasa, "shell", "--model", str(model), "--endpoints", str(endpoints),
            "--interface", "127.0.0.1", "--port", str(port), *extra]  # fmt: skip


def interactive_command(
    model: Path, endpoints: Path, port: int, domain_copy: Path, extra: list[str]
) -> list[str]:
    """``rasa interactive`` through :mod:`xiaoer.devtools.interactive` (which sets the
    export defaults) on ``model``: no training; ``--domain`` a copy, so that the domain
    export never writes ``domain.yml``."""
    return [sys.executable, "-m", "xiaoer.devtools.interactive", "--model", str(model),
            "--endpoints", str(endpoints), "--port", str(port),
            "--domain", str(domain_copy), "--config", "config.yml", "--data", "data",
            *extra]  # fmt: skip


@dataclass
class ActionServer:
    url: str
    token: str
    proc: subprocess.Popen[bytes] | None = None


@contextmanager
def action_server(root: Path, logs: Path, actions_url: str | None) -> Iterator[ActionServer]:
    """The running action server at ``actions_url`` (its secret as ``xiaoer up`` keeps
    it), else one of our own on a free port with a fresh secret, stopped on exit."""
    if actions_url:
        from xiaoer.core.security import action_token

        yield ActionServer(actions_url.rstrip("/") + "/webhook", action_token())
        return
    port, token = free_port(), secrets.token_urlsafe(32)
    env = {**os.environ, **RASA_ENV, ACTION_TOKEN_ENV: token}
    log = logs / "designer-actions.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xiaoer.servers.actionserver", "--host", "127.0.0.1",
             "--port", str(port), "--actions", "actions"],
            cwd=root, env=env, start_new_session=True,
            stdout=private_log(log), stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(proc)
        if not wait_http(f"http://127.0.0.1:{port}/health", 120, proc):
            raise StartError(f"the action server did not start, see {log}")
        yield ActionServer(f"http://127.0.0.1:{port}/webhook", token, proc)
    finally:
        stop(procs)


def _names(entries: Any) -> list[str]:
    """The names in a domain section: a mapping's keys, or a list of names / one-key
    mappings (``- greet: {use_entities: []}``)."""
    if isinstance(entries, dict):
        return [str(k) for k in entries]
    return [str(next(iter(e)) if isinstance(e, dict) else e) for e in entries or []]


def domain_additions(original: dict[str, Any], exported: dict[str, Any]) -> dict[str, Any]:
    """What an interactive session added to the domain (Rasa's export merges it in)."""
    added: dict[str, Any] = {}
    for key in DOMAIN_KEYS:
        known = set(_names(original.get(key)))
        after = exported.get(key) or []
        new: Any
        if isinstance(after, dict):
            new = {k: v for k, v in after.items() if str(k) not in known}
        else:
            new = [e for e, name in zip(after, _names(after), strict=True) if name not in known]
        if new:
            added[key] = new
    return added


def run(
    kind: str, *, model: Path | None = None, actions_url: str | None = None, extra: list[str]
) -> int:
    """Run ``rasa shell`` or ``rasa interactive`` (``kind``) for a designer."""
    from xiaoer.cli import train
    from xiaoer.core.config import get_settings
    from xiaoer.core.security import private_dir

    settings = get_settings()
    root = settings.root
    logs = private_dir(settings.data_dir / "logs")
    model = model or train()  # the current model; trained only when its inputs changed
    try:
        with (
            tempfile.TemporaryDirectory(prefix=f"xiaoer-{kind}-") as tmp,
            action_server(root, logs, actions_url) as server,
        ):
            work = Path(tmp)
            endpoints = write_endpoints(work / "endpoints.yml", server.url)
            env = {**os.environ, **RASA_ENV, ACTION_TOKEN_ENV: server.token}
            domain = root / "domain.yml"
            if kind == "shell":
                command = shell_command(model, endpoints, free_port(), extra)
            else:
                copy = work / "domain.yml"
                copy.write_bytes(domain.read_bytes())
                command = interactive_command(model, endpoints, free_port_pair(), copy, extra)
            print(f"==> rasa {kind} (model {model.name}, action server {server.url})", flush=True)
            code = call_rasa(command, root, env)
            if kind == "interactive":
                report_domain_export(domain, work / "domain.yml")
            return code
    except StartError as exc:
        print(f"error: {exc}")
        return 1


class Stopped(Exception):
    """SIGTERM or SIGHUP (a closed terminal, a supervisor): stop Rasa and our servers."""


def _stopped(signum: int, frame: object) -> None:
    raise Stopped


def call_rasa(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run Rasa's command in the foreground. Ctrl-C belongs to it (``rasa interactive``
    opens its stop menu with it): a no-op handler here, reset to the default in the
    child. SIGTERM / SIGHUP stop it, and the caller then stops the action server."""
    handlers = {
        sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    signal.signal(signal.SIGTERM, _stopped)
    signal.signal(signal.SIGHUP, _stopped)
    try:
        return subprocess.call(command, cwd=cwd, env=env)  # killed on Stopped
    except Stopped:
        return 143
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def report_domain_export(domain: Path, exported: Path) -> None:
    """Print what the session would have added to domain.yml (which stays untouched)."""
    try:
        original = yaml.safe_load(domain.read_text(encoding="utf-8")) or {}
        after = yaml.safe_load(exported.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return
    added = domain_additions(original, after)
    print(f"==> stories: {STORY_EXPORT}, NLU: {NLU_EXPORT}; domain.yml unchanged")
    if added:
        print("    add these to domain.yml by hand (the session created them):")
        print(yaml.safe_dump(added, allow_unicode=True, sort_keys=False))
