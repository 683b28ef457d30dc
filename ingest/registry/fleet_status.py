"""Last seen per gateway and device, the fleet status list (silent ones first), and meter number search.

The ingester reports what it heard in batches (it keeps the newest receive time per gateway and device
between flushes itself): :func:`record_last_seen` writes the newest time per gateway and device in one
transaction (a time older than the stored one never moves it back). Use the *receive*
time: a device's own clock may be wrong, and "last seen" means "last heard from".
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from ingest.registry.db import commit, utcnow
from ingest.registry.models import Device, DeviceStatus, Gateway, GatewayStatus

Sighting = tuple[str, str | None, dt.datetime]  # (gateway, device native id or None, received at)
DEFAULT_SILENT_AFTER = dt.timedelta(minutes=15)


def _newest(
    sightings: Iterable[Sighting],
) -> tuple[dict[str, dt.datetime], dict[tuple[str, str], dt.datetime]]:
    gateways: dict[str, dt.datetime] = {}
    devices: dict[tuple[str, str], dt.datetime] = {}
    for gateway, device, seen in sightings:
        if seen.tzinfo is None:
            raise ValueError("naive datetime refused: give a timezone")
        if gateway not in gateways or seen > gateways[gateway]:
            gateways[gateway] = seen
        if device is not None and ((gateway, device) not in devices or seen > devices[(gateway, device)]):
            devices[(gateway, device)] = seen
    return gateways, devices


def record_last_seen(session: Session, sightings: Iterable[Sighting]) -> int:
    """Move ``last_seen`` forward for the named gateways and devices (unknown names are ignored).

    One transaction; returns how many rows changed. ``device`` None: only the gateway was heard.
    """
    gateways, devices = _newest(sightings)
    changed = 0
    if gateways:
        statement = (
            update(Gateway)
            .where(
                Gateway.name == bindparam("g_name"),
                or_(Gateway.last_seen.is_(None), Gateway.last_seen < bindparam("g_seen")),
            )
            .values(last_seen=bindparam("g_seen"))
            .execution_options(synchronize_session=False)
        )
        params = [{"g_name": name, "g_seen": seen} for name, seen in gateways.items()]
        changed += _execute_many(session, statement, params)
    if devices:
        gateway_id = select(Gateway.id).where(Gateway.name == bindparam("d_gateway")).scalar_subquery()
        statement = (
            update(Device)
            .where(
                Device.gateway_id == gateway_id,
                Device.native_id == bindparam("d_native"),
                or_(Device.last_seen.is_(None), Device.last_seen < bindparam("d_seen")),
            )
            .values(last_seen=bindparam("d_seen"))
            .execution_options(synchronize_session=False)
        )
        params = [{"d_gateway": g, "d_native": d, "d_seen": seen} for (g, d), seen in devices.items()]
        changed += _execute_many(session, statement, params)
    commit(session)
    return changed


def _execute_many(session: Session, statement: Executable, params: list[dict[str, object]]) -> int:
    changed = 0
    for param in params:  # one statement per key: portable rowcounts on SQLite and PostgreSQL
        result = session.connection().execute(statement, param)
        changed += max(0, result.rowcount)
    return changed


class Liveness(enum.StrEnum):
    never = "never"  # no message since registration
    silent = "silent"  # nothing for longer than silent_after
    ok = "ok"


@dataclass(frozen=True, slots=True)
class StatusRow:
    kind: str  # "gateway" | "device"
    id: int
    gateway: str
    name: str  # gateway name, or the device's native id
    meter_number: str | None
    profile_id: str | None
    last_seen: dt.datetime | None
    liveness: Liveness
    silent_for_s: float | None


def _liveness(last_seen: dt.datetime | None, now: dt.datetime, silent_after: dt.timedelta) -> Liveness:
    if last_seen is None:
        return Liveness.never
    return Liveness.silent if now - last_seen > silent_after else Liveness.ok


def fleet_status(
    session: Session,
    *,
    silent_after: dt.timedelta = DEFAULT_SILENT_AFTER,
    now: dt.datetime | None = None,
    limit: int = 500,
) -> list[StatusRow]:
    """Active gateways and non-retired devices, silent ones first (never seen, then longest silent)."""
    now = now or utcnow()
    never_first = case((Gateway.last_seen.is_(None), 0), else_=1)
    gateways = session.scalars(
        select(Gateway)
        .where(Gateway.status == GatewayStatus.active)
        .order_by(never_first, Gateway.last_seen, Gateway.name)
        .limit(limit)
    ).all()
    device_never_first = case((Device.last_seen.is_(None), 0), else_=1)
    devices = (
        session.scalars(
            select(Device)
            .join(Gateway, Device.gateway_id == Gateway.id)
            .where(and_(Device.status != DeviceStatus.retired, Gateway.status == GatewayStatus.active))
            .order_by(device_never_first, Device.last_seen, Device.id)
            .limit(limit)
        )
        .unique()
        .all()
    )
    rows = [
        StatusRow(
            kind="gateway",
            id=g.id,
            gateway=g.name,
            name=g.name,
            meter_number=None,
            profile_id=None,
            last_seen=g.last_seen,
            liveness=_liveness(g.last_seen, now, silent_after),
            silent_for_s=(now - g.last_seen).total_seconds() if g.last_seen else None,
        )
        for g in gateways
    ]
    rows += [
        StatusRow(
            kind="device",
            id=d.id,
            gateway=d.gateway.name,
            name=d.native_id,
            meter_number=d.meter_number,
            profile_id=d.profile_id,
            last_seen=d.last_seen,
            liveness=_liveness(d.last_seen, now, silent_after),
            silent_for_s=(now - d.last_seen).total_seconds() if d.last_seen else None,
        )
        for d in devices
    ]
    order = {Liveness.never: 0, Liveness.silent: 1, Liveness.ok: 2}
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(rows, key=lambda r: (order[r.liveness], r.last_seen or epoch, r.kind, r.name))


def search_meter_numbers(session: Session, text: str, *, limit: int = 50) -> list[Device]:
    """Devices whose meter number contains ``text`` (case-insensitive; exact matches first)."""
    text = text.strip()
    if not text:
        return []
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    exact_first = case((Device.meter_number == text, 0), else_=1)
    statement = (
        select(Device)
        .where(Device.meter_number.ilike(f"%{escaped}%", escape="\\"))
        .order_by(exact_first, Device.meter_number)
        .limit(limit)
    )
    return list(session.scalars(statement).unique())
