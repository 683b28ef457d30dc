"""A household's data (docs/privacy.md): export and deletion by operators, export of their own household
by residents.

``GET /households/{id}/export`` (operators) and ``GET /me/export`` (residents: the household of the
session, never one named by the request) answer a ZIP (JSON + CSV, :mod:`ingest.privacy.export`),
streamed, bounded by :mod:`ingest.api.export_limit` (one at a time per user, a few per hour, two in the
process: 429/503 with Retry-After) and audited (``household.exported``).
``POST /households/{id}/deletion`` (operators, JSON ``{"confirm_name", "reason"}``: the
household's name typed again) deletes everything stored about it and answers the deletion record;
``GET /deletion-records`` lists them. InfluxDB unreachable: 503 (a deletion's record says which step).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.api.deps import ItemId, Limit, Offset, OperatorUser, ResidentUser, SessionDep
from ingest.api.export_limit import (
    OPERATOR_PER_HOUR,
    RESIDENT_PER_HOUR,
    ExportRefused,
    Lease,
    export_limiter,
    leased,
)
from ingest.api.throttle import client_address
from ingest.config import InfluxSettings, Settings
from ingest.privacy.delete import MAX_REASON, DeletionFailed, delete_household, record_dict, settle_seconds
from ingest.privacy.export import HouseholdExport, export_household
from ingest.privacy.influx import InfluxFailed, household_data
from ingest.quarantine import QUARANTINE_FILE
from ingest.registry.models import DeletionRecord, Household, Role, User
from ingest.registry.text import check_text
from ingest.security.audit import audit

router = APIRouter(tags=["privacy"])


class DeletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm_name: Annotated[str, Field(max_length=100, description="the household's name, typed again")]
    reason: Annotated[
        str,
        Field(min_length=1, max_length=MAX_REASON, description="why, kept in the record: no names"),
        BeforeValidator(lambda value: check_text(value) if isinstance(value, str) else value),
    ]


def influx_settings(request: Request) -> InfluxSettings:
    settings: InfluxSettings = request.app.state.privacy_influx
    return settings


def household_or_404(session: Session, household_id: int) -> Household:
    household = session.get(Household, household_id)
    if household is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such household")
    return household


def export_lease(request: Request, user: User, household: Household) -> Lease:
    """The limiter's lease for ``user`` exporting ``household`` (audited), or :class:`ExportRefused`."""
    per_hour = RESIDENT_PER_HOUR if user.role is Role.resident else OPERATOR_PER_HOUR
    address = client_address(request)
    try:
        lease = export_limiter(request.app).acquire(user.id, per_hour=per_hour)
    except ExportRefused as exc:
        audit("household.export_refused", user=user.username, household_id=household.id, why=exc.reason)
        raise
    audit("household.exported", user=user.username, household_id=household.id, client=address)
    return lease


def zip_response(request: Request, export: HouseholdExport, filename: str, lease: Lease) -> StreamingResponse:
    """The export as a download; InfluxDB is asked once before the first byte (503 when away), since a
    failure in the middle of a stream can only cut it off. ``lease`` is released when the stream ends,
    fails, or is dropped unread (the client left before the first byte)."""
    settings = influx_settings(request)
    try:
        with household_data(settings) as data:
            data.retention_policies()
    except InfluxFailed as exc:
        lease.release()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    except BaseException:
        lease.release()
        raise

    def stream() -> Iterator[bytes]:
        with household_data(settings) as data:
            yield from export.chunks(data)

    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return StreamingResponse(leased(stream(), lease), media_type="application/zip", headers=headers)


def limited_export(
    request: Request, session: Session, user: User, household: Household, filename: str | None = None
) -> StreamingResponse:
    """The export of ``household`` for ``user`` as the API answers it: 429/503 with Retry-After when the
    limiter says not now."""
    try:
        lease = export_lease(request, user, household)
    except ExportRefused as exc:
        raise HTTPException(exc.status, str(exc), headers=exc.headers) from exc
    try:
        export = export_household(session, household, quarantine=request.app.state.privacy_quarantine)
    except BaseException:
        lease.release()
        raise
    return zip_response(request, export, filename or export.filename, lease)


def run_deletion(
    request: Request, session: Session, household: Household, user: User, reason: str
) -> DeletionRecord:
    """:func:`delete_household` as ``user``; a failed step as 503 naming the record."""
    try:
        with household_data(influx_settings(request)) as data:
            return delete_household(
                session,
                data,
                household,
                actor=user.username,
                actor_role=user.role.value,
                reason=reason,
                settle_s=request.app.state.privacy_settle_s,
                quarantine=request.app.state.privacy_quarantine,
            )
    except DeletionFailed as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"deletion {exc.record.reference} stopped: {exc}; the household is kept, send it again",
        ) from exc
    except InfluxFailed as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


@router.get("/households/{household_id}/export", response_class=StreamingResponse)
def export_any(
    request: Request, user: OperatorUser, session: SessionDep, household_id: ItemId
) -> StreamingResponse:
    """Operators: everything stored about the household as a ZIP (household.json + CSV per measurement)."""
    return limited_export(request, session, user, household_or_404(session, household_id))


@router.post("/households/{household_id}/deletion")
def delete_any(
    request: Request, user: OperatorUser, session: SessionDep, household_id: ItemId, body: DeletionRequest
) -> dict[str, Any]:
    """Operators: delete everything stored about the household (InfluxDB and registry); the record."""
    household = household_or_404(session, household_id)
    if body.confirm_name.strip() != household.name:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "confirm_name: not the household's name; nothing deleted"
        )
    return record_dict(run_deletion(request, session, household, user, body.reason.strip()))


@router.get("/deletion-records")
def deletion_records(
    _user: OperatorUser, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    """Operators: the deletion records, newest first."""
    total = session.scalar(select(func.count()).select_from(DeletionRecord)) or 0
    rows = session.scalars(
        select(DeletionRecord).order_by(DeletionRecord.id.desc()).limit(limit).offset(offset)
    )
    return {"total": total, "items": [record_dict(row) for row in rows]}


@router.get("/me/export", response_class=StreamingResponse)
def export_mine(request: Request, user: ResidentUser, session: SessionDep) -> StreamingResponse:
    """Residents: everything stored about their own household (the session's, nothing else) as a ZIP."""
    assert user.household_id is not None  # the registry's check: a resident has a household
    household = household_or_404(session, user.household_id)
    return limited_export(request, session, user, household, "reallabor-my-data.zip")


def install(app: FastAPI, settings: Settings, *, api_prefix: str) -> None:
    """The API routes (``api_prefix``) and the pages (/ops/households, /ops/deletions, /portal/export)."""
    from ingest.api.pages import privacy_pages

    app.state.privacy_influx = settings.influx
    app.state.privacy_settle_s = settle_seconds(settings.registry)
    # the ingester's quarantine (and every instance's beside it), erased of the household's entries
    app.state.privacy_quarantine = settings.ingest.state_dir / QUARANTINE_FILE
    app.include_router(router, prefix=api_prefix)
    app.include_router(privacy_pages.router)
