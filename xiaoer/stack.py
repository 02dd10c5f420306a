"""Start the action server and the Rasa server as real processes on free ports.

Used by the end-to-end tests and the serving benchmark (``xiaoer up`` runs the same
commands on the standard ports).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from xiaoer.config import PROJECT_ROOT

RASA_ENV = {
    "RASA_TELEMETRY_ENABLED": "false",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONWARNINGS": "ignore",
    # Sanic closes a new connection whose request has not arrived within its keep-alive
    # timeout (5 s); a busy Rasa server (50 conversations at once) can take longer between
    # connecting to the action server and writing the request, and the action then fails
    "SANIC_KEEP_ALIVE_TIMEOUT": "75",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rasa_bin() -> str:
    return str(Path(sys.executable).with_name("rasa"))


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.3)
    return False


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@dataclass
class Stack:
    rasa_url: str
    actions_url: str
    token: str
    workdir: Path
    rasa: subprocess.Popen
    actions: subprocess.Popen
    rasa_start_seconds: float = 0.0
    backend: str = "sqlite"
    fake: Any = None  # the fake platform a test started beside the stack, if any
    console_url: str = ""  # the agent console, when started (running_stack(console=True))

    @property
    def webhook(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"

    def say(self, sender: str, text: str) -> list[dict]:
        r = requests.post(self.webhook, json={"sender": sender, "message": text}, timeout=60)
        r.raise_for_status()
        return r.json()

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(encoding="utf-8", errors="replace")


def write_endpoints(path: Path, actions_port: int, tracker_db: Path, extra: str = "") -> None:
    path.write_text(
        f"""action_endpoint:
  url: "http://localhost:{actions_port}/webhook"
tracker_store:
  type: SQL
  dialect: "sqlite"
  db: "{tracker_db}"
{extra}{_event_broker(tracker_db, extra)}""",
        encoding="utf-8",
    )


def _event_broker(tracker_db: Path, extra: str) -> str:
    """Rasa's SQL event broker beside the tracker store (followed by xiaoer.events)."""
    if "event_broker" in extra:
        return ""
    return f"""
event_broker:
  type: SQL
  dialect: "sqlite"
  db: "{tracker_db.with_name('events.db')}"
"""


def start_event_follower(
    endpoints: Path, logs: Path, env: dict[str, str], procs: list[subprocess.Popen]
) -> subprocess.Popen:
    """``python -m xiaoer.events`` (lead capture, CRM deliveries) as a process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.events", "--endpoints", str(endpoints), "--interval", "0.2"],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=open(logs / "events.log", "ab"),  # noqa: SIM115 - owned by the child process
        stderr=subprocess.STDOUT,
    )
    procs.append(proc)
    return proc


class StartError(RuntimeError):
    """A server did not answer in time; the message names its log."""


def launch_rasa(
    args: list[str], log: Path, env: dict[str, str], procs: list[subprocess.Popen]
) -> subprocess.Popen:
    """``rasa run <args>`` in its own session, output appended to ``log``; the process is
    appended to ``procs`` at once so that the caller's ``stop`` cleans it up."""
    proc = subprocess.Popen(
        [rasa_bin(), "run", *args],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=open(log, "ab"),  # noqa: SIM115 - owned by the child process
        stderr=subprocess.STDOUT,
    )
    procs.append(proc)
    return proc


def start_servers(
    model: Path,
    *,
    rasa_port: int,
    actions_port: int,
    token: str,
    endpoints: Path,
    logs: Path,
    env: dict[str, str],
    procs: list[subprocess.Popen],
    cors: str | None = None,
) -> tuple[subprocess.Popen, subprocess.Popen, float]:
    """Start the action server, wait for it, then the Rasa server, and wait for that.

    Returns both processes and the Rasa server's start time in seconds (model load).

    Started processes are appended to ``procs`` at once, so that the caller's ``stop``
    cleans up even when a start fails."""
    logs.mkdir(parents=True, exist_ok=True)

    def launch(args: list[str], log: str) -> subprocess.Popen:
        return launch_rasa(args, logs / log, env, procs)

    actions = launch(
        ["actions", "--port", str(actions_port), "--actions", "actions"], "actions.log"
    )
    if not wait_http(f"http://localhost:{actions_port}/health", 120, actions):
        raise StartError(f"the action server did not start, see {logs / 'actions.log'}")
    rasa_args = [
        "--model", str(model), "--port", str(rasa_port), "--enable-api", "--auth-token", token,
        "--endpoints", str(endpoints), "--credentials", str(PROJECT_ROOT / "credentials.yml"),
    ]  # fmt: skip
    if cors:
        rasa_args += ["--cors", cors]
    started = time.monotonic()
    rasa = launch(rasa_args, "rasa.log")
    if not wait_http(f"http://localhost:{rasa_port}/", 300, rasa):
        raise StartError(f"the Rasa server did not start, see {logs / 'rasa.log'}")
    return actions, rasa, time.monotonic() - started


def start_console(
    *,
    port: int,
    rasa_url: str,
    token: str,
    logs: Path,
    env: dict[str, str],
    procs: list[subprocess.Popen],
    host: str = "127.0.0.1",
) -> subprocess.Popen:
    """Start the agent console (sanic, ``python -m xiaoer.console``) and wait for it."""
    logs.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.console", "--host", host, "--port", str(port),
         "--rasa-url", rasa_url],
        cwd=PROJECT_ROOT,
        env={**env, "XIAOER_API_TOKEN": token},
        start_new_session=True,
        stdout=open(logs / "console.log", "ab"),  # noqa: SIM115 - owned by the child process
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(proc)
    if not wait_http(f"http://{host}:{port}/login", 60, proc):
        raise StartError(f"the agent console did not start, see {logs / 'console.log'}")
    return proc


@contextmanager
def running_stack(
    model: Path,
    workdir: Path,
    token: str = "test-token",
    endpoints_extra: str = "",
    env_extra: dict[str, str] | None = None,
    console: bool = False,
) -> Iterator[Stack]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(workdir / "var"), **(env_extra or {})}
    actions_port, rasa_port = free_port(), free_port()
    endpoints = workdir / "endpoints.yml"
    write_endpoints(endpoints, actions_port, workdir / "tracker.db", endpoints_extra)
    procs: list[subprocess.Popen] = []
    try:
        try:
            actions, rasa, rasa_seconds = start_servers(
                model, rasa_port=rasa_port, actions_port=actions_port, token=token,
                endpoints=endpoints, logs=workdir, env=env, procs=procs,
            )  # fmt: skip
        except StartError as exc:
            logs = "".join(p.read_text()[-5000:] for p in sorted(workdir.glob("*.log")))
            raise StartError(f"{exc}\n{logs}") from exc
        start_event_follower(endpoints, workdir, env, procs)
        console_url = ""
        if console:
            console_port = free_port()
            start_console(
                port=console_port, rasa_url=f"http://localhost:{rasa_port}", token=token,
                logs=workdir, env=env, procs=procs,
            )  # fmt: skip
            console_url = f"http://127.0.0.1:{console_port}"
        yield Stack(
            console_url=console_url,
            rasa_url=f"http://localhost:{rasa_port}",
            actions_url=f"http://localhost:{actions_port}",
            token=token,
            workdir=workdir,
            rasa=rasa,
            actions=actions,
            rasa_start_seconds=rasa_seconds,
        )
    finally:
        stop(procs)
