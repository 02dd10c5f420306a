"""Schema migrations of the project database (Alembic, configured here: no alembic.ini).

Commands (``xiaoer migrate`` wraps the first three)::

    xiaoer migrate                       # upgrade the project database to the newest revision
    xiaoer migrate --check               # exit 1 when it is not at the newest revision
    xiaoer migrate --current             # print its revision
    xiaoer migrate --new "add x to y"    # autogenerate a revision from the stores' tables

``--new`` compares :data:`xiaoer.core.db.metadata` (every store's tables) with a scratch
SQLite database migrated to the newest revision and writes
``xiaoer/core/migrations/versions/<NNNN>_<message>.py``; read it before committing it.
The same as a module: ``python -m xiaoer.core.migrate [upgrade|current|check|revision -m MSG]``.

SQLite databases are upgraded on first use (:func:`ensure_current`, under a file lock);
PostgreSQL ones must be upgraded with ``xiaoer migrate`` (one process, before the servers
start: ``xiaoer up`` does it).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.exc import SQLAlchemyError

from xiaoer.core.engine import Database, DatabaseError, create_database, masked_url, metadata

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations"
PACKAGE = HERE.parent  # xiaoer/
MIGRATE_LOCK = 0x5841_4F4D  # pg_advisory_xact_lock key of the upgrade ("XAOM")


def config(db: Database | None = None, connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.set_main_option("truncate_slug_length", "40")
    cfg.attributes["connection"] = connection
    cfg.attributes["database"] = db
    return cfg


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str | None:
    return script().get_current_head()


# --- the stores' tables ------------------------------------------------------------------
_DECLARES = re.compile(r"^\w+\s*(?::\s*[\w.]+\s*)?=\s*(?:sa\.|sqlalchemy\.)?Table\(", re.MULTILINE)


def store_modules() -> list[str]:
    """Every module of the ``xiaoer`` package that declares tables on the metadata."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        source = path.read_text(encoding="utf-8")
        if "metadata" in source and _DECLARES.search(source):
            rel = path.relative_to(PACKAGE.parent).with_suffix("")
            found.append(".".join(rel.parts))
    return found


def load_metadata() -> MetaData:
    """:data:`metadata` with every store's tables (their modules imported)."""
    for name in store_modules():
        importlib.import_module(name)
    return metadata


# --- state -----------------------------------------------------------------------------
def current(db: Database) -> str | None:
    """The database's revision (None: never migrated)."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check(db: Database) -> bool:
    """Whether the database is at the newest revision."""
    return current(db) == head()


def upgrade(db: Database, revision: str = "head") -> list[str]:
    """Upgrade ``db`` to ``revision`` in one transaction; returns the revisions applied."""
    before = current(db)
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            # table rebuilds (batch mode) need foreign keys off; it cannot change in a
            # transaction, so before it (this connection is not pooled: see db.py)
            conn.connection.cursor().execute("PRAGMA foreign_keys = OFF")
        conn.execution_options(xiaoer_write=True)
        cfg = config(db, conn)
        with conn.begin():
            if db.dialect == "postgresql":
                # two `xiaoer migrate` at once (e.g. one per machine): one after the other
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK})
            command.upgrade(cfg, revision)
            if db.dialect == "sqlite":
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise DatabaseError(f"foreign keys broken by the migration: {broken[:5]}")
    for step in cfg.attributes.get("after_commit", []):
        step()
    if db.dialect == "sqlite":
        import_beside(db)
    after = current(db)
    if before == after:
        return []
    scripts = script()
    applied = [s.revision for s in scripts.iterate_revisions(after, before)]
    return list(reversed(applied))


def _beside(db: Database) -> list[Path]:
    """An earlier release's files beside a SQLite project database (douyin.db, shop.db)."""
    from xiaoer.core.migrations.baseline import EARLIER_FILES, is_earlier_file

    path = db.sqlite_path
    if path is None:
        return []
    return [path.parent / name for name in EARLIER_FILES if is_earlier_file(path.parent / name)]


def import_beside(db: Database) -> list[Path]:
    """Copy an earlier release's douyin.db / shop.db beside the SQLite project database into
    it once every table of the file is declared by a store (the baseline does it when it
    runs; this catches a file whose store was converted after the baseline ran)."""
    from xiaoer.core.migrations.baseline import import_earlier_files

    if not _beside(db):
        return []
    md = load_metadata()
    db.ensure_tables()
    steps: list[Any] = []
    with db.begin() as conn:
        imported = import_earlier_files(conn, md, steps)
    for step in steps:
        step()
    return imported


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".migrate-lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_current(db: Database) -> None:
    """SQLite: upgrade to the newest revision (one process at a time). PostgreSQL: refuse
    a database that is not at the newest revision."""
    if check(db) and not _beside(db):
        return
    if db.dialect == "sqlite":
        path = db.sqlite_path
        if path is None:  # in memory: only this process sees it
            upgrade(db)
            return
        with _file_lock(path):
            if not check(db):
                applied = upgrade(db)  # and imports the files beside it
                log.info("migrated %s: %s", path, ", ".join(applied) or "nothing to do")
            else:
                import_beside(db)
        return
    where = masked_url(db.engine.url)
    raise DatabaseError(
        f"the project database {where} is at revision {current(db) or 'none'}, this version "
        f"needs {head()}: run `xiaoer migrate` (once, before starting the servers)"
    )


# --- an earlier release's data folder into another database ------------------------------
def import_folder(db: Database, folder: Path) -> dict[str, tuple[int, list[str]]]:
    """Copy the rows of an earlier release's data folder (its ``xiaoer.db``, ``douyin.db``
    and ``shop.db``) into ``db`` (upgraded first), e.g. PostgreSQL when a deployment moves
    to the scale-out profile. Rows already there are kept. A file whose tables all came
    along is renamed ``*.migrated``; the others stay (a table no store declares).

    Returns {file name: (rows copied, tables not copied)}."""
    from xiaoer.core.migrations.baseline import EARLIER_FILES, copy_rows, set_aside

    if not check(db):
        upgrade(db)
    md = load_metadata()
    results: dict[str, tuple[int, list[str]]] = {}
    done = []
    with db.begin() as conn:
        for name in ("xiaoer.db", *EARLIER_FILES):
            path = Path(folder) / name
            if not path.is_file() or (db.sqlite_path and path.resolve() == db.sqlite_path):
                continue
            copied, left = copy_rows(conn, md, path, partial=True)
            results[name] = (copied, left)
            if not left:
                done.append(path)
    for path in done:
        set_aside(path)
    return results


# --- new revisions ----------------------------------------------------------------------
def next_revision_id() -> str:
    numbers = [int(s.revision) for s in script().walk_revisions() if s.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def new_revision(message: str, versions: Path | None = None) -> Path | None:
    """Autogenerate a revision: the stores' tables compared with the newest revision.
    Written to ``migrations/versions`` (``versions``: another folder, for tests)."""
    load_metadata()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = create_database(f"sqlite:///{tmp}/scratch.db")
        try:
            upgrade(scratch)
            with scratch.engine.connect() as conn:
                cfg = config(scratch, conn)
                cfg.attributes["autogenerate"] = True
                if versions is not None:
                    cfg.set_main_option(
                        "version_locations", f"{MIGRATIONS / 'versions'} {versions}"
                    )
                with conn.begin():
                    made = command.revision(
                        cfg,
                        message=message,
                        autogenerate=True,
                        rev_id=next_revision_id(),
                        version_path=str(versions) if versions else None,
                    )
        finally:
            scratch.dispose()
    scripts = made if isinstance(made, list) else [made]
    if not scripts or scripts[0] is None:
        return None
    path = Path(scripts[0].path)
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():  # the project's style
        subprocess.run([str(ruff), "format", "--quiet", str(path)], check=False)
    return path


# --- command line ------------------------------------------------------------------------
def run(args: argparse.Namespace, db: Database | None = None) -> int:
    """``xiaoer migrate`` (``args``: check, current, new)."""
    if getattr(args, "new", None):
        path = new_revision(args.new)
        if path is None:
            print("the stores' tables match the newest revision: nothing to write")
        else:
            print(f"wrote {path}: read it (renames look like drop + add), then commit it")
        return 0
    from xiaoer.core.pgsetup import MissingDatabases

    db = db or create_database(_url(args))
    try:
        return _run(args, db)
    except MissingDatabases as exc:
        print(f"error: {exc}")
        return 1
    except (SQLAlchemyError, DatabaseError) as exc:
        where = masked_url(db.engine.url)
        print(f"error: {where}: {exc}")
        return 1
    finally:
        db.dispose()


def _run(args: argparse.Namespace, db: Database) -> int:
    from xiaoer.core import pgsetup

    where = masked_url(db.engine.url)
    if getattr(args, "current", False):
        print(current(db) or "none")
        return 0
    endpoints = getattr(args, "endpoints", None)
    needed = pgsetup.needed_databases(
        Path(endpoints) if endpoints else None, db.url if db.dialect == "postgresql" else None
    )
    if getattr(args, "check", False):
        missing = [n for n in needed if not pgsetup.exists(n)]
        for n in missing:
            print(f"{n.what} {n.where}: the database does not exist")
        if missing:
            return 1
        tables = pgsetup.rasa_tables_missing(needed)
        for line in tables:
            print(f"{line}: table missing")
        ok = check(db)
        print(f"{where}: {current(db) or 'none'} ({'newest' if ok else 'needs ' + str(head())})")
        return 0 if ok and not tables else 1
    # the databases first (PostgreSQL: the project's, the tracker store's, the broker's)
    for n in pgsetup.create_databases(needed):
        print(f"{n.what} {n.where}: database created")
    if getattr(args, "from_sqlite", None):
        for name, (copied, left) in import_folder(db, Path(args.from_sqlite)).items():
            kept = f"; not copied, kept in the file: {', '.join(left)}" if left else ""
            print(f"{name}: {copied} rows copied into {where}{kept}")
        return 0
    started = time.monotonic()
    applied = upgrade(db) if db.sqlite_path is None else _locked_upgrade(db)
    took = time.monotonic() - started
    done = f"{', '.join(applied)} applied" if applied else "up to date"
    print(f"{where}: {done} (at {current(db)}, {took:.2f} s)")
    # Rasa's tables, once, before any replica starts (replicas never race to create them)
    made = pgsetup.create_rasa_tables(needed)
    for n in needed:
        if n.metadata is not None:
            state = "tables created" if n in made else "tables ready"
            print(f"{n.what} {n.where}: {state} ({', '.join(sorted(n.metadata.tables))})")
    return 0


def _locked_upgrade(db: Database) -> list[str]:
    assert db.sqlite_path is not None
    with _file_lock(db.sqlite_path):
        return upgrade(db)


def _url(args: argparse.Namespace) -> str:
    from sqlalchemy.engine import make_url

    from xiaoer.core.engine import default_url

    given = getattr(args, "url", None)
    if given and make_url(given).password:
        # a command line is visible to every user of the machine
        raise SystemExit(
            "error: no password in --url: set PGPASSWORD (or ~/.pgpass), or XIAOER_DATABASE_URL"
        )
    return given or default_url()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xiaoer.core.migrate")
    parser.add_argument(
        "action", nargs="?", default="upgrade", choices=["upgrade", "current", "check", "revision"]
    )
    parser.add_argument("-m", "--message", help="the new revision's message (revision)")
    parser.add_argument("--url", help="database URL (default: the project database)")
    args = parser.parse_args(argv)
    if args.action == "revision" and not args.message:
        parser.error("revision needs -m MESSAGE")
    ns = argparse.Namespace(
        url=args.url,
        check=args.action == "check",
        current=args.action == "current",
        new=args.message if args.action == "revision" else None,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return run(ns)


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "check",
    "current",
    "ensure_current",
    "head",
    "load_metadata",
    "new_revision",
    "upgrade",
]
