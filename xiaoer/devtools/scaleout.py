"""The scale-out profile on one machine: PostgreSQL (tracker store, event broker, project
database), Redis (lock store), several action servers and Rasa servers, a worker and the
console, each process with a data folder of its own, as on separate machines.

Used by the scale-out tests and ``bench/scaleout.py``; ``docs/deployment.md`` shows the
same ``endpoints.yml`` for servers on several machines behind a load balancer.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests
from sqlalchemy.engine import make_url

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.devtools.services import Postgres, Redis, running_postgres, running_redis
from xiaoer.devtools.stack import (
    RASA_ENV,
    TEST_REST_SETTINGS,
    StartError,
    free_port,
    private_log,
    server_env,
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
    # how each replica was started (argv, environment, log): fault tests restart them
    launches: list[tuple[list[str], dict[str, str], Path]] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)  # stopped at the end

    def kill_replica(self, replica: int) -> None:
        """Rasa server ``replica`` dies at once (SIGKILL: no clean shutdown)."""
        proc = self.rasa[replica]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart_replica(self, replica: int, wait: bool = True) -> None:
        """Start Rasa server ``replica`` again with its command, on its port."""
        argv, env, log = self.launches[replica]
        self.rasa[replica] = launch(argv, log, env, self.procs)
        if wait and not wait_http(f"{self.rasa_urls[replica]}/", 300, self.rasa[replica]):
            raise StartError(f"Rasa server {replica} did not start again, see {log}")

    def log(self, node: str) -> str:
        return (self.workdir / f"{node}.log").read_text(encoding="utf-8", errors="replace")

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
DOC = PROJECT_ROOT / "docs" / "deployment.md"
# the steps of docs/deployment.md's scale-out section, in the order they run
STEPS = ("role", "env", "migrate", "seed", "actions", "replica", "worker", "console")
_STEP = re.compile(r"<!--\s*run:\s*scale-out\s+(\w+)\s*-->\s*\n```\w*\n(.*?)\n```", re.S)
_PLACEHOLDER = re.compile(r"…|<[^<>]+>")
# the variables whose values in the doc are examples of the operator's machines
MACHINE_VALUES = {
    "XIAOER_PG_HOST", "XIAOER_PG_PORT", "XIAOER_PG_PASSWORD", "XIAOER_DATABASE_URL",
    "XIAOER_REDIS_HOST", "XIAOER_REDIS_PORT", "XIAOER_ACTIONS_URL", "XIAOER_API_TOKEN",
    "XIAOER_ACTION_TOKEN", "XIAOER_RASA_URL",
}  # fmt: skip


def documented_steps(doc: Path = DOC) -> dict[str, str]:
    """The blocks of docs/deployment.md marked ``<!-- run: scale-out STEP -->``."""
    found = {m.group(1): m.group(2) for m in _STEP.finditer(doc.read_text(encoding="utf-8"))}
    missing = [step for step in STEPS if step not in found]
    if missing:
        raise StartError(f"{doc} has no block marked <!-- run: scale-out {missing[0]} -->")
    return found


def shell_lines(block: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", block)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def command(
    block: str, fill: dict[str, str], port: int | None = None
) -> tuple[dict[str, str], list[str]]:
    """The one command of a block as (leading VAR=value assignments, argv): ``.venv/bin/X``
    is this virtualenv's X, the placeholders (``<private address>``…) are replaced with
    ``fill``'s values and ``--port``'s value with ``port``."""
    for placeholder, value in fill.items():
        block = block.replace(placeholder, shlex.quote(value))
    lines = shell_lines(block)
    if len(lines) != 1:
        raise StartError(f"expected one command in the documented block:\n{block}")
    words = lines[0]
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    argv: list[str] = []
    for i, word in enumerate(words):
        if word.startswith(".venv/bin/"):
            word = str(Path(sys.executable).with_name(word.removeprefix(".venv/bin/")))
        elif i and words[i - 1] == "--port" and port is not None:
            word = str(port)
        argv.append(word)
    if left := [w for w in [*env.values(), *argv] if _PLACEHOLDER.search(w)]:
        raise StartError(f"docs/deployment.md: nothing to fill {left[0]!r} with")
    return env, argv


def documented_env(block: str, values: dict[str, str]) -> dict[str, str]:
    """The variables the doc's export block sets: example values of the operator's machines
    (hosts, ports, secrets, URLs) replaced by ``values``, the others (database names, the
    user) as written."""
    env: dict[str, str] = {}
    for words in shell_lines(block):
        if words[0] != "export":
            raise StartError(f"the environment block has a line that is not an export: {words}")
        for word in words[1:]:
            name, _, value = word.partition("=")
            if name == "XIAOER_DATABASE_URL":
                url = make_url(value)
                value = url.set(host=values["XIAOER_PG_HOST"], port=int(values["XIAOER_PG_PORT"]),
                                password=values["XIAOER_PG_PASSWORD"]).render_as_string(False)  # fmt: skip
            elif name in MACHINE_VALUES:
                if name not in values:
                    raise StartError(f"the profile has no value for {name}")
                value = values[name]
            elif _PLACEHOLDER.search(value):
                raise StartError(f"docs/deployment.md: nothing to fill {name}={value} with")
            env[name] = value
    yaml = re.sub(r"#.*", "", ENDPOINTS.read_text(encoding="utf-8"))  # not the comments
    needed = set(re.findall(r"\$\{(\w+)\}", yaml))
    needed |= {"XIAOER_API_TOKEN", "XIAOER_ACTION_TOKEN", "XIAOER_DATABASE_URL"}
    if missing := sorted(needed - set(env)):
        raise StartError(f"docs/deployment.md's export block misses {', '.join(missing)}")
    return env


def create_role(block: str, postgres: Postgres, password: str) -> str:
    """Run the doc's role statement as the superuser; returns the role's name."""
    import psycopg2

    sql = "\n".join(line.split("--", 1)[0] for line in block.splitlines())
    statements = [s.strip() for s in sql.split(";") if s.strip()]
    role = next((m.group(1) for s in statements if (m := re.match(r"CREATE ROLE (\w+)", s))), None)
    if role is None:
        raise StartError("docs/deployment.md's role block creates no role")
    conn = psycopg2.connect(
        host=postgres.host, port=postgres.port, dbname=postgres.db, user=postgres.user,
        password=postgres.password,
    )  # fmt: skip
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement.replace("'…'", "%s"), (password,) * statement.count("'…'"))
    finally:
        conn.close()
    return role


def launch(
    argv: list[str], log: Path, env: dict[str, str], procs: list[subprocess.Popen]
) -> subprocess.Popen:
    proc = subprocess.Popen(
        argv, cwd=PROJECT_ROOT, env=env, start_new_session=True,
        stdout=private_log(log), stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(proc)
    return proc


@contextmanager
def running_scale_out(
    model: Path,
    workdir: Path,
    replicas: int = 2,
    token: str = "test-token",
    action_servers: int = 1,
    console: bool = False,
    env: dict[str, str] | None = None,
    settings: dict[str, Any] | None = None,
) -> Iterator[ScaleOut]:
    """The scale-out section of docs/deployment.md, run as written on one machine: a fresh
    PostgreSQL (only a superuser) and Redis; the documented role (``CREATEDB``), the
    documented environment, ``xiaoer migrate --endpoints …`` (creates the databases and
    tables) and ``xiaoer seed`` once; then ``action_servers`` action servers, ``replicas``
    Rasa servers started at the same moment (replica i calls action server i mod n), one
    worker and, with ``console``, the agent console — each with the documented command.
    ``settings`` overrides sections of xiaoer.yml.

    As on separate machines, every process has a data folder of its own
    (``workdir/<node>/var``): they share nothing but PostgreSQL (tracker store, event
    broker, project database) and Redis (lock store). ``env``: more variables for every
    process (e.g. ``SANIC_WORKERS``; bench/load.py's stock set-up; a fake platform's
    address)."""
    workdir.mkdir(parents=True, exist_ok=True)
    steps = documented_steps()
    # the test environment, without any XIAOER_* of the caller: the doc's variables only
    base = {k: v for k, v in {**os.environ, **RASA_ENV}.items() if not k.startswith("XIAOER_")}
    base.setdefault("SANIC_WORKERS", "1")  # one model per replica unless asked (memory)
    base.update(env or {})
    base = server_env(base, api_token=token, action_token="")
    base.pop("XIAOER_API_TOKEN"), base.pop("XIAOER_ACTION_TOKEN")
    # one test client plays many customers: per-address limits off (as in running_stack)
    sections = {"rest": TEST_REST_SETTINGS, **(settings or {})}
    base["XIAOER_CONFIG"] = str(write_settings(workdir, None, sections))
    procs: list[subprocess.Popen] = []

    def node_env(node: str, **extra: str) -> dict[str, str]:
        data_dir = workdir / node / "var"
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return {**base, "XIAOER_DATA_DIR": str(data_dir), **extra}

    with ExitStack() as services:
        admin = services.enter_context(
            running_postgres(workdir / "postgres", db=None, user="postgres")
        )
        redis = services.enter_context(running_redis(workdir / "redis"))
        password = secrets.token_urlsafe(16)
        user = create_role(steps["role"], admin, password)
        actions_ports = [free_port() for _ in range(action_servers)]
        base.update(documented_env(steps["env"], {
            "XIAOER_PG_HOST": admin.host, "XIAOER_PG_PORT": str(admin.port),
            "XIAOER_PG_PASSWORD": password, "XIAOER_REDIS_HOST": redis.host,
            "XIAOER_REDIS_PORT": str(redis.port),
            "XIAOER_ACTIONS_URL": f"http://127.0.0.1:{actions_ports[0]}/webhook",
            "XIAOER_API_TOKEN": token, "XIAOER_ACTION_TOKEN": secrets.token_urlsafe(32),
        }))  # fmt: skip
        if base["XIAOER_PG_USER"] != user:
            raise StartError(
                f"the doc creates the role {user} but exports XIAOER_PG_USER={base['XIAOER_PG_USER']}"
            )
        postgres = replace(admin, db=base["XIAOER_PG_DB"], user=user, password=password)
        try:
            # the databases, the schema, Rasa's tables and the demo shop, once, before any
            # server starts
            for step in ("migrate", "seed"):
                extra, argv = command(steps[step], {})
                done = subprocess.run(
                    argv, cwd=PROJECT_ROOT, env={**node_env("setup"), **extra},
                    capture_output=True, text=True, timeout=300,
                )  # fmt: skip
                (workdir / f"{step}.log").write_text(done.stdout + done.stderr)
                if done.returncode != 0:
                    raise StartError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
            address = {"<private address>": "127.0.0.1"}
            for i, port in enumerate(actions_ports):
                node = f"actions-{i}"
                extra, argv = command(steps["actions"], address, port)
                actions = launch(argv, workdir / f"{node}.log", {**node_env(node), **extra}, procs)
                if not wait_http(f"http://127.0.0.1:{port}/health", 120, actions):
                    raise StartError(f"the action server did not start, see {workdir}/{node}.log")
            ports = [free_port() for _ in range(replicas)]
            servers = []
            launches = []
            for i, port in enumerate(ports):  # all at once, as replicas behind a balancer
                node = f"rasa-{i}"
                actions_url = f"http://127.0.0.1:{actions_ports[i % action_servers]}/webhook"
                fill = {**address, "models/<model>.tar.gz": str(model)}
                extra, argv = command(steps["replica"], fill, port)
                env = {**node_env(node), **extra, "XIAOER_ACTIONS_URL": actions_url}
                launches.append((argv, env, workdir / f"{node}.log"))
                servers.append(launch(argv, workdir / f"{node}.log", env, procs))
            for i, (port, proc) in enumerate(zip(ports, servers, strict=True)):
                if not wait_http(f"http://127.0.0.1:{port}/", 300, proc):
                    log = (workdir / f"rasa-{i}.log").read_text(errors="replace")[-4000:]
                    raise StartError(f"Rasa server {i} did not start:\n{log}")
            balancer = {"<a replica or the load balancer>:5005": f"127.0.0.1:{ports[0]}"}
            extra, argv = command(steps["worker"], balancer)
            launch(argv, workdir / "worker.log", {**node_env("worker"), **extra}, procs)
            console_url = ""
            if console:
                console_port = free_port()
                last = {"<a replica or the load balancer>:5005": f"127.0.0.1:{ports[-1]}"}
                extra, argv = command(steps["console"], {**address, **last}, console_port)
                proc = launch(
                    argv, workdir / "console.log", {**node_env("console"), **extra}, procs
                )
                if not wait_http(f"http://127.0.0.1:{console_port}/login", 120, proc):
                    raise StartError(f"the agent console did not start, see {workdir}/console.log")
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
                launches=launches,
                procs=procs,
            )
        finally:
            stop(procs)
