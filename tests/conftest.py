"""Shared fixtures. The trained model is built once per test run (scripts/test.sh trains it
with the real config and passes its path in XIAOER_TEST_MODEL); every suite uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _clear_caches() -> None:
    from actions import messages
    from xiaoer.core.config import get_settings
    from xiaoer.shop.factory import get_backend

    get_settings.cache_clear()
    get_backend.cache_clear()
    messages.catalogue.cache_clear()


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data folder (demo shop seeded on first use) for one test."""
    monkeypatch.setenv("XIAOER_DATA_DIR", str(tmp_path / "var"))
    _clear_caches()
    yield tmp_path / "var"
    _clear_caches()


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's model, trained once per session on the real config."""
    given = os.environ.get("XIAOER_TEST_MODEL")
    if given:
        return Path(given)
    # as scripts/test.sh: `xiaoer train` (the project's data and the knowledge base's
    # generated retrieval intent and rule)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("xiaoer")), "train", "--quiet", "--print-path"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


# --- the project database (xiaoer/core/db.py) ---------------------------------------------
@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One private PostgreSQL server for the session (skipped where it is not installed)."""
    from xiaoer.devtools.services import ServiceError, pg_bin, running_postgres

    try:
        pg_bin("initdb")
    except ServiceError as exc:
        pytest.skip(f"PostgreSQL tests need the server binaries: {exc}")
    with running_postgres(tmp_path_factory.mktemp("postgres")) as pg:
        yield pg


_pg_databases = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A new, empty database (never migrated): a SQLite file in the test's tmp folder, or
    a fresh database on the session's PostgreSQL server (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    from xiaoer.core import db as core_db

    if request.param == "sqlite":
        url = core_db.sqlite_url(tmp_path / "xiaoer.db")
        database = core_db.create_database(url)
        yield database
        database.dispose()
        core_db._databases.pop(url, None)
        return
    pg = request.getfixturevalue("postgres_server")
    name = f"test_{os.getpid()}_{next(_pg_databases)}"
    admin = create_engine(pg.url, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg.url.rsplit("/", 1)[0] + "/" + name
    database = core_db.create_database(url)
    try:
        yield database
    finally:
        database.dispose()
        cached = core_db._databases.pop(url, None)
        if cached is not None:
            cached.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def project_db(empty_db: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The project database at the newest schema, once on SQLite and once on PostgreSQL
    (parametrised through ``empty_db``). ``XIAOER_DATABASE_URL`` points at it, so the
    stores' ``get_*()`` use it too."""
    from xiaoer.core import db as core_db
    from xiaoer.core import migrate

    migrate.upgrade(empty_db)
    monkeypatch.setenv("XIAOER_DATABASE_URL", empty_db.url)
    return core_db.get_database(empty_db.url)
