"""Commissioning results: each finished check is a history row, and the latest is kept on the device."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.registry.common import paginate
from ingest.registry.db import commit
from ingest.registry.errors import InvalidField
from ingest.registry.models import CommissioningRun, Device, DeviceStatus


def record_check(
    session: Session,
    *,
    device_id: int,
    run_id: str,
    started_by_id: int | None,
    started_by: str,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    report: dict[str, Any],
) -> CommissioningRun:
    """Store a finished check; a passed check makes a merely registered device active."""
    device = session.get(Device, device_id)
    if device is None:
        raise InvalidField("device_id", f"no device with id {device_id}")
    passed = bool(report.get("passed"))
    row = CommissioningRun(
        run_id=run_id,
        device_id=device_id,
        started_by_id=started_by_id,
        started_by=started_by[:100],
        started_at=started_at,
        finished_at=finished_at,
        passed=passed,
        outcome=str(report.get("outcome", "failed"))[:32],
        report=report,
    )
    session.add(row)
    device.commissioned_at = finished_at
    device.commissioned_by_id = started_by_id
    device.commissioning_passed = passed
    device.commissioning_report = report
    if passed and device.status is DeviceStatus.registered:
        device.status = DeviceStatus.active
    commit(session)
    return row


def list_checks(
    session: Session, *, device_id: int, limit: int, offset: int
) -> tuple[list[CommissioningRun], int]:
    """A device's checks, newest first."""
    statement = (
        select(CommissioningRun)
        .where(CommissioningRun.device_id == device_id)
        .order_by(CommissioningRun.started_at.desc(), CommissioningRun.id.desc())
    )
    return paginate(session, statement, limit=limit, offset=offset)


def get_check(session: Session, run_id: str) -> CommissioningRun | None:
    return session.scalar(select(CommissioningRun).where(CommissioningRun.run_id == run_id))
