"""Create-or-adopt: what the baseline revision (0001) does with its frozen schema.

The revision file (rendered from :data:`metadata` when the baseline was cut; frozen since) holds
a ``schema(op)`` function in Alembic's own rendering (``op.create_table(...)``,
``op.create_index(...)``). :func:`apply` runs it against a recorder, so the schema stays
frozen in the revision, and then for every table:

* absent: it is created with its indexes (an empty database);
* present (the ``xiaoer.db`` of a release before migrations): missing columns and indexes
  are added, indexes the schema no longer declares are dropped; rows stay as they are.

On SQLite it then copies the rows of an earlier release's other files in the same folder
(``douyin.db``, ``shop.db``) into the tables of the same name and renames each file to
``*.migrated`` once the migration is committed (nothing is deleted).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Column, Index, Integer, MetaData, Table, func, inspect
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import conv

from xiaoer.core.engine import DatabaseError

log = logging.getLogger(__name__)

# an earlier release's files beside xiaoer.db whose tables now live in the project database
EARLIER_FILES = ("douyin.db", "shop.db")
MIGRATED_SUFFIX = ".migrated"


class FrozenSchema:
    """Records the ``op.create_table`` / ``op.create_index`` calls of a revision's
    ``schema(op)`` on a private :class:`MetaData`."""

    def __init__(self) -> None:
        self.metadata = MetaData()

    @staticmethod
    def f(name: str) -> conv:
        return conv(name)

    def create_table(self, name: str, *items: Any, **kw: Any) -> Table:
        return Table(name, self.metadata, *items, **kw)

    def create_index(
        self, name: str, table_name: str, columns: list[str], unique: bool = False, **kw: Any
    ) -> Index:
        table = self.metadata.tables[table_name]
        return Index(name, *(table.c[c] for c in columns), unique=unique, **kw)


def frozen(schema: Callable[[Any], None]) -> MetaData:
    recorder = FrozenSchema()
    schema(recorder)
    return recorder.metadata


def apply(schema: Callable[[Any], None]) -> None:
    """Create or adopt every table of ``schema`` (called from a revision's upgrade())."""
    from alembic import op

    md = frozen(schema)
    bind: Connection = op.get_bind()
    existing = set(inspect(bind).get_table_names())
    for table in md.sorted_tables:
        if table.name in existing:
            _adopt(bind, table)
        else:
            table.create(bind)
    if bind.dialect.name == "sqlite":
        import_earlier_files(bind, md, _after_commit())


def _after_commit() -> list[Callable[[], object]] | None:
    from alembic import op

    attributes = getattr(op.get_context().config, "attributes", None)
    if attributes is None:
        return None
    return attributes.setdefault("after_commit", [])


def _adopt(bind: Connection, table: Table) -> None:
    """Bring an existing table of an earlier release to the frozen schema in place."""
    from alembic import op

    insp = inspect(bind)
    have = {c["name"] for c in insp.get_columns(table.name)}
    for column in table.columns:
        if column.name in have:
            continue
        added: Column[Any] = column._copy()
        if not added.nullable and added.server_default is None:
            # SQLite cannot add a NOT NULL column without a default to a table with rows
            log.warning("%s.%s added as nullable (no default)", table.name, column.name)
            added.nullable = True
        op.add_column(table.name, added)
    indexes = {i["name"]: i for i in insp.get_indexes(table.name)}
    declared = {str(ix.name) for ix in table.indexes}
    for name, found in indexes.items():
        if (
            name
            and name not in declared
            and not found.get("unique")
            and not found.get("duplicates_constraint")
        ):
            op.drop_index(name, table_name=table.name)
    for ix in table.indexes:
        if str(ix.name) not in indexes:
            try:
                with bind.begin_nested():
                    ix.create(bind)
            except IntegrityError as exc:  # rows the new unique index forbids
                columns = ", ".join(c.name for c in ix.columns)
                raise DatabaseError(
                    f"{table.name}: rows of the earlier release have the same {columns}, which "
                    f"the index {ix.name} forbids; nothing was changed. Correct those rows "
                    f"(e.g. close duplicates) and start again."
                ) from exc


def is_earlier_file(path: Path) -> bool:
    """A file of an earlier release: it exists and was never migrated itself. A file with an
    ``alembic_version`` table is a database of this release in its own right (the demo shop
    in a file of its own, ``backend.sqlite.path: shop.db``): it is in use, not imported."""
    if not path.is_file():
        return False
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
    return found is None


def import_earlier_files(
    bind: Connection, md: MetaData, after_commit: list[Callable[[], object]] | None
) -> list[Path]:
    """Copy the rows of an earlier release's ``douyin.db`` / ``shop.db`` (beside the
    project's SQLite file) into the project database; rows already there are kept."""
    database = bind.engine.url.database
    if not database or database == ":memory:":
        return []
    folder = Path(database).resolve().parent
    imported = []
    for name in EARLIER_FILES:
        path = folder / name
        if not is_earlier_file(path) or path.resolve() == Path(database).resolve():
            continue
        copied, left = copy_rows(bind, md, path)
        if left:
            # a store still on its own file (not converted yet): leave the file to it
            log.warning("%s: tables not in the project database, file kept: %s", path, left)
            continue
        log.info("copied %s rows from %s into the project database", copied, path)
        imported.append(path)

        if after_commit is None:
            set_aside(path)
        else:
            after_commit.append(functools.partial(set_aside, path))
    return imported


def set_aside(path: Path) -> Path:
    """Rename an imported file (and its journal) to ``*.migrated``: kept, never read again."""
    target = path.with_name(path.name + MIGRATED_SUFFIX)
    path.rename(target)
    for extra in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + extra)
        if side.exists():
            side.rename(target.with_name(target.name + extra))
    return target


def copy_rows(
    bind: Connection, md: MetaData, path: Path, partial: bool = False
) -> tuple[int, list[str]]:
    """Copy the rows of the SQLite file ``path`` into the tables of the same name on
    ``bind`` (columns in common; rows whose key is already there are kept as they are).

    Returns (rows added, tables of the file that are not in ``md``); unless ``partial``,
    nothing is copied from a file with such tables (a store still on its own file)."""
    insert: Any = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    total = 0
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as old:
        old.row_factory = sqlite3.Row
        tables = {
            r[0]
            for r in old.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        } - {"alembic_version"}
        left = sorted(tables - set(md.tables))
        if left and not partial:
            return 0, left
        for table in md.sorted_tables:
            if table.name not in tables:
                continue
            cols = [r[1] for r in old.execute(f'PRAGMA table_info("{table.name}")')]
            common = [c for c in cols if c in table.c]
            select = ", ".join(f'"{c}"' for c in common)
            flags = [c for c in common if isinstance(table.c[c].type, Boolean)]
            rows = []
            for r in old.execute(f'SELECT {select} FROM "{table.name}"'):  # noqa: S608 - names from the file's own schema
                row = dict(r)
                for c in flags:  # SQLite keeps booleans as 0/1
                    row[c] = None if row[c] is None else bool(row[c])
                rows.append(row)
            if rows:
                count = sa_select(func.count()).select_from(table)
                before = bind.execute(count).scalar() or 0
                bind.execute(insert(table).on_conflict_do_nothing(), rows)
                total += (bind.execute(count).scalar() or 0) - before
                _advance_sequence(bind, table)
    return total, left


def _advance_sequence(bind: Connection, table: Table) -> None:
    """PostgreSQL: the id sequence past the ids just copied."""
    if bind.dialect.name != "postgresql":
        return
    key = list(table.primary_key.columns)
    if len(key) != 1 or not isinstance(key[0].type, Integer) or key[0].autoincrement is False:
        return
    column = key[0]
    sequence = bind.execute(
        sa_select(func.pg_get_serial_sequence(table.name, column.name))
    ).scalar()
    if sequence:
        top = bind.execute(sa_select(func.max(column))).scalar() or 0
        bind.execute(sa_select(func.setval(sequence, top + 1, False)))
