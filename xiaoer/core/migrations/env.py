"""Alembic environment: configured by xiaoer.core.migrate (no alembic.ini)."""

from __future__ import annotations

from typing import Any

from alembic import context

from xiaoer.core import migrate

config = context.config


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    # the database may hold tables that are not ours (Rasa's tracker store on the same
    # PostgreSQL database, an earlier release's leftovers): never touch them
    if type_ == "table" and reflected and compare_to is None:
        return False
    return True


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run the migrations with `xiaoer migrate` (or xiaoer.core.migrate), not the alembic CLI"
        )
    target = migrate.load_metadata() if config.attributes.get("autogenerate") else None

    def skip_empty(context: Any, revision: Any, directives: list[Any]) -> None:
        if directives and directives[0].upgrade_ops.is_empty():
            directives[:] = []  # nothing changed: no revision file

    context.configure(
        process_revision_directives=skip_empty,
        connection=connection,
        target_metadata=target,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
        compare_type=True,
        user_module_prefix="sa.",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
