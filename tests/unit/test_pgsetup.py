"""``xiaoer migrate --endpoints`` on PostgreSQL creates what the scale-out profile needs:
the tracker store's, the event broker's and the project database, and Rasa's ``events``
tables (with Rasa's own models), or says exactly which SQL a superuser runs."""

from __future__ import annotations

import argparse
import itertools
import os
import re
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from xiaoer.core import migrate
from xiaoer.core.db import DatabaseError
from xiaoer.core.pgsetup import Needed, create_statements, missing_message, needed_databases
from xiaoer.devtools.scaleout import ENDPOINTS

_names = itertools.count(1)


def admin(pg: Any) -> sa.engine.Engine:
    return sa.create_engine(pg.url, isolation_level="AUTOCOMMIT", future=True)


def existing(pg: Any) -> set[str]:
    with admin(pg).connect() as conn:
        return set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())


@pytest.fixture()
def deployment(postgres_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A login role of its own and the environment deploy/endpoints.scale-out.yml reads
    (three database names that do not exist yet); everything dropped afterwards."""
    pg = postgres_server
    n = f"{os.getpid()}_{next(_names)}"
    role, password = f"app_{n}", secrets.token_urlsafe(12)
    names = {"tracker": f"conv_{n}", "events": f"conv_{n}_events", "project": f"app_{n}_db"}
    with admin(pg).connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
    env = {
        "XIAOER_PG_HOST": pg.host, "XIAOER_PG_PORT": str(pg.port), "XIAOER_PG_USER": role,
        "XIAOER_PG_PASSWORD": password, "XIAOER_PG_DB": names["tracker"],
        "XIAOER_PG_EVENTS_DB": names["events"],
        "XIAOER_DATABASE_URL":
            f"postgresql://{role}:{password}@{pg.host}:{pg.port}/{names['project']}",
        # the rest of the documented environment (the endpoints file reads it all)
        "XIAOER_REDIS_HOST": "127.0.0.1", "XIAOER_REDIS_PORT": "6379",
        "XIAOER_ACTIONS_URL": "http://127.0.0.1:5055/webhook", "XIAOER_ACTION_TOKEN": "t",
    }  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield {"role": role, **names}
    with admin(pg).connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))


def run_migrate(**options: Any) -> int:
    return migrate.run(argparse.Namespace(endpoints=str(ENDPOINTS), **options))


def tables(pg: Any, db: str) -> set[str]:
    engine = sa.create_engine(pg.url.rsplit("/", 1)[0] + "/" + db)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_creates_the_three_databases_and_rasas_tables(
    postgres_server: Any, deployment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    pg = postgres_server
    with admin(pg).connect() as conn:
        conn.execute(sa.text(f"ALTER ROLE {deployment['role']} CREATEDB"))  # as documented
    assert run_migrate() == 0
    out = capsys.readouterr().out
    assert out.count("database created") == 3, out
    for name in ("tracker", "events", "project"):
        assert deployment[name] in existing(pg)
    assert "events" in tables(pg, deployment["tracker"])  # Rasa's tracker store model
    assert "events" in tables(pg, deployment["events"])  # Rasa's event broker model
    assert {"alembic_version", "worker_leases", "event_cursor"} <= tables(pg, deployment["project"])
    # the columns of Rasa's own models, not a look-alike
    engine = sa.create_engine(pg.url.rsplit("/", 1)[0] + "/" + deployment["tracker"])
    columns = {c["name"] for c in sa.inspect(engine).get_columns("events")}
    engine.dispose()
    assert {"sender_id", "type_name", "intent_name", "action_name", "data"} <= columns
    assert "s3cret" not in out and os.environ["XIAOER_PG_PASSWORD"] not in out

    # again: nothing to do, and --check agrees
    assert run_migrate() == 0
    again = capsys.readouterr().out
    assert "created" not in again and "up to date" in again and again.count("tables ready") == 2
    assert run_migrate(check=True) == 0


def test_replicas_starting_together_find_the_tables(
    postgres_server: Any, deployment: dict[str, str]
) -> None:
    """After `xiaoer migrate`, several event brokers (one per replica) starting at once do
    not try to create the table (the race ends in UniqueViolation otherwise)."""
    from rasa.core.brokers.sql import SQLEventBroker

    pg = postgres_server
    with admin(pg).connect() as conn:
        conn.execute(sa.text(f"ALTER ROLE {deployment['role']} CREATEDB"))
    assert run_migrate() == 0
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def replica() -> None:
        start.wait()
        try:
            broker = SQLEventBroker(
                "postgresql", pg.host, pg.port, deployment["events"],
                deployment["role"], os.environ["XIAOER_PG_PASSWORD"],
            )  # fmt: skip
            broker.publish({"sender_id": "s", "event": "user", "text": "你好"})
            broker.engine.dispose()
        except BaseException as exc:  # noqa: BLE001 - collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_without_createdb_it_prints_the_sql_that_makes_it_work(
    postgres_server: Any, deployment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    pg = postgres_server
    role = deployment["role"]
    assert run_migrate() == 1
    out = capsys.readouterr().out
    assert f"the user {role} has no CREATEDB right" in out, out
    statements = re.findall(r"^\s*(CREATE DATABASE [^;]+;)$", out, re.MULTILINE)
    assert statements == [
        f"CREATE DATABASE {deployment[n]} OWNER {role};" for n in ("project", "tracker", "events")
    ]
    assert f"ALTER ROLE {role} CREATEDB;" in out
    assert not {deployment[n] for n in ("tracker", "events", "project")} & existing(pg)
    # a superuser runs exactly what was printed; then the same command succeeds
    with admin(pg).connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    assert run_migrate() == 0
    out = capsys.readouterr().out
    assert "database created" not in out and out.count("tables created") == 2


def test_the_message_names_each_missing_database() -> None:
    url = sa.engine.make_url("postgresql://shop:pw@db.internal:5432/Shop Events")
    missing = [Needed("event broker", url)]
    assert create_statements(missing) == ['CREATE DATABASE "Shop Events" OWNER shop;']
    message = missing_message(missing, "the user shop has no CREATEDB right")
    assert "event broker      postgresql://shop@db.internal:5432/Shop Events" in message
    assert "pw" not in message.replace("psql", "")


def test_tracker_and_broker_cannot_share_a_database(tmp_path, monkeypatch) -> None:
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        "tracker_store:\n  type: SQL\n  dialect: postgresql\n  url: db.internal\n  db: x\n"
        "event_broker:\n  type: SQL\n  dialect: postgresql\n  url: db.internal\n  db: x\n",
        encoding="utf-8",
    )
    with pytest.raises(DatabaseError, match="give the event broker a database of its own"):
        needed_databases(endpoints, None)
