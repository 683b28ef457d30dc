"""Users get a random session key, carried in every token: a token names its user unambiguously even when
an id is handed out again (SQLite reuses the highest id after a delete), and dies with the user.

Existing users get a key of their own here (their earlier tokens stop working: they log in again).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_USERS = sa.table("users", sa.column("id", sa.Integer()), sa.column("session_key", sa.String(64)))


def upgrade() -> None:
    # No batch table copy on SQLite: with foreign keys on, its DROP TABLE users would run the ON DELETE
    # SET NULL of devices.commissioned_by_id and commissioning_runs.started_by_id (seen: history lost).
    # SQLite adds a NOT NULL column only with a default; the empty key is refused by every token check.
    op.add_column("users", sa.Column("session_key", sa.String(length=64), nullable=False, server_default=""))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(_USERS.c.id)).all():
        connection.execute(
            _USERS.update().where(_USERS.c.id == user_id).values(session_key=secrets.token_urlsafe(32))
        )
    if connection.dialect.name != "sqlite":
        op.alter_column("users", "session_key", existing_type=sa.String(length=64), server_default=None)
    op.create_index(op.f("ix_users_session_key"), "users", ["session_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_users_session_key"), table_name="users")
    op.drop_column("users", "session_key")
