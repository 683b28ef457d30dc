"""The registry's tables (SQLAlchemy 2 typed ORM). Migrations in ``migrations/versions`` must match.

Assignments are half-open intervals ``[valid_from, valid_to)``; ``valid_to`` NULL means open-ended. They
never overlap per device: checked in :mod:`ingest.registry.assignments` and enforced by the database
(an exclusion constraint on PostgreSQL, triggers on SQLite).
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ingest.registry.db import UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Role(enum.StrEnum):
    operator = "operator"
    technician = "technician"
    resident = "resident"


class GatewayStatus(enum.StrEnum):
    active = "active"
    revoked = "revoked"


class DeviceStatus(enum.StrEnum):
    registered = "registered"  # in the registry, not yet commissioned
    active = "active"  # commissioned, reporting
    faulty = "faulty"
    retired = "retired"


def str_enum(cls: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR + CHECK (no PostgreSQL enum type to migrate)."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime()}  # noqa: RUF012


class Building(Base):
    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Household(Base):
    """A housing unit in a building."""

    __tablename__ = "households"
    __table_args__ = (UniqueConstraint("building_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    building: Mapped[Building] = relationship(lazy="joined")


def new_session_key() -> str:
    """A user's random identity in session tokens (256 bits): never shared, never reused."""
    return secrets.token_urlsafe(32)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("username"),
        CheckConstraint(
            "(role = 'resident' AND household_id IS NOT NULL) "
            "OR (role <> 'resident' AND household_id IS NULL)",
            name="resident_household",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="RESTRICT"), index=True
    )
    is_active: Mapped[bool] = mapped_column(default=True)
    # bumped on logout and password change: every token issued before stops working
    session_version: Mapped[int] = mapped_column(default=0)
    # carried in every token: ids can be reused (SQLite), this key dies with its user
    session_key: Mapped[str] = mapped_column(String(64), default=new_session_key, index=True, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Gateway(Base):
    """A gateway publishes under ``lab/<name>/#`` with its own broker credentials."""

    __tablename__ = "gateways"
    __table_args__ = (UniqueConstraint("name"), UniqueConstraint("broker_username"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    building_id: Mapped[int | None] = mapped_column(
        ForeignKey("buildings.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[GatewayStatus] = mapped_column(str_enum(GatewayStatus, "status"))
    broker_username: Mapped[str] = mapped_column(String(80))
    credentials_issued_at: Mapped[dt.datetime | None]
    last_seen: Mapped[dt.datetime | None]
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("gateway_id", "native_id"), UniqueConstraint("meter_number"))

    id: Mapped[int] = mapped_column(primary_key=True)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateways.id", ondelete="RESTRICT"), index=True)
    native_id: Mapped[str] = mapped_column(String(128))
    profile_id: Mapped[str] = mapped_column(String(64), index=True)
    meter_number: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(100), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[DeviceStatus] = mapped_column(str_enum(DeviceStatus, "status"))
    last_seen: Mapped[dt.datetime | None]
    # the commissioning check (later) stores its outcome here
    commissioned_at: Mapped[dt.datetime | None]
    commissioned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    commissioning_passed: Mapped[bool | None]
    commissioning_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    gateway: Mapped[Gateway] = relationship(lazy="joined")


class Assignment(Base):
    """Device ↔ household (or a building's common area) during ``[valid_from, valid_to)``."""

    __tablename__ = "assignments"
    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="interval"),
        Index("ix_assignments_device_from", "device_id", "valid_from"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="RESTRICT"))
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("households.id", ondelete="RESTRICT"), index=True
    )
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="RESTRICT"), index=True)
    valid_from: Mapped[dt.datetime]
    valid_to: Mapped[dt.datetime | None]
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    device: Mapped[Device] = relationship(lazy="joined")
    household: Mapped[Household | None] = relationship(lazy="joined")
    building: Mapped[Building] = relationship(lazy="joined")


class CommissioningRun(Base):
    """One finished commissioning check of a device; the device's ``commissioning_*`` columns hold the
    latest. The report is the JSON the check produced (readings, plausibility, clock, signal, quarantine)."""

    __tablename__ = "commissioning_runs"
    __table_args__ = (
        UniqueConstraint("run_id"),
        Index("ix_commissioning_runs_device_started", "device_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    started_by: Mapped[str] = mapped_column(String(100), default="")
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime]
    passed: Mapped[bool]
    outcome: Mapped[str] = mapped_column(String(32))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


class Invitation(Base):
    """A one-time code with which a resident creates their account (:mod:`ingest.registry.invitations`).

    Only the code's SHA-256 is stored (the code carries 80 random bits: a leaked table gives no code).
    Open while not redeemed, not revoked and not expired; redeeming names the user it created.
    """

    __tablename__ = "invitations"
    __table_args__ = (UniqueConstraint("code_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    redeemed_at: Mapped[dt.datetime | None]
    redeemed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str] = mapped_column(String(100), default="")

    household: Mapped[Household] = relationship(lazy="joined")


class DeletionStatus(enum.StrEnum):
    started = "started"  # begun; a record left in this state means the run was cut off
    failed = "failed"  # stopped at ``error``; run the deletion again
    done = "done"  # nothing of the household is left: InfluxDB checked, the registry rows gone


class DeletionRecord(Base):
    """Who deleted which household's data when, and how much (:mod:`ingest.privacy`); never the data.

    No foreign key: the record outlives the household (and its actor). The household is named by its
    id, its building's id and the day it was registered (an id may be handed out again on SQLite), never
    by its name, which may be a family's. ``counts``: categories → numbers (InfluxDB values per retention
    policy and measurement, series, residents, invitations, assignments, household rows).
    """

    __tablename__ = "deletion_records"
    __table_args__ = (
        UniqueConstraint("reference"),
        Index("ix_deletion_records_household_id", "household_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32))
    household_id: Mapped[int]
    building_id: Mapped[int]
    household_created_at: Mapped[dt.datetime | None]
    actor: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[DeletionStatus] = mapped_column(str_enum(DeletionStatus, "status"))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(String(500), default="")
