"""The scale-out profile on one machine: PostgreSQL tracker store, Redis lock store,
one action server and several Rasa servers sharing them.

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
    start_worker,
    stop,
    wait_http,
    write_settings,
)


@dataclass
class ScaleOut:
    postgres: Postgres
    redis: Redis
    actions_url: str
    rasa_urls: list[str]
    workdir: Path
    rasa: list[subprocess.Popen] = field(default_factory=list)

    def say(self, replica: int, sender: str, text: str) -> list[dict]:
        url = f"{self.rasa_urls[replica]}/webhooks/rest/webhook"
        r = requests.post(url, json={"sender": sender, "message": text}, timeout=120)
        r.raise_for_status()
        return r.json()


ENDPOINTS = PROJECT_ROOT / "deploy" / "endpoints.scale-out.yml"


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


@contextmanager
def running_scale_out(
    model: Path, workdir: Path, replicas: int = 2, token: str = "test-token"
) -> Iterator[ScaleOut]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = server_env(
        {**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(workdir / "var")},
        api_token=token,
        action_token=secrets.token_urlsafe(32),
    )
    # one test client plays many customers: per-address limits off (as in running_stack)
    env["XIAOER_CONFIG"] = str(write_settings(workdir, None, {"rest": TEST_REST_SETTINGS}))
    procs: list[subprocess.Popen] = []

    def launch(args: list[str], log: str) -> subprocess.Popen:
        return launch_rasa(args, workdir / log, env, procs)

    with ExitStack() as services:
        postgres = services.enter_context(
            running_postgres(workdir / "postgres", extra_dbs=("xiaoer_events",))
        )
        redis = services.enter_context(running_redis(workdir / "redis"))
        try:
            actions_port = free_port()
            endpoints = ENDPOINTS
            env.update(endpoints_env(actions_port, postgres, redis))
            actions = subprocess.Popen(
                [sys.executable, "-m", "xiaoer.servers.actionserver", "--port", str(actions_port)],
                cwd=PROJECT_ROOT, env=env, start_new_session=True,
                stdout=private_log(workdir / "actions.log"),
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs.append(actions)
            if not wait_http(f"http://127.0.0.1:{actions_port}/health", 120, actions):
                raise StartError(f"the action server did not start, see {workdir}/actions.log")
            ports = [free_port() for _ in range(replicas)]
            servers = [
                launch(
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
                    f"rasa-{i}.log",
                )  # fmt: skip
                for i, port in enumerate(ports)
            ]
            start_worker(  # every background job, once for the cluster
                endpoints=endpoints, rasa_url=f"http://127.0.0.1:{ports[0]}", token=token,
                logs=workdir, env=env, procs=procs,
            )  # fmt: skip
            for i, (port, proc) in enumerate(zip(ports, servers, strict=True)):
                if not wait_http(f"http://127.0.0.1:{port}/", 300, proc):
                    log = (workdir / f"rasa-{i}.log").read_text(errors="replace")[-4000:]
                    raise StartError(f"Rasa server {i} did not start:\n{log}")
            yield ScaleOut(
                postgres=postgres,
                redis=redis,
                actions_url=f"http://127.0.0.1:{actions_port}",
                rasa_urls=[f"http://127.0.0.1:{p}" for p in ports],
                workdir=workdir,
                rasa=servers,
            )
        finally:
            stop(procs)
