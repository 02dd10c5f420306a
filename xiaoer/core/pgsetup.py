"""What a PostgreSQL deployment needs before its processes start, made once by
``xiaoer migrate --endpoints FILE`` (docs/deployment.md):

* the databases: the project database (``XIAOER_DATABASE_URL`` / ``database.url``), the
  tracker store's and the SQL event broker's (``tracker_store`` and ``event_broker`` of the
  endpoints file, ``${VAR}`` read from the environment as Rasa does). Rasa 3.6 creates the
  tracker database only with ``login_db`` and never the broker's; a replica that cannot
  open its tracker database falls back to an in-memory store. So they are created here,
  when the user has the ``CREATEDB`` right; otherwise the command stops and prints the
  ``CREATE DATABASE … OWNER …`` statements a superuser runs.
* Rasa's ``events`` tables, with Rasa's own SQLAlchemy models
  (:class:`rasa.core.tracker_store.SQLTrackerStore` and
  :class:`rasa.core.brokers.sql.SQLEventBroker`), once, under an advisory lock: replicas
  starting together then find them and never race on ``CREATE TABLE`` (the race makes
  the broker crash with ``UniqueViolation … pg_type_typname_nsp_index``).

SQLite databases need none of this (Rasa creates its files, the project database is
migrated on first use).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from xiaoer.core.engine import TIMEOUT_SECONDS, DatabaseError

log = logging.getLogger(__name__)

# the maintenance databases that every PostgreSQL server has, to connect to when the
# wanted one does not exist yet
MAINTENANCE_DBS = ("postgres", "template1")
# pg_advisory_xact_lock key for the creation of Rasa's tables (any constant of our own)
RASA_TABLES_LOCK = 0x5841_4F45  # "XAOE"


@dataclass(frozen=True)
class Needed:
    """One database the deployment needs."""

    what: str  # "project database", "tracker store", "event broker"
    url: URL
    metadata: sa.MetaData | None = None  # Rasa's table(s) to create in it
    engine_kwargs: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.url.database)

    @property
    def owner(self) -> str:
        return str(self.url.username or "")

    @property
    def where(self) -> str:
        """The URL without password, for messages."""
        user = f"{self.url.username}@" if self.url.username else ""
        port = f":{self.url.port}" if self.url.port else ""
        return f"{self.url.get_backend_name()}://{user}{self.url.host or ''}{port}/{self.name}"


class MissingDatabases(DatabaseError):
    """Databases that do not exist and that the user may not create."""

    def __init__(self, missing: list[Needed], reason: str) -> None:
        self.missing = missing
        self.reason = reason
        super().__init__(missing_message(missing, reason))


def _quote(name: str) -> str:
    """An SQL identifier, quoted only when it needs it (readable statements)."""
    plain = name.isidentifier() and name.isascii() and name == name.lower()
    return name if plain else '"' + name.replace('"', '""') + '"'


def create_statements(missing: list[Needed]) -> list[str]:
    seen: dict[str, str] = {}
    for need in missing:
        seen.setdefault(need.name, need.owner)
    return [
        f"CREATE DATABASE {_quote(name)} OWNER {_quote(owner)};" if owner else
        f"CREATE DATABASE {_quote(name)};"
        for name, owner in seen.items()
    ]  # fmt: skip


def missing_message(missing: list[Needed], reason: str) -> str:
    """What to do when databases are missing and cannot be created by this user."""
    owners = sorted({n.owner for n in missing if n.owner})
    lines = [f"these databases do not exist and cannot be created here ({reason}):"]
    lines += [f"  {n.what:<17} {n.where}" for n in missing]
    lines.append("A PostgreSQL superuser creates them (e.g. `sudo -u postgres psql`):")
    lines += [f"  {s}" for s in create_statements(missing)]
    if owners:
        grant = "; ".join(f"ALTER ROLE {_quote(o)} CREATEDB;" for o in owners)
        lines.append(f"(or lets this command create them: {grant})")
    lines.append("then run this command again.")
    return "\n".join(lines)


# --- what the endpoints file and the settings ask for ------------------------------------
def _sql_endpoint(endpoints: Path, key: str) -> Any:
    from rasa.shared.exceptions import RasaException
    from rasa.utils.endpoints import read_endpoint_config

    try:
        cfg = read_endpoint_config(str(endpoints), key)
    except RasaException as exc:  # e.g. a ${VAR} not set: the whole file is read
        raise DatabaseError(f"{endpoints}: {exc}") from exc
    if cfg is None or str(cfg.type or "").lower() != "sql":
        return None
    return cfg


def _endpoint_url(cfg: Any, default_db: str, tracker: bool) -> URL | None:
    from rasa.core.tracker_store import SQLTrackerStore

    kwargs: dict[str, Any] = dict(cfg.kwargs)
    dialect = str(kwargs.get("dialect") or "sqlite")
    port = kwargs.get("port")
    url = SQLTrackerStore.get_db_url(
        dialect,
        cfg.url,
        int(str(port)) if port not in (None, "") else None,
        str(kwargs.get("db") or default_db),
        kwargs.get("username"),
        kwargs.get("password"),
        None,
        kwargs.get("query") if tracker else None,
    )
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed if parsed.get_backend_name() == "postgresql" else None


def needed_databases(endpoints: Path | None, project_url: str | None) -> list[Needed]:
    """The PostgreSQL databases the deployment needs: the project database (when it is on
    PostgreSQL) and, with ``endpoints``, the tracker store's and the event broker's."""
    needed: list[Needed] = []
    if project_url and make_url(project_url).get_backend_name() == "postgresql":
        needed.append(Needed("project database", make_url(project_url)))
    if endpoints is None:
        return needed
    if not Path(endpoints).is_file():
        raise DatabaseError(f"no endpoints file {endpoints}")
    from rasa.core.brokers.sql import SQLEventBroker
    from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs

    tracker = _sql_endpoint(endpoints, "tracker_store")
    if tracker is not None and (url := _endpoint_url(tracker, "rasa.db", True)) is not None:
        kwargs = create_engine_kwargs(url)
        kwargs.pop("pool_size", None), kwargs.pop("max_overflow", None)
        needed.append(Needed("tracker store", url, SQLTrackerStore.Base.metadata, kwargs))
    broker = _sql_endpoint(endpoints, "event_broker")
    if broker is not None and (url := _endpoint_url(broker, "events.db", False)) is not None:
        needed.append(Needed("event broker", url, SQLEventBroker.Base.metadata, {}))
    same = {n.what for n in needed if n.metadata is not None}
    urls = [(n.url.host, n.url.port, n.name) for n in needed if n.metadata is not None]
    if len(same) == 2 and urls[0] == urls[1]:
        raise DatabaseError(
            f"the tracker store and the event broker both use {needed[-1].where}: each "
            "keeps its rows in a table called `events`, give the event broker a database "
            "of its own (event_broker.db in the endpoints file)"
        )
    return needed


# --- creating them ---------------------------------------------------------------------
def _engine(url: URL, **kwargs: Any) -> sa.engine.Engine:
    connect_args = {"connect_timeout": TIMEOUT_SECONDS, **kwargs.pop("connect_args", {})}
    return sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args, **kwargs)


def _missing(exc: DBAPIError) -> bool:
    return "does not exist" in str(exc.orig) and "database" in str(exc.orig)


def exists(need: Needed) -> bool:
    """Whether the database exists (False only when the server says so; an unreachable
    server or a refused login is an error naming the database)."""
    engine = _engine(need.url)
    try:
        with engine.connect():
            return True
    except OperationalError as exc:
        if _missing(exc):
            return False
        raise DatabaseError(f"{need.what} {need.where}: {str(exc.orig).strip()}") from exc
    finally:
        engine.dispose()


def _maintenance(url: URL) -> tuple[sa.engine.Engine | None, str]:
    last = ""
    for name in MAINTENANCE_DBS:
        engine = _engine(url.set(database=name), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect():
                return engine, ""
        except OperationalError as exc:
            last = str(exc.orig).strip().splitlines()[0]
            engine.dispose()
    return None, f"cannot connect to the server's maintenance database: {last}"


def create_databases(needed: list[Needed]) -> list[Needed]:
    """Create the databases of ``needed`` that do not exist; returns those created.

    Raises :class:`MissingDatabases` (its message has the SQL to run) when some do not
    exist and this user may not create them."""
    missing = [n for n in needed if not exists(n)]
    if not missing:
        return []
    created: list[Needed] = []
    left: list[Needed] = []
    reason = ""
    # one server may hold them all (the usual case), or each its own
    servers: dict[tuple[Any, ...], list[Needed]] = {}
    for need in missing:
        key = (need.url.host, need.url.port, need.url.username)
        servers.setdefault(key, []).append(need)
    for group in servers.values():
        engine, reason_here = _maintenance(group[0].url)
        if engine is None:
            left += group
            reason = reason or reason_here
            continue
        try:
            with engine.connect() as conn:
                may = conn.execute(
                    sa.text(
                        "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
                    )
                ).scalar()
                if not may:
                    left += group
                    reason = reason or f"the user {group[0].owner} has no CREATEDB right"
                    continue
                for need in group:
                    if need in created or any(c.name == need.name for c in created):
                        continue
                    try:
                        conn.exec_driver_sql(f"CREATE DATABASE {_quote(need.name)}")
                    except ProgrammingError as exc:
                        if "already exists" not in str(exc.orig):  # made by another at once
                            left.append(need)
                            reason = reason or str(exc.orig).strip().splitlines()[0]
                            continue
                    created.append(need)
        finally:
            engine.dispose()
    if left:
        raise MissingDatabases(left, reason)
    return created


def create_rasa_tables(needed: list[Needed]) -> list[Needed]:
    """Create Rasa's tables (tracker store, event broker) where they are missing, one
    process at a time; returns the databases where something was created."""
    made = []
    for need in needed:
        if need.metadata is None:
            continue
        engine = _engine(need.url, **(need.engine_kwargs or {}))
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": RASA_TABLES_LOCK})
                before = set(sa.inspect(conn).get_table_names())
                need.metadata.create_all(conn)
                if set(need.metadata.tables) - before:
                    made.append(need)
        finally:
            engine.dispose()
    return made


def rasa_tables_missing(needed: list[Needed]) -> list[str]:
    """``--check``: Rasa's tables that are not there ("tracker store: events")."""
    out = []
    for need in needed:
        if need.metadata is None:
            continue
        engine = _engine(need.url, **(need.engine_kwargs or {}))
        try:
            with engine.connect() as conn:
                have = set(sa.inspect(conn).get_table_names())
        finally:
            engine.dispose()
        out += [f"{need.what} {need.where}: {t}" for t in sorted(set(need.metadata.tables) - have)]
    return out
