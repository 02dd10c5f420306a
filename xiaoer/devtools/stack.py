"""Start the action server and the Rasa server as real processes on free ports.

Used by the end-to-end tests and the serving benchmark (``xiaoer up`` runs the same
commands on the standard ports).

Every server binds to 127.0.0.1 unless told otherwise (``server.host`` in xiaoer.yml);
secrets (the Rasa HTTP API token, the action server's shared secret) travel in the
environment of the started processes, never on their command lines.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from xiaoer.core.config import PROJECT_ROOT, get_settings
from xiaoer.core.security import ACTION_TOKEN_ENV, ACTION_TOKEN_HEADER, API_TOKEN_ENV

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


DEFAULT_MAX_BODY_KB = 512


def server_settings() -> dict[str, Any]:
    """``server`` of xiaoer.yml: where the servers listen, how big a request may be and how
    many Sanic workers (processes) a Rasa server runs."""
    section = get_settings().section("server")
    return {
        "host": str(section.get("host") or "127.0.0.1"),
        "actions_host": str(section.get("actions_host") or "127.0.0.1"),
        "max_body_kb": int(section.get("max_body_kb") or DEFAULT_MAX_BODY_KB),
        "proxies_count": int(section.get("proxies_count") or 0),
        "workers": max(1, int(section.get("workers") or 1)),
    }


def server_env(
    env: dict[str, str],
    *,
    api_token: str,
    action_token: str,
    max_body_kb: int | None = None,
    proxies_count: int | None = None,
) -> dict[str, str]:
    """The environment of the Rasa and action servers: the secrets, and Sanic's request
    size cap (checked on Content-Length and while streaming, before the body is read)."""
    settings = server_settings()
    kb = settings["max_body_kb"] if max_body_kb is None else max_body_kb
    proxies = settings["proxies_count"] if proxies_count is None else proxies_count
    out = {
        **env,
        API_TOKEN_ENV: api_token,
        ACTION_TOKEN_ENV: action_token,
        "SANIC_REQUEST_MAX_SIZE": str(kb * 1024),
    }
    if proxies:
        out["SANIC_PROXIES_COUNT"] = str(proxies)
    # several Sanic workers per Rasa server (xiaoer/servers/rasaserver.py); the
    # environment wins over xiaoer.yml
    out.setdefault("SANIC_WORKERS", str(settings["workers"]))
    return out


def private_log(path: Path) -> Any:
    """A log file for a child process, readable by its owner only (0600 from creation):
    logs hold conversation ids and, at DEBUG, customer messages."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


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
    action_token: str = ""
    # inbox tokens handed out by the first reply of each REST conversation
    inbox_tokens: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # the servers' environment
    procs: list[subprocess.Popen] = field(default_factory=list)  # stopped at the end

    def kill_actions(self) -> None:
        """The action server dies (SIGKILL, no clean shutdown): fault tests."""
        os.killpg(self.actions.pid, signal.SIGKILL)
        self.actions.wait()

    def restart_actions(self) -> None:
        """Start the action server again, as before (same port, same secret)."""
        log = self.workdir / "actions.log"
        self.actions = subprocess.Popen(
            self.actions.args, cwd=PROJECT_ROOT, env=self.env, start_new_session=True,
            stdout=private_log(log), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.procs.append(self.actions)
        if not wait_http(f"{self.actions_url}/health", 120, self.actions):
            raise StartError(f"the action server did not start again, see {log}")

    @property
    def webhook(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"

    @staticmethod
    def conversation(sender: str) -> str:
        """The conversation (tracker, handoff, lead) id of a REST sender."""
        return f"rest:{sender}"

    def say(self, sender: str, text: str) -> list[dict]:
        r = requests.post(self.webhook, json={"sender": sender, "message": text}, timeout=60)
        r.raise_for_status()
        token = r.headers.get("X-Xiaoer-Inbox-Token")
        if token:
            self.inbox_tokens[sender] = token
        return r.json()

    def inbox(self, sender: str, after: int = 0) -> list[dict]:
        """Messages for a REST conversation outside a request (with its inbox token)."""
        r = requests.get(
            f"{self.rasa_url}/webhooks/rest/inbox",
            params={"sender": sender, "after": str(after)},
            headers={"X-Xiaoer-Inbox-Token": self.inbox_tokens.get(sender, "")},
            timeout=10,
        )
        r.raise_for_status()
        return list(r.json()["messages"])

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(encoding="utf-8", errors="replace")


def write_endpoints(path: Path, actions_port: int, tracker_db: Path, extra: str = "") -> None:
    path.write_text(
        f"""action_endpoint:
  url: "http://127.0.0.1:{actions_port}/webhook"
  headers:
    {ACTION_TOKEN_HEADER}: ${{{ACTION_TOKEN_ENV}}}
tracker_store:
  type: SQL
  dialect: "sqlite"
  db: "{tracker_db}"
{extra}{_event_broker(tracker_db, extra)}""",
        encoding="utf-8",
    )


def _event_broker(tracker_db: Path, extra: str) -> str:
    """Rasa's SQL event broker beside the tracker store (followed by the worker's
    ``events.follow`` job, xiaoer.worker.events)."""
    if "event_broker" in extra:
        return ""
    return f"""
event_broker:
  type: SQL
  dialect: "sqlite"
  db: "{tracker_db.with_name('events.db')}"
"""


def start_worker(
    *,
    endpoints: Path,
    rasa_url: str,
    token: str,
    logs: Path,
    env: dict[str, str],
    procs: list[subprocess.Popen],
) -> subprocess.Popen:
    """``python -m xiaoer.worker`` (``xiaoer worker``: every background job) as a process;
    the API token and the Rasa URL travel in its environment."""
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.worker", "--endpoints", str(endpoints)],
        cwd=PROJECT_ROOT,
        env={**env, API_TOKEN_ENV: token, "XIAOER_RASA_URL": rasa_url},
        start_new_session=True,
        stdout=private_log(logs / "worker.log"),
        stderr=subprocess.STDOUT,
    )
    procs.append(proc)
    return proc


class StartError(RuntimeError):
    """A server did not answer in time; the message names its log."""


def launch_rasa(
    args: list[str], log: Path, env: dict[str, str], procs: list[subprocess.Popen]
) -> subprocess.Popen:
    """``rasa run <args>`` (through xiaoer.servers.rasaserver: the API token comes from the
    environment, not the command line) in its own session, output appended to ``log``;
    the process is appended to ``procs`` at once so that the caller's ``stop`` cleans it
    up."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.servers.rasaserver", *args],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=private_log(log),
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
    action_token: str | None = None,
    host: str | None = None,
    actions_host: str | None = None,
    credentials: Path | None = None,
) -> tuple[subprocess.Popen, subprocess.Popen, float]:
    """Start the action server, wait for it, then the Rasa server, and wait for that.

    Returns both processes and the Rasa server's start time in seconds (model load).

    Started processes are appended to ``procs`` at once, so that the caller's ``stop``
    cleans up even when a start fails."""
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = server_settings()
    host = host or settings["host"]
    actions_host = actions_host or settings["actions_host"]
    env = server_env(env, api_token=token, action_token=action_token or secrets.token_urlsafe(32))
    actions = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.servers.actionserver", "--host", actions_host,
         "--port", str(actions_port), "--actions", "actions"],
        cwd=PROJECT_ROOT, env=env, start_new_session=True,
        stdout=private_log(logs / "actions.log"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(actions)
    if not wait_http(f"http://{local_address(actions_host)}:{actions_port}/health", 120, actions):
        raise StartError(f"the action server did not start, see {logs / 'actions.log'}")
    rasa_args = [
        "--model", str(model), "--interface", host, "--port", str(rasa_port), "--enable-api",
        "--endpoints", str(endpoints),
        "--credentials", str(credentials or PROJECT_ROOT / "credentials.yml"),
    ]  # fmt: skip
    if cors:
        rasa_args += ["--cors", cors]
    started = time.monotonic()
    rasa = launch_rasa(rasa_args, logs / "rasa.log", env, procs)
    if not wait_http(f"http://{local_address(host)}:{rasa_port}/", 300, rasa):
        raise StartError(f"the Rasa server did not start, see {logs / 'rasa.log'}")
    return actions, rasa, time.monotonic() - started


def local_address(host: str) -> str:
    """The address to reach a server bound to ``host`` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


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
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.console", "--host", host, "--port", str(port),
         "--rasa-url", rasa_url],
        cwd=PROJECT_ROOT,
        env={**env, API_TOKEN_ENV: token},
        start_new_session=True,
        stdout=private_log(logs / "console.log"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(proc)
    if not wait_http(f"http://{local_address(host)}:{port}/login", 60, proc):
        raise StartError(f"the agent console did not start, see {logs / 'console.log'}")
    return proc


# test stacks play many customers from one address (127.0.0.1): per-address limits off
# unless a test sets them (``rest=``)
TEST_REST_SETTINGS: dict[str, Any] = {
    "rate_limit": {"per_sender_per_minute": 600, "per_address_per_minute": 0},
    "new_handoffs_per_address_per_hour": 0,
}


def write_settings(workdir: Path, base: Path | None, overrides: dict[str, Any]) -> Path:
    """A copy of xiaoer.yml (or ``base``) with top-level sections updated."""
    raw = yaml.safe_load((base or PROJECT_ROOT / "xiaoer.yml").read_text(encoding="utf-8"))
    for name, section in overrides.items():
        current = raw.get(name)
        if isinstance(current, dict) and isinstance(section, dict) and name != "rest":
            raw[name] = {**current, **section}
        else:
            raw[name] = section
    path = workdir / "xiaoer.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def running_stack(
    model: Path,
    workdir: Path,
    token: str = "test-token",
    endpoints_extra: str = "",
    env_extra: dict[str, str] | None = None,
    console: bool = False,
    action_token: str | None = None,
    rest: dict[str, Any] | None = None,
    credentials_extra: str = "",
    settings: dict[str, Any] | None = None,
    worker: bool = True,
) -> Iterator[Stack]:
    """The action server, the Rasa server and (``worker``) the worker with every background
    job (leads, notifications, re-announcements, Douyin resends), as docs/deployment.md
    runs them, plus the agent console with ``console``."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(workdir / "var"), **(env_extra or {})}
    # one Sanic worker (one model in memory) per test stack unless the test asks for more
    env.setdefault("SANIC_WORKERS", "1")
    base = Path(env["XIAOER_CONFIG"]) if env.get("XIAOER_CONFIG") else None
    sections = {"rest": TEST_REST_SETTINGS if rest is None else rest, **(settings or {})}
    env["XIAOER_CONFIG"] = str(write_settings(workdir, base, sections))
    action_token = action_token or secrets.token_urlsafe(32)
    env = server_env(env, api_token=token, action_token=action_token)
    actions_port, rasa_port = free_port(), free_port()
    endpoints = workdir / "endpoints.yml"
    write_endpoints(endpoints, actions_port, workdir / "tracker.db", endpoints_extra)
    credentials = None
    if credentials_extra:  # more channels (e.g. the Doudian push channel)
        credentials = workdir / "credentials.yml"
        shipped = (PROJECT_ROOT / "credentials.yml").read_text(encoding="utf-8")
        credentials.write_text(f"{shipped}\n{credentials_extra}", encoding="utf-8")
    procs: list[subprocess.Popen] = []
    try:
        try:
            actions, rasa, rasa_seconds = start_servers(
                model, rasa_port=rasa_port, actions_port=actions_port, token=token,
                endpoints=endpoints, logs=workdir, env=env, procs=procs,
                action_token=action_token, credentials=credentials,
            )  # fmt: skip
        except StartError as exc:
            logs = "".join(p.read_text()[-5000:] for p in sorted(workdir.glob("*.log")))
            raise StartError(f"{exc}\n{logs}") from exc
        if worker:
            start_worker(
                endpoints=endpoints, rasa_url=f"http://127.0.0.1:{rasa_port}", token=token,
                logs=workdir, env=env, procs=procs,
            )  # fmt: skip
        console_url = ""
        if console:
            console_port = free_port()
            start_console(
                port=console_port, rasa_url=f"http://127.0.0.1:{rasa_port}", token=token,
                logs=workdir, env=env, procs=procs,
            )  # fmt: skip
            console_url = f"http://127.0.0.1:{console_port}"
        yield Stack(
            console_url=console_url,
            rasa_url=f"http://127.0.0.1:{rasa_port}",
            actions_url=f"http://127.0.0.1:{actions_port}",
            token=token,
            workdir=workdir,
            rasa=rasa,
            actions=actions,
            rasa_start_seconds=rasa_seconds,
            action_token=action_token,
            env=env,
            procs=procs,
        )
    finally:
        stop(procs)
