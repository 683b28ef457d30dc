"""Bulk import of devices from an uploaded CSV file, answered with a report per row (all or nothing)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile, status
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from ingest.api.deps import SessionDep
from ingest.api.pages.web import CsrfChecked, StaffPage, render
from ingest.api.runs import profiles_of
from ingest.api.throttle import client_address
from ingest.registry.device_import import MAX_BYTES, import_devices
from ingest.security.audit import audit

router = APIRouter()


@router.get("/import")
def import_form(request: Request, user: StaffPage) -> HTMLResponse:
    return render(request, "import.html", user=user, report=None)


@router.post("/import", dependencies=[CsrfChecked])
async def import_submit(
    request: Request,
    user: StaffPage,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    dry_run: Annotated[bool, Form()] = False,
) -> HTMLResponse:
    data = await file.read(MAX_BYTES + 1)
    profiles = set(profiles_of(request).by_id)
    report = await run_in_threadpool(import_devices, session, data, profiles=profiles, dry_run=dry_run)
    audit(
        "devices.imported",
        by=user.username,
        client=client_address(request),
        rows=len(report.rows),
        ok=report.ok,
        written=report.written,
    )
    code = status.HTTP_200_OK if report.ok else status.HTTP_422_UNPROCESSABLE_CONTENT
    return render(request, "import.html", user=user, report=report, status_code=code)
