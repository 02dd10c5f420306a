"""The project database (xiaoer/core/db.py): one engine per URL, the SQLite policy, the
dialect-neutral insert-or-ignore and upsert, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, select

from xiaoer.core.db import Database, database_for, get_database, sqlite_url

# a table of the test's own (the project's metadata holds only the stores' tables)
test_metadata = MetaData()
things = Table(
    "test_db_things",
    test_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, unique=True),
    Column("n", Integer, nullable=False, server_default="0"),
)


def test_sqlite_policy_and_one_engine_per_file(tmp_path: Path) -> None:
    db = database_for(tmp_path / "x.db")
    assert db.dialect == "sqlite"
    assert database_for(str(tmp_path / "x.db")) is db
    assert get_database(sqlite_url(tmp_path / "x.db")) is db
    assert database_for(db) is db
    with db.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
    assert pragma == {
        "journal_mode": "wal",
        "busy_timeout": 30000,
        "foreign_keys": 1,
        "synchronous": 1,
    }


def test_url_from_environment_then_data_dir(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from xiaoer.core.db import default_url

    assert default_url() == sqlite_url(data_dir / "xiaoer.db")
    monkeypatch.setenv("XIAOER_DATABASE_URL", sqlite_url(tmp_path / "other.db"))
    assert get_database().sqlite_path == (tmp_path / "other.db").resolve()


def test_insert_ignore_and_upsert(project_db: Database) -> None:
    db = database_for(project_db)
    test_metadata.create_all(db.engine)
    assert db.insert_ignore(things, name="a") is True
    assert db.insert_ignore(things, name="a") is False
    with db.begin() as conn:
        db.upsert(conn, things, {"name": "a", "n": 5}, ["name"], ["n"])
        db.upsert(conn, things, {"name": "b", "n": 7}, ["name"], ["n"])
        db.upsert(conn, things, {"name": "b", "n": 9}, ["name"], [])
    with db.connect() as conn:
        rows = conn.execute(select(things.c.name, things.c.n).order_by(things.c.name)).all()
    assert [tuple(r) for r in rows] == [("a", 5), ("b", 7)]


def test_a_failed_transaction_loses_nothing_else(project_db: Database) -> None:
    db = database_for(project_db)
    test_metadata.create_all(db.engine)
    db.insert_ignore(things, name="kept")
    with pytest.raises(RuntimeError), db.begin() as conn:
        conn.execute(things.insert().values(name="rolled back"))
        raise RuntimeError("boom")
    with db.connect() as conn:
        assert conn.execute(select(things.c.name)).scalars().all() == ["kept"]


def test_concurrent_read_modify_write_is_serialised(project_db: Database) -> None:
    """Every writer reads the count and inserts a row named after it: with one
    transaction per step no two writers see the same count."""
    db = database_for(project_db)
    test_metadata.create_all(db.engine)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for _ in range(15):
                with db.begin() as conn:
                    if db.dialect == "postgresql":
                        conn.exec_driver_sql("LOCK TABLE test_db_things IN EXCLUSIVE MODE")
                    n = conn.execute(select(func.count()).select_from(things)).scalar()
                    conn.execute(things.insert().values(name=f"row-{n}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(things)).scalar() == 60


def test_url_from_xiaoer_yml_with_the_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xiaoer.core.config import get_settings
    from xiaoer.core.db import DatabaseError, default_url

    config = tmp_path / "xiaoer.yml"
    config.write_text(
        "data_dir: var\ndatabase:\n  url: postgresql://xiaoer:${PW}@db.internal:5432/app\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("XIAOER_CONFIG", str(config))
    monkeypatch.delenv("XIAOER_DATABASE_URL", raising=False)
    monkeypatch.delenv("XIAOER_DATA_DIR", raising=False)
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("PW", "p@ss/word")
        assert default_url() == "postgresql://xiaoer:p%40ss%2Fword@db.internal:5432/app"
        monkeypatch.delenv("PW")
        with pytest.raises(DatabaseError, match="PW"):
            default_url()
        config.write_text(
            "data_dir: var\ndatabase:\n  url: sqlite:///state/x.db\n", encoding="utf-8"
        )
        get_settings.cache_clear()
        assert default_url() == sqlite_url(tmp_path / "var" / "state" / "x.db")
    finally:
        get_settings.cache_clear()
