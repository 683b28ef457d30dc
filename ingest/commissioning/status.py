"""A check's state by run id: the live run of this process, else its stored result in the same shape."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ingest.commissioning.runner import RunManager
from ingest.registry.commissioning import get_check
from ingest.registry.models import CommissioningRun


def stored_state(row: CommissioningRun) -> dict[str, Any]:
    """A finished check from its history row, shaped as :meth:`Run.snapshot` (no events kept)."""
    return {
        "run_id": row.run_id,
        "device_id": row.device_id,
        "started_by": row.started_by,
        "started_at": row.started_at,
        "timeout_s": None,
        "phase": "passed" if row.passed else "failed",
        "finished": True,
        "listening_until": None,
        "events": [],
        "report": row.report,
    }


def run_state(runs: RunManager, session: Session, run_id: str) -> dict[str, Any] | None:
    """The run's phase, events and report; None when no run has this id."""
    run = runs.get(run_id)
    if run is not None:
        return run.snapshot()
    row = get_check(session, run_id)
    return stored_state(row) if row is not None else None
