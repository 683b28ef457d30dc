"""Alembic environment: run with the connection that :func:`ingest.registry.migrate.upgrade` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ingest.registry.models import Base


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER goes through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("run migrations through ingest.registry.migrate.upgrade (reallabor api does)")
run(_connection)
