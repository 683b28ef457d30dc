"""Running checks: :class:`Commissioner` does one check end to end; :class:`RunManager` keeps the checks
of the API process as named asyncio tasks, bounded in number, and lets pages watch them live.

A check: resolve the device and its topics (``plan``) → listen on the broker for its next message
(bounded wait) → judge it with the ingester's decoder → look up its pending quarantine entries → store
the result on the device and in its history. Every step is an event that watchers receive.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ingest.commissioning import report as rpt
from ingest.commissioning.errors import BrokerUnavailable, CheckNotPossible, TooManyRuns
from ingest.commissioning.listener import BrokerAccess, next_message
from ingest.commissioning.pending import pending_for
from ingest.decode import MessageDecoder
from ingest.profiles.fill import device_topic_filters
from ingest.quarantine import QuarantineError
from ingest.registry.commissioning import record_check
from ingest.registry.db import utcnow
from ingest.registry.errors import RegistryError
from ingest.registry.fleet_status import record_last_seen
from ingest.registry.models import Device
from ingest.security.audit import audit

log = logging.getLogger(__name__)

MIN_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 600.0
FINAL = ("passed", "failed")
Emit = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    target: rpt.Target
    filters: list[str]


@dataclass(frozen=True)
class CheckConfig:
    broker: BrokerAccess
    quarantine_path: Path | None = None
    limits: rpt.Limits = field(default_factory=rpt.Limits)


class Commissioner:
    """One check at a time per call; safe to run many calls concurrently."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        decoder: Callable[[], MessageDecoder],
        config: CheckConfig,
    ) -> None:
        self.sessions = sessions
        self._decoder = decoder
        self.config = config

    def decoder(self) -> MessageDecoder:
        """The ingester's decoder; CheckNotPossible when the profiles cannot be loaded."""
        return self._decoder()

    def plan(self, device: Device) -> Plan:
        """The device's target and topic filters; CheckNotPossible when it cannot be checked."""
        decoder = self.decoder()
        profile = decoder.profiles.by_id.get(device.profile_id)
        if profile is None:
            raise CheckNotPossible(f"the device's profile {device.profile_id!r} is not loaded")
        filters = device_topic_filters(
            profile, gateway=device.gateway.name, device=device.native_id, prefix=decoder.topic_prefix
        )
        if not filters:
            raise CheckNotPossible(f"profile {profile.id} has no topic naming the gateway and the device")
        target = rpt.Target(
            device_id=device.id,
            gateway=device.gateway.name,
            native_id=device.native_id,
            profile_id=device.profile_id,
        )
        return Plan(target=target, filters=filters)

    def _pending(self, filters: list[str]) -> tuple[list[rpt.QuarantineHit], str | None]:
        if self.config.quarantine_path is None:
            return [], None
        try:
            return pending_for(self.config.quarantine_path, filters), None
        except QuarantineError as exc:
            log.warning("commissioning: quarantine not readable: %s", exc)
            return [], f"the quarantine could not be read: {exc}"

    async def judge(self, plan: Plan, *, timeout_s: float, emit: Emit) -> dict[str, Any]:
        """Listen, decode, judge: the report (never raises for a device or broker problem)."""
        started_ns = time.time_ns()
        emit("connecting", f"connecting to the broker for {', '.join(plan.filters)}")
        try:
            message = await next_message(
                self.config.broker,
                plan.filters,
                timeout_s=timeout_s,
                on_listening=lambda: emit("listening", f"waiting up to {timeout_s:.0f} s for a message"),
            )
        except BrokerUnavailable as exc:
            return rpt.error("broker_unavailable", f"broker {self.config.broker!r}: {exc}")
        if message is not None:
            emit("received", f"message on {message.topic}")
        hits, problem = await asyncio.to_thread(self._pending, plan.filters)
        if message is None:
            result = rpt.no_message(timeout_s, hits=hits, started_ns=started_ns, topics=plan.filters)
        else:
            # in a thread: decoding a crafted payload must not hold up the API's event loop
            result = await asyncio.to_thread(
                rpt.evaluate,
                self.decoder(),
                plan.target,
                message,
                hits=hits,
                started_ns=started_ns,
                limits=self.config.limits,
            )
        if problem is not None:
            result["warnings"].append({"code": "quarantine_unreadable", "message": problem})
        return result

    def store(
        self,
        plan: Plan,
        *,
        run_id: str,
        started_by_id: int | None,
        started_by: str,
        started_at: dt.datetime,
        result: dict[str, Any],
    ) -> None:
        with self.sessions() as session:
            message = result.get("message")
            if message is not None:  # the check heard the device: the fleet list should say so
                heard = dt.datetime.fromisoformat(message["received"])
                record_last_seen(session, [(plan.target.gateway, plan.target.native_id, heard)])
            record_check(
                session,
                device_id=plan.target.device_id,
                run_id=run_id,
                started_by_id=started_by_id,
                started_by=started_by,
                started_at=started_at,
                finished_at=utcnow(),
                report=result,
            )

    async def check(
        self,
        plan: Plan,
        *,
        run_id: str,
        started_by_id: int | None,
        started_by: str,
        timeout_s: float,
        emit: Emit,
    ) -> dict[str, Any]:
        """Judge and store; the report. A store that fails is logged and reported as a warning."""
        started_at = utcnow()
        result = await self.judge(plan, timeout_s=timeout_s, emit=emit)
        try:
            await asyncio.to_thread(
                self.store,
                plan,
                run_id=run_id,
                started_by_id=started_by_id,
                started_by=started_by,
                started_at=started_at,
                result=result,
            )
        except RegistryError as exc:
            log.warning("commissioning run %s: result not stored: %s", run_id, exc)
            result["warnings"].append({"code": "not_stored", "message": f"result not stored: {exc}"})
        return result


# ---------------------------------------------------------------- live runs of the API process


@dataclass
class Run:
    """A check in progress or just finished: its events, and its report at the end."""

    id: str
    device_id: int
    started_by: str
    timeout_s: float
    started_at: dt.datetime = field(default_factory=utcnow)
    phase: str = "starting"
    events: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] | None = None
    listening_until: dt.datetime | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        return self.phase in FINAL

    def emit(self, phase: str, text: str) -> None:
        """Record an event (called on the event loop) and wake the watchers."""
        self.phase = phase
        event: dict[str, Any] = {"seq": len(self.events) + 1, "phase": phase, "text": text}
        event["at"] = utcnow().isoformat()
        if phase == "listening":
            self.listening_until = utcnow() + dt.timedelta(seconds=self.timeout_s)
            event["until"] = self.listening_until.isoformat()
        self.events.append(event)
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    def snapshot(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "device_id": self.device_id,
            "started_by": self.started_by,
            "started_at": self.started_at.isoformat(),
            "timeout_s": self.timeout_s,
            "phase": self.phase,
            "finished": self.finished,
            "listening_until": self.listening_until.isoformat() if self.listening_until else None,
            "events": list(self.events),
            "report": self.report,
        }

    async def follow(self, *, heartbeat_s: float = 15.0) -> AsyncIterator[dict[str, Any] | None]:
        """Every event from the first, as it happens, until the run is finished; None as a heartbeat."""
        sent = 0
        while True:
            while sent < len(self.events):
                sent += 1
                yield self.events[sent - 1]
            if self.finished:
                return
            try:  # no await between the check above and taking the event: no wake-up is missed
                await asyncio.wait_for(self._wake.wait(), heartbeat_s)
            except TimeoutError:
                yield None


class RunManager:
    """The API process's checks: at most ``max_active`` at once; finished ones kept for watching."""

    def __init__(self, commissioner: Commissioner, *, max_active: int = 8, keep_finished: int = 200) -> None:
        self.commissioner = commissioner
        self.max_active = max_active
        self.keep_finished = keep_finished
        self._runs: dict[str, Run] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def active(self) -> int:
        return len(self._tasks)

    def get(self, run_id: str) -> Run | None:
        return self._runs.get(run_id)

    def start_check(
        self, device: Device, *, started_by_id: int | None, started_by: str, timeout_s: float
    ) -> Run:
        """Plan a check of ``device`` and start it; CheckNotPossible when the device cannot be checked,
        TooManyRuns at the limit."""
        plan = self.commissioner.plan(device)
        return self.start(plan, started_by_id=started_by_id, started_by=started_by, timeout_s=timeout_s)

    def start(self, plan: Plan, *, started_by_id: int | None, started_by: str, timeout_s: float) -> Run:
        """Start a check as a task on the running loop; TooManyRuns at the limit."""
        if len(self._tasks) >= self.max_active:
            raise TooManyRuns(f"{len(self._tasks)} checks are running (limit {self.max_active})")
        run = Run(
            id=uuid.uuid4().hex, device_id=plan.target.device_id, started_by=started_by, timeout_s=timeout_s
        )
        self._runs[run.id] = run
        self._forget_old()
        task = asyncio.get_running_loop().create_task(
            self._execute(run, plan, started_by_id), name=f"commissioning-{run.id}"
        )
        self._tasks[run.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(run.id, None))
        audit("commissioning.started", run=run.id, device=plan.target.device_id, by=started_by)
        return run

    async def _execute(self, run: Run, plan: Plan, started_by_id: int | None) -> None:
        try:
            result = await self.commissioner.check(
                plan,
                run_id=run.id,
                started_by_id=started_by_id,
                started_by=run.started_by,
                timeout_s=run.timeout_s,
                emit=run.emit,
            )
        except asyncio.CancelledError:
            run.report = rpt.error("cancelled", "the API stopped during the check")
            run.emit("failed", "cancelled: the API stopped")
            raise
        except Exception as exc:  # a bug must not leave a watcher waiting forever
            log.exception("commissioning run %s failed", run.id)
            run.report = rpt.error("internal_error", f"the check failed: {type(exc).__name__}")
            run.emit("failed", "internal error")
            return
        run.report = result
        verdict = "passed" if result["passed"] else "failed"
        run.emit(verdict, "; ".join(r["message"] for r in result["reasons"]) or "all checks passed")
        log.info("commissioning run %s: %s", run.id, result["outcome"])

    def _forget_old(self) -> None:
        finished = [key for key, run in self._runs.items() if run.finished]
        for key in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._runs[key]

    async def close(self) -> None:
        """Cancel the running checks (API shutdown)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
