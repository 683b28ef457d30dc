"""Deleting a household (a move-out): :func:`plan_deletion` says what would go, :func:`delete_household`
removes it and leaves a :class:`~ingest.registry.models.DeletionRecord`.

The steps, in an order that can be run again after any failure (InfluxDB down midway, a crash):

1. the record, ``started``, committed: whatever happens next, there is a trace of the attempt;
2. the ingester's quarantine, every instance's file (:mod:`ingest.privacy.quarantine`): the messages of
   the household's devices while assigned to it, and refused lines with its tags (before the links go:
   the assignments say which messages are the household's);
3. the registry's links, in one transaction: residents (their sessions die with them), invitations,
   assignments. From the ingester's next snapshot (``registry.refresh_s``) on, the household's devices
   no longer tag new readings with it;
4. InfluxDB: count the household's values per retention policy and measurement, ``DROP SERIES``; wait
   for the ingester's next snapshot (``settle_s``) and drop what it wrote meanwhile; count again:
   ``done`` needs zero values and zero series left; the quarantine again, for what the ingesters
   quarantined of the household's devices until their assignments ended;
5. the household row, in the same transaction that marks the record ``done``.

A failure marks the record ``failed`` with the step (never the data, nor the household's name) and
raises :class:`DeletionFailed`; the household row is still there, so the same command runs again and
finishes (steps already done find nothing more to remove). Each attempt has its own record.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ingest.config import RegistrySettings
from ingest.privacy import quarantine as quarantined
from ingest.privacy import registry
from ingest.privacy.influx import HouseholdData, InfluxFailed
from ingest.registry.db import commit
from ingest.registry.models import DeletionRecord, DeletionStatus, Household
from ingest.security.audit import audit

log = logging.getLogger(__name__)
MAX_REASON = 500
SETTLE_MARGIN_S = 5.0


class DeletionFailed(Exception):
    """A step failed; :attr:`record` says which (status ``failed``). Run the deletion again."""

    def __init__(self, record: DeletionRecord, message: str) -> None:
        super().__init__(message)
        self.record = record


@dataclass
class Plan:
    """What a deletion of the household would remove now."""

    household_id: int
    reference: str
    residents: list[str]
    registry: dict[str, int]
    influx: dict[str, int]  # "policy.measurement" → values
    series: int
    devices: list[str] = field(default_factory=list)  # "gateway/device" of its assignments
    quarantine: int = 0  # its entries in the ingesters' quarantine files (every instance's)

    @property
    def influx_values(self) -> int:
        return sum(self.influx.values())

    def lines(self) -> list[str]:
        out = [f"{self.reference}:"]
        out.append(
            f"  residents (users, their sessions end): {len(self.residents)} {', '.join(self.residents)}"
        )
        out.append(f"  invitations: {self.registry['invitations']}")
        out.append(
            f"  assignments (devices stay, unassigned): {self.registry['assignments']} "
            f"{', '.join(self.devices)}"
        )
        out.append(f"  quarantine (every ingester instance's): {self.quarantine} messages")
        out.append(f"  InfluxDB: {self.series} series, {self.influx_values} values")
        out += [f"    {name}: {count}" for name, count in sorted(self.influx.items())]
        return out


def plan_deletion(
    session: Session, data: HouseholdData, household: Household, *, quarantine: Path | None = None
) -> Plan:
    """What :func:`delete_household` would remove now (``quarantine``: as there)."""
    selector = registry.selector(household)
    facts = registry.facts(session, household)
    return Plan(
        household_id=household.id,
        reference=registry.reference(household.id, household.building_id, household.created_at),
        residents=[user["username"] for user in facts["residents"]],
        registry=registry.counts(session, household),
        influx=data.counts(selector),
        series=data.series(selector),
        devices=sorted({f"{a['gateway']}/{a['device']}" for a in facts["assignments"]}),
        quarantine=quarantined.count(quarantine, quarantined.windows(session, household), selector),
    )


def settle_seconds(registry: RegistrySettings) -> float:
    """How long a running ingester may still write the household's readings once its assignments are
    gone: its next registry snapshot plus a margin for the batches enriched before it; 0 when the
    ingester does not enrich (``registry.enrich`` off: no reading carries a household tag)."""
    return registry.refresh_s + SETTLE_MARGIN_S if registry.enrich else 0.0


def _new_reference() -> str:
    return "D-" + secrets.token_hex(6)


def delete_household(
    session: Session,
    data: HouseholdData,
    household: Household,
    *,
    actor: str,
    actor_role: str,
    reason: str,
    settle_s: float = 0.0,
    quarantine: Path | None = None,
) -> DeletionRecord:
    """Delete everything stored about ``household`` (steps in the module docstring); the record, ``done``.

    ``settle_s``: after the first ``DROP SERIES``, wait this long and drop again what came in meanwhile
    (counted as ``influx_late``): a running ingester tags readings with the household until its next
    registry snapshot (``registry.refresh_s``) and writes them a flush later (:func:`settle_seconds`).

    ``quarantine``: the ingester's ``<state_dir>/quarantine.sqlite3``; it and every instance's beside it
    are erased of the household's entries (None, or no file there: the quarantine is not on this host).

    Raises :class:`DeletionFailed` (record ``failed``, committed) when a step fails."""
    selector = registry.selector(household)
    record = DeletionRecord(
        reference=_new_reference(),
        household_id=household.id,
        building_id=household.building_id,
        household_created_at=household.created_at,
        actor=actor[:100],
        actor_role=actor_role[:16],
        reason=reason[:MAX_REASON],
        status=DeletionStatus.started,
        counts={},
        error="",
    )
    session.add(record)
    commit(session)
    record_id, household_id = record.id, household.id
    neutral = registry.reference(household.id, household.building_id, household.created_at)
    counts: dict[str, Any] = {}
    step = "quarantine"
    try:
        windows = quarantined.windows(session, household)
        counts["quarantine"] = quarantined.erase(quarantine, windows, selector)
        record.counts = copy.deepcopy(counts)
        commit(session)
        step = "registry: residents, invitations, assignments"
        counts["registry"] = registry.remove_links(session, household)
        unlinked = dt.datetime.now(dt.UTC)
        record.counts = copy.deepcopy(counts)
        commit(session)
        step = "InfluxDB"
        counts["influx"] = data.counts(selector)
        counts["influx_series"] = data.series(selector)
        record.counts = copy.deepcopy(counts)
        commit(session)
        data.drop(selector)
        if settle_s > 0:  # what the ingester tagged before its snapshot lost the household: drop it too
            time.sleep(settle_s)
            late = data.counts(selector)
            if late:
                counts["influx_late"] = late
                data.drop(selector)
        step = "quarantine"  # what came in until the assignments ended (settled like InfluxDB's)
        late_quarantine = quarantined.erase(quarantine, quarantined.closed(windows, unlinked), selector)
        if any(late_quarantine.values()):
            counts["quarantine_late"] = late_quarantine
        step = "InfluxDB"
        left, left_series = data.counts(selector), data.series(selector)
        if left or left_series:
            raise InfluxFailed(
                f"InfluxDB: {sum(left.values())} values in {left_series} series left after DROP SERIES"
            )
        step = "registry: household row"
        session.delete(household)
        counts["registry"]["household"] = 1
        record.counts = copy.deepcopy(counts)
        record.status = DeletionStatus.done
        record.finished_at = dt.datetime.now(dt.UTC)
        commit(session)
    except Exception as exc:
        session.rollback()
        message = str(exc) if isinstance(exc, InfluxFailed) else f"{step} failed ({type(exc).__name__})"
        failed = session.get(DeletionRecord, record_id)
        assert failed is not None
        failed.status = DeletionStatus.failed
        failed.error = message[:500]
        failed.finished_at = dt.datetime.now(dt.UTC)
        commit(session)
        log.warning("deletion %s of %s failed at %s: %s", failed.reference, neutral, step, type(exc).__name__)
        audit("household.deletion_failed", record=failed.reference, household_id=household_id, by=actor)
        raise DeletionFailed(failed, message) from exc
    audit("household.deleted", record=record.reference, household_id=household_id, by=actor)
    return record


def record_dict(record: DeletionRecord) -> dict[str, Any]:
    """A record as the CLI, the API and the pages show it."""
    return {
        "reference": record.reference,
        "household_id": record.household_id,
        "building_id": record.building_id,
        "household_created_at": record.household_created_at.isoformat()
        if record.household_created_at
        else None,
        "actor": record.actor,
        "actor_role": record.actor_role,
        "reason": record.reason,
        "status": record.status.value,
        "started_at": record.started_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "counts": record.counts,
        "error": record.error,
    }
