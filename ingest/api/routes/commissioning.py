"""The commissioning check: staff start it for a device, watch it live, and read a device's results.

Live updates are server-sent events (``GET /commissioning/{run_id}/events``): a check has a handful of
phase changes spread over up to minutes, the browser's EventSource reconnects by itself and sends the
session cookie, and no client polls an idle run. ``GET /commissioning/{run_id}`` is the same state as
one JSON document, for clients without EventSource (and the page's fallback).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, status
from fastapi.responses import StreamingResponse

from ingest.api.deps import ItemId, Limit, Offset, SessionDep, StaffUser
from ingest.api.routes.common import get_or_404, page_of
from ingest.api.runs import RunsDep, run_status, start_run
from ingest.api.schemas import Page
from ingest.api.schemas_technician import (
    RUN_ID,
    CommissioningResult,
    CommissioningStart,
    CommissioningStarted,
    CommissioningStatus,
)
from ingest.commissioning.runner import Run
from ingest.registry.commissioning import list_checks
from ingest.registry.models import Device

log = logging.getLogger(__name__)
router = APIRouter(tags=["commissioning"])
RunId = Annotated[str, Path(pattern=RUN_ID, description="from POST /devices/{device_id}/commissioning")]


@router.post(
    "/devices/{device_id}/commissioning",
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "the device cannot be checked"}, 429: {"description": "too many runs"}},
)
async def start_commissioning(
    user: StaffUser,
    session: SessionDep,
    runs: RunsDep,
    request: Request,
    device_id: ItemId,
    body: Annotated[CommissioningStart | None, Body()] = None,
) -> CommissioningStarted:
    """Wait (bounded) for the device's next message and judge it; returns at once with the run id."""
    device = get_or_404(session, Device, device_id)
    timeout_s = body.timeout_s if body is not None and body.timeout_s is not None else None
    run = start_run(runs, device, user, timeout_s=timeout_s or request.app.state.commissioning_timeout_s)
    return CommissioningStarted(
        run_id=run.id,
        device_id=device.id,
        timeout_s=run.timeout_s,
        status_url=f"{request.app.state.api_prefix}/commissioning/{run.id}",
        events_url=f"{request.app.state.api_prefix}/commissioning/{run.id}/events",
    )


@router.get("/devices/{device_id}/commissioning")
def read_commissioning_results(
    _user: StaffUser, session: SessionDep, device_id: ItemId, limit: Limit = 20, offset: Offset = 0
) -> Page[CommissioningResult]:
    """The device's finished checks, newest first."""
    get_or_404(session, Device, device_id)
    rows = list_checks(session, device_id=device_id, limit=limit, offset=offset)
    return page_of(CommissioningResult, rows, limit=limit, offset=offset)


@router.get("/commissioning/{run_id}", responses={404: {"description": "unknown run"}})
def read_commissioning_run(
    _user: StaffUser, session: SessionDep, runs: RunsDep, run_id: RunId
) -> CommissioningStatus:
    """A run's phase, events and (once finished) report."""
    return run_status(runs, session, run_id)


def _event(kind: str, data: dict[str, Any], seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


async def _stream(run: Run) -> AsyncIterator[str]:
    yield "retry: 3000\n\n"
    async for event in run.follow():
        if event is None:
            yield ": keep-alive\n\n"
            continue
        data = dict(event)
        if event["phase"] in ("passed", "failed"):
            data["report"] = run.report
        yield _event(event["phase"], data, event["seq"])


async def _finished(status_: CommissioningStatus) -> AsyncIterator[str]:
    yield _event(
        status_.phase, {"seq": 1, "phase": status_.phase, "text": "finished", "report": status_.report}
    )


@router.get(
    "/commissioning/{run_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "one event per phase"},
        404: {"description": "unknown run"},
    },
)
def follow_commissioning_run(
    _user: StaffUser, session: SessionDep, runs: RunsDep, run_id: RunId
) -> StreamingResponse:
    """Server-sent events: every phase of the run from its start, ending with ``passed`` or ``failed``."""
    run = runs.get(run_id)
    stream = _stream(run) if run is not None else _finished(run_status(runs, session, run_id))
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
