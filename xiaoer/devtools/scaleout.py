"""The scale-out profile on one machine: PostgreSQL (tracker store, event broker, project
database), Redis (lock store), several action servers and Rasa servers, a worker and the
console, each process with a data folder of its own, as on separate machines.

Used by the scale-out tests and ``bench/scaleout.py``; ``docs/deployment.md`` shows the
same ``endpoints.yml`` for servers on several machines behind a load balancer.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.devtools.services import Postgres, Redis, running_postgres, running_redis
from xiaoer.devtools.stack import (
    RASA_ENV,
    TEST_REST_SETTINGS,
    StartError,
    free_port,
    launch_rasa,
    private_log,
    server_env,
    start_console,
    start_worker,
    stop,
    wait_http,
    write_settings,
)


@dataclass
class ScaleOut:
    postgres: Postgres
    redis: Redis
    actions_urls: list[str]
    rasa_urls: list[str]
    workdir: Path
    database_url: str  # the project database (handoffs, leads, inboxes, …) in PostgreSQL
    console_url: str = ""
    rasa: list[subprocess.Popen] = field(default_factory=list)
    # inbox tokens handed out by the first reply of each REST conversation
    inbox_tokens: dict[str, str] = field(default_factory=dict)

    @property
    def actions_url(self) -> str:
        return self.actions_urls[0]

    def data_dir(self, node: str) -> Path:
        """The private data folder of one process ("rasa-0", "actions-1", "console", "worker")."""
        return self.workdir / node / "var"

    def say(self, replica: int, sender: str, text: str) -> list[dict]:
        url = f"{self.rasa_urls[replica]}/webhooks/rest/webhook"
        r = requests.post(url, json={"sender": sender, "message": text}, timeout=120)
        r.raise_for_status()
        if token := r.headers.get("X-Xiaoer-Inbox-Token"):
            self.inbox_tokens[sender] = token
        return r.json()

    def inbox(self, replica: int, sender: str, after: int = 0) -> list[dict]:
        """Messages for a REST conversation outside a request, read through one replica."""
        r = requests.get(
            f"{self.rasa_urls[replica]}/webhooks/rest/inbox",
            params={"sender": sender, "after": str(after)},
            headers={"X-Xiaoer-Inbox-Token": self.inbox_tokens.get(sender, "")},
            timeout=10,
        )
        r.raise_for_status()
        return list(r.json()["messages"])


ENDPOINTS = PROJECT_ROOT / "deploy" / "endpoints.scale-out.yml"
PROJECT_DB = "xiaoer_app"  # the project's own database, beside the tracker's and the broker's


def endpoints_env(actions_port: int, postgres: Postgres, redis: Redis) -> dict[str, str]:
    """The environment that deploy/endpoints.scale-out.yml reads (the shipped file is the
    one the tests run)."""
    return {
        "XIAOER_ACTIONS_URL": f"http://127.0.0.1:{actions_port}/webhook",
        "XIAOER_PG_HOST": postgres.host,
        "XIAOER_PG_PORT": str(postgres.port),
        "XIAOER_PG_DB": postgres.db,
        "XIAOER_PG_EVENTS_DB": f"{postgres.db}_events",
        "XIAOER_PG_USER": postgres.user,
        "XIAOER_PG_PASSWORD": postgres.password,
        "XIAOER_REDIS_HOST": redis.host,
        "XIAOER_REDIS_PORT": str(redis.port),
    }


def project_database_url(postgres: Postgres) -> str:
    return (
        f"postgresql://{postgres.user}:{postgres.password}@{postgres.host}:{postgres.port}"
        f"/{PROJECT_DB}"
    )


@contextmanager
def running_scale_out(
    model: Path,
    workdir: Path,
    replicas: int = 2,
    token: str = "test-token",
    action_servers: int = 1,
    console: bool = False,
) -> Iterator[ScaleOut]:
    """PostgreSQL + Redis, then ``xiaoer migrate`` and ``xiaoer seed`` once, then
    ``action_servers`` action servers, ``replicas`` Rasa servers (replica i calls action
    server i mod n), one worker and, with ``console``, the agent console.

    As on separate machines, every process has a data folder of its own
    (``workdir/<node>/var``): they share nothing but PostgreSQL (tracker store, event
    broker, project database) and Redis (lock store)."""
    workdir.mkdir(parents=True, exist_ok=True)
    base = server_env(
        {**os.environ, **RASA_ENV}, api_token=token, action_token=secrets.token_urlsafe(32)
    )
    # one test client plays many customers: per-address limits off (as in running_stack)
    base["XIAOER_CONFIG"] = str(write_settings(workdir, None, {"rest": TEST_REST_SETTINGS}))
    procs: list[subprocess.Popen] = []

    def node_env(node: str, **extra: str) -> dict[str, str]:
        data_dir = workdir / node / "var"
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return {**base, "XIAOER_DATA_DIR": str(data_dir), **extra}

    with ExitStack() as services:
        postgres = services.enter_context(
            running_postgres(workdir / "postgres", extra_dbs=("xiaoer_events", PROJECT_DB))
        )
        redis = services.enter_context(running_redis(workdir / "redis"))
        base.update(endpoints_env(0, postgres, redis))
        base["XIAOER_DATABASE_URL"] = project_database_url(postgres)
        try:
            # the schema and the demo shop, once, before any server starts
            for step in (["migrate"], ["seed"]):
                done = subprocess.run(
                    [sys.executable, "-m", "xiaoer.cli", *step], cwd=PROJECT_ROOT,
                    env=node_env("setup"), capture_output=True, text=True, timeout=300,
                )  # fmt: skip
                if done.returncode != 0:
                    raise StartError(f"xiaoer {step[0]} failed:\n{done.stdout}{done.stderr}")
            endpoints = ENDPOINTS
            actions_ports = [free_port() for _ in range(action_servers)]
            for i, port in enumerate(actions_ports):
                node = f"actions-{i}"
                actions = subprocess.Popen(
                    [sys.executable, "-m", "xiaoer.servers.actionserver", "--port", str(port)],
                    cwd=PROJECT_ROOT, env=node_env(node), start_new_session=True,
                    stdout=private_log(workdir / f"{node}.log"),
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
                procs.append(actions)
                if not wait_http(f"http://127.0.0.1:{port}/health", 120, actions):
                    raise StartError(f"the action server did not start, see {workdir}/{node}.log")
            ports = [free_port() for _ in range(replicas)]
            servers = []
            for i, port in enumerate(ports):
                node = f"rasa-{i}"
                actions_url = f"http://127.0.0.1:{actions_ports[i % action_servers]}/webhook"
                servers.append(
                    launch_rasa(
                        [
                            "--model",
                            str(model),
                            "--port",
                            str(port),
                            "--interface",
                            "127.0.0.1",
                            "--enable-api",
                            "--endpoints",
                            str(endpoints),
                            "--credentials",
                            str(PROJECT_ROOT / "credentials.yml"),
                        ],
                        workdir / f"{node}.log",
                        node_env(node, XIAOER_ACTIONS_URL=actions_url),
                        procs,
                    )  # fmt: skip
                )
            start_worker(  # every background job, once for the cluster
                endpoints=endpoints, rasa_url=f"http://127.0.0.1:{ports[0]}", token=token,
                logs=workdir, env=node_env("worker"), procs=procs,
            )  # fmt: skip
            for i, (port, proc) in enumerate(zip(ports, servers, strict=True)):
                if not wait_http(f"http://127.0.0.1:{port}/", 300, proc):
                    log = (workdir / f"rasa-{i}.log").read_text(errors="replace")[-4000:]
                    raise StartError(f"Rasa server {i} did not start:\n{log}")
            console_url = ""
            if console:
                console_port = free_port()
                start_console(
                    port=console_port, rasa_url=f"http://127.0.0.1:{ports[-1]}", token=token,
                    logs=workdir, env=node_env("console"), procs=procs,
                )  # fmt: skip
                console_url = f"http://127.0.0.1:{console_port}"
            yield ScaleOut(
                postgres=postgres,
                redis=redis,
                actions_urls=[f"http://127.0.0.1:{p}" for p in actions_ports],
                rasa_urls=[f"http://127.0.0.1:{p}" for p in ports],
                workdir=workdir,
                database_url=base["XIAOER_DATABASE_URL"],
                console_url=console_url,
                rasa=servers,
            )
        finally:
            stop(procs)
