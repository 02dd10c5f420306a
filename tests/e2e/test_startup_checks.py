"""End-to-end: nothing starts half-working. What a merchant or an operator sees when a
store, the backend's credentials or a port is missing (exit code and one clear line), the
start banner of ``xiaoer up``, and the readiness endpoint a load balancer polls."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from xiaoer.core.config import PROJECT_ROOT
from xiaoer.devtools.stack import RASA_ENV, free_port, write_endpoints

pytestmark = [pytest.mark.e2e]

needs_postgres = pytest.mark.skipif(
    not Path("/usr/lib/postgresql/15/bin/initdb").exists(),
    reason="PostgreSQL not installed (scripts/system-deps.sh installs it)",
)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **RASA_ENV, "XIAOER_DATA_DIR": str(tmp_path / "var")}
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("XIAOER_BACKEND", "XIAOER_DATABASE_URL", "XIAOER_CONFIG"):
        env.pop(name, None)
    env.update(extra)
    return env


def _xiaoer(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xiaoer.cli", *args], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from xiaoer.devtools.services import running_postgres

    with running_postgres(tmp_path_factory.mktemp("pg")) as pg:
        yield pg


@needs_postgres
@pytest.mark.model
def test_rasa_server_with_a_tracker_database_that_does_not_exist_stops_with_the_reason(
    tmp_path, postgres, trained_model
):
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        f"""tracker_store:
  type: SQL
  dialect: "postgresql"
  url: {postgres.host}
  port: {postgres.port}
  db: xiaoer_missing
  username: {postgres.user}
  password: ${{XIAOER_PG_PASSWORD}}
""",
        encoding="utf-8",
    )
    env = _env(tmp_path, XIAOER_PG_PASSWORD=postgres.password, XIAOER_API_TOKEN="t")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "xiaoer.servers.rasaserver", "--model", str(trained_model),
         "--endpoints", str(endpoints), "--port", str(free_port()), "--interface", "127.0.0.1",
         "--enable-api"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert "tracker store unreachable" in out
    assert 'database "xiaoer_missing" does not exist' in out
    assert (
        f"createdb -h {postgres.host} -p {postgres.port} -U {postgres.user} xiaoer_missing" in out
    )
    assert "up and running" not in out  # Rasa never started (no in-memory fallback)
    assert postgres.password not in out
    assert time.monotonic() - started < 120  # it stops before loading the model


def test_xiaoer_up_with_doudian_and_no_credentials_stops_with_the_config_error(tmp_path):
    env = _env(tmp_path, XIAOER_BACKEND="doudian", XIAOER_DOUDIAN_BASE_URL="http://127.0.0.1:9")
    for name in ("APP_KEY", "APP_SECRET", "ACCESS_TOKEN"):
        env.pop(f"XIAOER_DOUDIAN_{name}", None)
    done = _xiaoer(["up", "--port", str(free_port()), "--actions-port", str(free_port()),
                    "--console-port", "0"], env)  # fmt: skip
    assert done.returncode != 0
    assert "启动检查未通过" in done.stdout
    assert (
        "shop backend doudian: environment variables XIAOER_DOUDIAN_APP_KEY, "
        "XIAOER_DOUDIAN_APP_SECRET, XIAOER_DOUDIAN_ACCESS_TOKEN are not set" in done.stdout
    )
    assert "店小二已启动" not in done.stdout
    assert not (tmp_path / "var" / "logs" / "actions.log").exists()  # nothing was started


def test_xiaoer_up_names_the_taken_port_and_its_process(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _xiaoer(["up", "--port", str(free_port()), "--actions-port", str(port),
                        "--console-port", "0"], _env(tmp_path))  # fmt: skip
    assert done.returncode != 0
    assert "端口已被占用" in done.stdout
    assert f"{port} (action server, used by python" in done.stdout
    assert f"pid {os.getpid()}" in done.stdout
    assert "店小二已启动" not in done.stdout


def _ctrl_c_as_in_a_terminal() -> None:
    """Ctrl-C reaches `xiaoer up` as it does in a terminal. A suite started in the
    background by a non-interactive shell (`make test &`, nohup, some CI runners) has
    SIGINT ignored, and an ignored signal stays ignored in every child: Python then never
    raises KeyboardInterrupt and the servers would keep running."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _read_until(proc: subprocess.Popen, marker: str, timeout: float) -> str:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen += line
        if marker in line:
            # the lines printed right after the banner
            time.sleep(0.5)
            while not lines.empty():
                seen += lines.get() or ""
            break
    return seen


def _ready(url: str) -> requests.Response:
    return requests.get(f"{url}/webhooks/health/ready", timeout=30)


@needs_postgres
@pytest.mark.model
def test_xiaoer_up_banner_and_readiness_until_the_project_database_is_gone(
    tmp_path, postgres, trained_model
):
    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE xiaoer_up_app"))
    app_url = postgres.url.rsplit("/", 1)[0] + "/xiaoer_up_app"
    rasa_port, actions_port = free_port(), free_port()
    endpoints = tmp_path / "endpoints.yml"
    write_endpoints(endpoints, actions_port, tmp_path / "tracker.db")
    env = _env(tmp_path, XIAOER_DATABASE_URL=app_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xiaoer.cli", "up", "--port", str(rasa_port), "--actions-port",
         str(actions_port), "--console-port", "0", "--model", str(trained_model),
         "--endpoints", str(endpoints)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal,
    )  # fmt: skip
    try:
        out = _read_until(proc, "店小二已启动", 400)
        assert "店小二已启动 ✅" in out, out[-4000:]
        banner = out[out.index("店铺后台") :]
        assert "店铺后台 backend:        sqlite (演示店铺 demo shop)" in banner
        assert "渠道 channels:           rest, test_chat, douyin（未配置 not configured: " in banner
        assert f"项目数据库 project db:   postgresql://{postgres.user}:***@" in banner
        assert "xiaoer_up_app" in banner and postgres.password not in out
        assert f"sqlite:///{tmp_path / 'tracker.db'}" in banner
        assert f"sqlite:///{tmp_path / 'events.db'}" in banner
        assert f"模型 model:              {trained_model.name}" in banner
        assert "后台任务 worker:         running" in banner
        assert banner.index("模型 model") < banner.index("店小二已启动")

        rasa = f"http://127.0.0.1:{rasa_port}"
        ready = _ready(rasa)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "ready": True, "model": trained_model.name, "tracker_store": "ok",
            "project_db": "ok", "backend": "ok",
        }  # fmt: skip

        with admin.connect() as conn:  # the project database disappears
            conn.execute(text("DROP DATABASE xiaoer_up_app WITH (FORCE)"))
        deadline = time.monotonic() + 60
        while (ready := _ready(rasa)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(1)
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert body["ready"] is False and body["tracker_store"] == "ok"
        assert body["project_db"] == "database missing"
        assert "xiaoer_up_app" not in ready.text  # addresses stay in the log
        assert "project_db failing: project database unreachable" in (
            tmp_path / "var" / "logs" / "rasa.log"
        ).read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        admin.dispose()
    assert proc.returncode == 0  # Ctrl-C stops everything cleanly
