"""Pages for a household's data (docs/privacy.md).

Operators (``/ops``): the households with their export and a deletion page that shows what would be
deleted and deletes only after the household's name is typed again (a form with the session's CSRF
token); the deletion records. Residents: ``/portal/export``, the ZIP of their own household, which
comes from the session (no parameter names a household).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from ingest.api.deps import ItemId, SessionDep
from ingest.api.export_limit import ExportRefused
from ingest.api.pages.i18n import negotiate, translator
from ingest.api.pages.web import (
    OPS_PREFIX,
    CsrfChecked,
    LoginRequired,
    OperatorPage,
    PageForbidden,
    render,
    session_user,
)
from ingest.api.routes.privacy import (
    export_lease,
    household_or_404,
    influx_settings,
    run_deletion,
    zip_response,
)
from ingest.portal.devices import household_of
from ingest.privacy.delete import MAX_REASON, Plan, plan_deletion, record_dict
from ingest.privacy.export import export_household
from ingest.privacy.influx import InfluxFailed, household_data
from ingest.registry.models import DeletionRecord, Household, Role, User
from ingest.registry.text import check_text

log = logging.getLogger(__name__)
PORTAL_EXPORT = "/portal/export"
router = APIRouter(include_in_schema=False)


def resident_user(request: Request, user: Annotated[User | None, Depends(session_user)]) -> User:
    if user is None:
        raise LoginRequired(request.url.path)
    if user.role is not Role.resident:
        raise PageForbidden(user, need="resident")
    return user


ResidentPage = Annotated[User, Depends(resident_user)]


@router.get(f"{OPS_PREFIX}/households")
def households_page(request: Request, user: OperatorPage, session: SessionDep) -> HTMLResponse:
    residents = dict(
        session.execute(
            select(User.household_id, func.count())
            .where(User.household_id.is_not(None))
            .group_by(User.household_id)
        ).all()
    )
    households = (
        session.scalars(select(Household).order_by(Household.building_id, Household.name)).unique().all()
    )
    return render(request, "privacy_households.html", user=user, households=households, residents=residents)


def _plan(request: Request, session: SessionDep, household: Household) -> Plan | None:
    try:
        with household_data(influx_settings(request)) as data:
            return plan_deletion(session, data, household, quarantine=request.app.state.privacy_quarantine)
    except InfluxFailed as exc:
        log.warning("deletion page: InfluxDB did not answer: %s", exc)
        return None


def _confirm_page(
    request: Request,
    user: User,
    session: SessionDep,
    household: Household,
    *,
    problem: str | None = None,
    reason: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "privacy_delete.html",
        user=user,
        household=household,
        plan=_plan(request, session, household),
        problem=problem,
        reason=reason,
        max_reason=MAX_REASON,
        status_code=status_code,
    )


@router.get(f"{OPS_PREFIX}/households/{{household_id}}/delete")
def delete_page(
    request: Request, user: OperatorPage, session: SessionDep, household_id: ItemId
) -> HTMLResponse:
    return _confirm_page(request, user, session, household_or_404(session, household_id))


@router.post(f"{OPS_PREFIX}/households/{{household_id}}/delete", dependencies=[CsrfChecked])
def delete_submit(
    request: Request,
    user: OperatorPage,
    session: SessionDep,
    household_id: ItemId,
    confirm_name: Annotated[str, Form(max_length=100)] = "",
    reason: Annotated[str, Form(max_length=MAX_REASON)] = "",
) -> Response:
    household = household_or_404(session, household_id)
    problem = None
    if confirm_name.strip() != household.name:
        problem = "privacy_name_mismatch"
    elif not reason.strip():
        problem = "privacy_reason_missing"
    else:
        try:
            reason = check_text(reason)
        except ValueError:
            problem = "privacy_reason_bad"
    if problem is not None:
        return _confirm_page(
            request, user, session, household, problem=problem, reason=reason, status_code=422
        )
    try:
        record = run_deletion(request, session, household, user, reason.strip())
    except HTTPException:
        session.rollback()
        return _confirm_page(
            request, user, session, household, problem="privacy_failed", reason=reason, status_code=503
        )
    return RedirectResponse(
        f"{OPS_PREFIX}/deletions?done={record.reference}", status_code=status.HTTP_303_SEE_OTHER
    )


@router.get(f"{OPS_PREFIX}/households/{{household_id}}/export")
def export_page(request: Request, user: OperatorPage, session: SessionDep, household_id: ItemId) -> Response:
    household = household_or_404(session, household_id)
    return _limited(request, session, user, household, None, "privacy_message.html")


@router.get(f"{OPS_PREFIX}/deletions")
def deletions_page(
    request: Request, user: OperatorPage, session: SessionDep, done: str | None = None
) -> HTMLResponse:
    rows = session.scalars(select(DeletionRecord).order_by(DeletionRecord.id.desc()).limit(200))
    records = [record_dict(row) for row in rows]
    finished = next((r for r in records if r["reference"] == done), None) if done else None
    return render(request, "privacy_deletions.html", user=user, records=records, finished=finished)


@router.get(PORTAL_EXPORT)
def portal_export(request: Request, user: ResidentPage, session: SessionDep) -> Response:
    """The resident's own household, from the session: nothing in the request names one."""
    household = session.get(Household, user.household_id) if user.household_id is not None else None
    if household is None:
        raise PageForbidden(user, need="resident")
    return _limited(request, session, user, household, "reallabor-my-data.zip", "portal_message.html")


def _limited(
    request: Request,
    session: SessionDep,
    user: User,
    household: Household,
    filename: str | None,
    template: str,
) -> Response:
    """The ZIP, or (not now: ingest.api.export_limit) a page saying why and when, with Retry-After."""
    try:
        lease = export_lease(request, user, household)
    except ExportRefused as exc:
        t = translator(negotiate(request))
        minutes = max(1, -(-exc.retry_after_s // 60))
        message = t(f"export_{exc.reason}", n=exc.per_hour, minutes=minutes)
        shown = household_of(session, user) if user.role is Role.resident else household  # the portal's
        response = render(
            request,
            template,
            user=user,
            household=shown,
            message=message,
            status_code=exc.status,
        )
        response.headers.update(exc.headers)
        return response
    try:
        export = export_household(session, household, quarantine=request.app.state.privacy_quarantine)
    except BaseException:
        lease.release()
        raise
    return zip_response(request, export, filename or export.filename, lease)
