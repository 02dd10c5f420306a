"""Start-up checks (xiaoer/core/startup.py): the one line an operator reads when something a
process needs is missing, and the banner of ``xiaoer up``. The servers are covered end to
end in tests/e2e/test_startup_checks.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from xiaoer.core import migrate, startup
from xiaoer.core.startup import StartupError, StoreInfo

ROOT = Path(__file__).resolve().parents[2]


def test_a_file_that_is_not_a_model_archive_is_refused_before_rasa_loads_it(tmp_path):
    broken = tmp_path / "model.tar.gz"
    broken.write_bytes(b"not a model")
    with pytest.raises(StartupError, match="is not a Rasa model archive"):
        startup.check_model(broken)
    with pytest.raises(StartupError, match="model not found: .*xiaoer train"):
        startup.check_model(tmp_path / "missing.tar.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StartupError, match="no model in"):
        startup.check_model(tmp_path / "empty")


@pytest.mark.model
def test_the_trained_model_passes_and_a_folder_means_its_newest_model(trained_model):
    assert startup.check_model(trained_model) == trained_model
    assert startup.check_model(trained_model.parent).suffixes[-2:] == [".tar", ".gz"]


def test_a_taken_port_is_named_with_the_process_holding_it():
    import os
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as raised:
            startup.check_ports({"Rasa server": port, "agent console": 0})
    assert f"{port} (Rasa server, used by python" in str(raised.value)
    assert f"pid {os.getpid()}" in str(raised.value)
    startup.check_ports({"Rasa server": port})  # free again


def test_doudian_without_credentials_names_every_missing_variable(data_dir, monkeypatch):
    from xiaoer.core.config import get_settings

    monkeypatch.setenv("XIAOER_BACKEND", "doudian")
    for name in ("APP_KEY", "APP_SECRET", "ACCESS_TOKEN"):
        monkeypatch.delenv(f"XIAOER_DOUDIAN_{name}", raising=False)
    monkeypatch.setenv("XIAOER_DOUDIAN_APP_SECRET", "s")
    get_settings.cache_clear()
    with pytest.raises(StartupError) as raised:
        startup.check_backend(get_settings())
    assert str(raised.value) == (
        "shop backend doudian: environment variables XIAOER_DOUDIAN_APP_KEY, "
        "XIAOER_DOUDIAN_ACCESS_TOKEN are not set (backend.doudian.app_key_env, "
        "access_token_env in xiaoer.yml)"
    )
    assert raised.value.short == "missing credentials"


def test_the_demo_shop_backend_answers_its_test_call(data_dir):
    from xiaoer.core.config import get_settings

    assert startup.check_backend(get_settings()) == "sqlite (演示店铺 demo shop)"


def test_a_slow_backend_fails_the_check_within_its_timeout():
    class Slow:
        async def get_order(self, order_id: str) -> None:
            await asyncio.sleep(5)

    with pytest.raises(StartupError, match=r"did not answer within 0.2 s") as raised:
        asyncio.run(startup.probe_backend(Slow(), 0.2, "doudian"))
    assert raised.value.short == "timeout"


def test_project_database_sqlite_is_migrated_postgresql_behind_says_run_migrate(empty_db):
    if empty_db.dialect == "sqlite":
        assert startup.check_project_db(db=empty_db).startswith("sqlite:///")
        assert migrate.check(empty_db)
        return
    with pytest.raises(StartupError) as raised:
        startup.check_project_db(db=empty_db)
    assert "is at revision none" in str(raised.value)
    assert "run `xiaoer migrate`" in str(raised.value)


def test_a_tracker_database_that_does_not_exist_is_named_with_the_command_creating_it(
    tmp_path, postgres_server, monkeypatch
):
    pg = postgres_server
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        f"tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: {pg.host}\n"
        f"  port: {pg.port}\n  db: nowhere\n  username: {pg.user}\n"
        "  password: ${PG_SECRET}\n"
        "action_endpoint:\n  url: http://127.0.0.1:1/webhook\n  headers:\n"
        "    X-Xiaoer-Action-Token: ${NOT_SET_HERE}\n",
        encoding="utf-8",
    )
    with pytest.raises(
        StartupError, match=r"tracker_store needs the environment variable\(s\) PG_SECRET"
    ):
        startup.check_endpoint_stores(endpoints)
    monkeypatch.setenv("PG_SECRET", pg.password)
    with pytest.raises(StartupError) as raised:
        startup.check_endpoint_stores(endpoints)
    message = str(raised.value)
    assert message.startswith(f"tracker store unreachable: postgresql://{pg.user}:***@")
    assert 'database "nowhere" does not exist' in message
    assert f"createdb -h {pg.host} -p {pg.port} -U {pg.user} nowhere" in message
    assert pg.password not in message
    assert raised.value.short == "database missing"


def test_rasa_never_falls_back_to_memory_when_the_tracker_store_fails(monkeypatch):
    from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker

    from xiaoer.servers.rasaserver import refuse_memory_fallback

    class Broken(InMemoryTrackerStore):
        async def save(self, tracker: DialogueStateTracker) -> None:
            raise ConnectionError('database "xiaoer" does not exist')

    for name in ("on_tracker_store_error", "on_tracker_store_retrieve_error"):
        monkeypatch.setattr(FailSafeTrackerStore, name, getattr(FailSafeTrackerStore, name))
    refuse_memory_fallback()
    store = FailSafeTrackerStore(Broken(Domain.empty()))
    with pytest.raises(ConnectionError, match="does not exist"):
        asyncio.run(store.save(DialogueStateTracker("rest:a", [])))
    assert store._fallback_tracker_store is None  # nothing kept in memory


def test_the_banner_says_backend_channels_stores_model_and_worker(monkeypatch):
    for name in ("CLIENT_KEY", "CLIENT_SECRET", "ACCOUNT_OPEN_ID", "ACCESS_TOKEN"):
        monkeypatch.setenv(f"XIAOER_DOUYIN_{name}", "x")
    text = startup.banner(
        backend="doudian (openapi-fxg.jinritemai.com)",
        credentials=ROOT / "credentials.yml",
        project_db="postgresql://xiaoer:***@db.internal:5432/xiaoer_app",
        stores=[StoreInfo("tracker_store", "sqlite:///var/tracker.db")],
        model=Path("models/20261130-000000-x.tar.gz"),
        worker="running",
    )
    assert "店铺后台 backend:        doudian (openapi-fxg.jinritemai.com)" in text
    assert "渠道 channels:           rest, test_chat, douyin\n" in text
    assert "项目数据库 project db:   postgresql://xiaoer:***@db.internal:5432/xiaoer_app" in text
    assert "会话 tracker store:      sqlite:///var/tracker.db" in text
    assert "模型 model:              20261130-000000-x.tar.gz" in text
    assert text.rstrip().endswith("店小二已启动 ✅  Xiaoer is running.")
    monkeypatch.delenv("XIAOER_DOUYIN_ACCESS_TOKEN")
    assert "douyin（未配置 not configured: XIAOER_DOUYIN_ACCESS_TOKEN）" in startup.banner(
        backend="x", credentials=ROOT / "credentials.yml", project_db="x", stores=[],
        model=Path("m.tar.gz"), worker="running",
    )  # fmt: skip


def test_doudian_probe_passes_with_valid_credentials_and_names_a_refused_token(
    data_dir, monkeypatch
):
    from xiaoer.core.config import get_settings
    from xiaoer.doudian.fake import running_fake_doudian

    with running_fake_doudian() as fake:
        monkeypatch.setenv("XIAOER_BACKEND", "doudian")
        monkeypatch.setenv("XIAOER_DOUDIAN_BASE_URL", fake.base_url)
        monkeypatch.setenv("XIAOER_DOUDIAN_APP_KEY", fake.app_key)
        monkeypatch.setenv("XIAOER_DOUDIAN_APP_SECRET", fake.app_secret)
        monkeypatch.setenv("XIAOER_DOUDIAN_ACCESS_TOKEN", fake.access_token)
        get_settings.cache_clear()
        host = fake.base_url.split("://", 1)[1]
        assert startup.check_backend(get_settings()) == f"doudian ({host})"
        assert fake.calls_of("order.orderDetail")  # a real call was made
        # a business error still proves the credentials were accepted
        fake.inject("order.orderDetail", error_code=50002, sub_msg="系统繁忙", times=1)
        assert startup.check_backend(get_settings()) == f"doudian ({host})"
        monkeypatch.setenv("XIAOER_DOUDIAN_ACCESS_TOKEN", "expired-token")
        with pytest.raises(StartupError) as raised:
            startup.check_backend(get_settings())
        assert str(raised.value).startswith(
            "shop backend doudian test call failed: DoudianApiError"
        )
        assert "expired-token" not in str(raised.value)
