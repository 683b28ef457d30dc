"""Migrations run up from empty on SQLite and PostgreSQL, match the models, and go down and up again."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from ingest.registry.db import make_engine
from ingest.registry.migrate import current_revision, downgrade, head_revision, upgrade
from ingest.registry.models import Base

pytestmark = pytest.mark.registry

TABLES = {
    "buildings",
    "households",
    "users",
    "gateways",
    "devices",
    "assignments",
    "commissioning_runs",
    "invitations",
    "deletion_records",
    "alembic_version",
}


def test_upgrade_from_empty_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) == TABLES
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        upgrade(engine)  # idempotent
    finally:
        engine.dispose()


def test_downgrade_to_empty_and_up_again(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        downgrade(engine, revision="base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
