"""Bodies of the technicians' routes: commissioning runs and results, fleet status, device profiles."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.api.schemas import Body, Public
from ingest.commissioning.runner import MAX_TIMEOUT_S, MIN_TIMEOUT_S

RUN_ID = r"^[0-9a-f]{32}$"


class CommissioningStart(Body):
    timeout_s: float | None = Field(
        None,
        ge=MIN_TIMEOUT_S,
        le=MAX_TIMEOUT_S,
        description="how long to wait for the device's next message (default: 120 s)",
    )


class CommissioningStarted(BaseModel):
    run_id: str
    device_id: int
    timeout_s: float
    status_url: str
    events_url: str = Field(description="server-sent events: one per phase, until passed or failed")


class CommissioningEvent(BaseModel):
    seq: int
    phase: str = Field(description="starting, connecting, listening, received, passed or failed")
    text: str
    at: str
    until: str | None = Field(None, description="listening: when the wait ends")


class CommissioningStatus(BaseModel):
    run_id: str
    device_id: int
    started_by: str
    started_at: dt.datetime
    timeout_s: float | None
    phase: str
    finished: bool
    listening_until: dt.datetime | None
    events: list[CommissioningEvent]
    report: dict[str, Any] | None = Field(description="the check's report once finished")


class CommissioningResult(Public):
    run_id: str
    device_id: int
    started_by: str
    started_at: dt.datetime
    finished_at: dt.datetime
    passed: bool
    outcome: str
    report: dict[str, Any]


class FleetRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str = Field(description="gateway or device")
    id: int
    gateway: str
    name: str
    meter_number: str | None
    profile_id: str | None
    last_seen: dt.datetime | None
    liveness: str = Field(description="never, silent or ok")
    silent_for_s: float | None


class ProfilePublic(BaseModel):
    id: str
    family: str
    description: str
    topics: list[str]
    plausibility: dict[str, dict[str, float | None]]


class DeviceValid(BaseModel):
    valid: bool = True
