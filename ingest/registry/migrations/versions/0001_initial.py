"""Initial registry schema: buildings, households, users, gateways, devices, assignments.

Assignments of one device never overlap: an exclusion constraint on PostgreSQL (btree_gist), triggers on
SQLite. Both raise an integrity error that the registry reports as a conflict.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)

# half-open [valid_from, valid_to), NULL valid_to = open-ended
_SQLITE_OVERLAP = """
CREATE TRIGGER assignments_no_overlap_{when} BEFORE {event} ON assignments
WHEN EXISTS (
    SELECT 1 FROM assignments AS other
    WHERE other.device_id = NEW.device_id {exclude_self}
      AND (NEW.valid_to IS NULL OR other.valid_from < NEW.valid_to)
      AND (other.valid_to IS NULL OR NEW.valid_from < other.valid_to)
)
BEGIN SELECT RAISE(ABORT, 'assignment_overlap'); END
"""


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "buildings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buildings")),
        sa.UniqueConstraint("name", name=op.f("uq_buildings_name")),
    )
    op.create_table(
        "gateways",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("status", _enum("status", "active", "revoked"), nullable=False),
        sa.Column("broker_username", sa.String(length=80), nullable=False),
        sa.Column("credentials_issued_at", _TIME, nullable=True),
        sa.Column("last_seen", _TIME, nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_gateways_building_id_buildings"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateways")),
        sa.UniqueConstraint("broker_username", name=op.f("uq_gateways_broker_username")),
        sa.UniqueConstraint("name", name=op.f("uq_gateways_name")),
    )
    op.create_index(op.f("ix_gateways_building_id"), "gateways", ["building_id"])
    op.create_table(
        "households",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_households_building_id_buildings"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_households")),
        sa.UniqueConstraint("building_id", "name", name=op.f("uq_households_building_id_name")),
    )
    op.create_index(op.f("ix_households_building_id"), "households", ["building_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", _enum("role", "operator", "technician", "resident"), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.CheckConstraint(
            "(role = 'resident' AND household_id IS NOT NULL) "
            "OR (role <> 'resident' AND household_id IS NULL)",
            name=op.f("ck_users_resident_household"),
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_users_household_id_households"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_index(op.f("ix_users_household_id"), "users", ["household_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gateway_id", sa.Integer(), nullable=False),
        sa.Column("native_id", sa.String(length=128), nullable=False),
        sa.Column("profile_id", sa.String(length=64), nullable=False),
        sa.Column("meter_number", sa.String(length=64), nullable=True),
        sa.Column("location", sa.String(length=100), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("status", _enum("status", "registered", "active", "faulty", "retired"), nullable=False),
        sa.Column("last_seen", _TIME, nullable=True),
        sa.Column("commissioned_at", _TIME, nullable=True),
        sa.Column("commissioned_by_id", sa.Integer(), nullable=True),
        sa.Column("commissioning_passed", sa.Boolean(), nullable=True),
        sa.Column("commissioning_report", sa.JSON(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["commissioned_by_id"],
            ["users.id"],
            name=op.f("fk_devices_commissioned_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["gateways.id"],
            name=op.f("fk_devices_gateway_id_gateways"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("gateway_id", "native_id", name=op.f("uq_devices_gateway_id_native_id")),
        sa.UniqueConstraint("meter_number", name=op.f("uq_devices_meter_number")),
    )
    op.create_index(op.f("ix_devices_gateway_id"), "devices", ["gateway_id"])
    op.create_index(op.f("ix_devices_profile_id"), "devices", ["profile_id"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", _TIME, nullable=False),
        sa.Column("valid_to", _TIME, nullable=True),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name=op.f("ck_assignments_interval")),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["buildings.id"],
            name=op.f("fk_assignments_building_id_buildings"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_assignments_device_id_devices"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["household_id"],
            ["households.id"],
            name=op.f("fk_assignments_household_id_households"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    op.create_index(op.f("ix_assignments_building_id"), "assignments", ["building_id"])
    op.create_index("ix_assignments_device_from", "assignments", ["device_id", "valid_from"])
    op.create_index(op.f("ix_assignments_household_id"), "assignments", ["household_id"])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
        op.execute(
            "ALTER TABLE assignments ADD CONSTRAINT ex_assignments_no_overlap EXCLUDE USING gist "
            "(device_id WITH =, tstzrange(valid_from, valid_to, '[)') WITH &&)"
        )
    elif dialect == "sqlite":
        op.execute(_SQLITE_OVERLAP.format(when="insert", event="INSERT", exclude_self=""))
        op.execute(
            _SQLITE_OVERLAP.format(
                when="update",
                event="UPDATE OF device_id, valid_from, valid_to",
                exclude_self="AND other.id <> NEW.id",
            )
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS assignments_no_overlap_update")
        op.execute("DROP TRIGGER IF EXISTS assignments_no_overlap_insert")
    for table in ("assignments", "devices", "users", "households", "gateways", "buildings"):
        op.drop_table(table)
