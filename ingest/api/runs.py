"""The app's commissioning runs and device profiles as dependencies of routes and pages, and the check's
refusals as HTTP answers (the service is :mod:`ingest.commissioning`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from ingest.api.schemas_technician import CommissioningStatus
from ingest.commissioning.errors import CheckNotPossible, TooManyRuns
from ingest.commissioning.runner import Run, RunManager
from ingest.commissioning.status import run_state
from ingest.profiles.loader import ProfileSet
from ingest.registry.models import Device, User


def get_runs(request: Request) -> RunManager:
    runs: RunManager = request.app.state.runs
    return runs


RunsDep = Annotated[RunManager, Depends(get_runs)]


def profiles_of(request: Request) -> ProfileSet:
    """The loaded device profiles (503 when they cannot be loaded)."""
    try:
        return get_runs(request).commissioner.decoder().profiles
    except CheckNotPossible as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc


ProfilesDep = Annotated[ProfileSet, Depends(profiles_of)]


def start_run(runs: RunManager, device: Device, user: User, *, timeout_s: float) -> Run:
    """Start a check of ``device`` for ``user``; 409 when the device cannot be checked, 429 at the limit."""
    try:
        return runs.start_check(device, started_by_id=user.id, started_by=user.username, timeout_s=timeout_s)
    except CheckNotPossible as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except ValueError as exc:  # the id does not fit the profile's topics (fill_template): levels for {device}
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"device id {device.native_id!r} does not fit the topics of profile {device.profile_id}: {exc}",
        ) from exc
    except TooManyRuns as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "30"}
        ) from exc


def run_status(runs: RunManager, session: Session, run_id: str) -> CommissioningStatus:
    """A run's state (404 when unknown)."""
    state = run_state(runs, session, run_id)
    if state is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no commissioning run {run_id}")
    return CommissioningStatus.model_validate(state)
