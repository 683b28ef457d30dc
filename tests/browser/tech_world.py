"""The technician pages' data: an operator, a resident, a gateway in the resident's building with a
device heard and one silent, and a commissioning run for each (one heard with a quarantined message,
one that heard nothing). Shared by the language and the accessibility tests."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from ingest.commissioning import report as rpt
from ingest.decode import MessageDecoder
from ingest.dynsec import DynsecAdmin
from ingest.profiles.loader import load_profiles
from ingest.registry.commissioning import record_check
from ingest.registry.db import commit, session_factory
from ingest.registry.fleet import create_gateway
from ingest.registry.models import Role
from tests.registry import factories as f

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class TechWorld:
    operator: str
    resident: str
    gateway_id: int
    gateway_name: str
    device_id: int
    runs: dict[str, str]  # "run-heard", "run-silent" -> run id
    unique: str

    def pages(self) -> dict[str, str]:
        """Every technician page that needs no form sent, by a short name."""
        return {
            "home": "/tech",
            "search": f"/tech/search?q=1ESY{self.unique}",
            "fleet": "/tech/fleet",
            "gateway": f"/tech/gateways/{self.gateway_id}",
            "gateway-revoke": f"/tech/gateways/{self.gateway_id}/revoke",
            "device": f"/tech/devices/{self.device_id}",
            "run-heard": f"/tech/runs/{self.runs['run-heard']}",
            "run-silent": f"/tech/runs/{self.runs['run-silent']}",
            "not-found": "/tech/devices/999999",
        }


def tech_world(registry_engine: Engine, broker_admin: DynsecAdmin, unique: str) -> TechWorld:
    heard = dt.datetime(2026, 11, 29, 13, 5, tzinfo=dt.UTC)
    with session_factory(registry_engine)() as session:
        operator = f.user(session, Role.operator)
        household = f.household(session)
        resident = f.user(session, Role.resident, household.id)
        gateway, _password = create_gateway(
            session, broker_admin, name=f"s{unique}", building_id=household.building_id
        )
        gateway.last_seen = heard
        device = f.device(session, gateway.id, meter_number=f"1ESY{unique}")
        device.last_seen = heard
        device.location = "Keller, Zählerschrank 2"
        silent = f.device(session, gateway.id)
        commit(session)
        decoder = MessageDecoder(load_profiles(REPO / "device_profiles"))
        now_ns = time.time_ns()
        topic = f"lab/{gateway.name}/{device.native_id}/state"
        payload = b'{"ts": 1000, "power_w": 523.5, "voltage_l1_v": 2301, "rssi_dbm": -61}'
        hit = rpt.QuarantineHit(7, topic, "invalid_json", "Expecting value: line 1 column 1", now_ns)
        target = rpt.Target(device.id, gateway.name, device.native_id, device.profile_id)
        reports = {
            "run-heard": (
                device,
                rpt.evaluate(
                    decoder,
                    target,
                    rpt.Observed(topic, payload, now_ns),
                    hits=[hit],
                    started_ns=now_ns - 10**9,
                ),
            ),
            "run-silent": (
                silent,
                rpt.no_message(
                    5, hits=[], started_ns=now_ns, topics=[f"lab/{gateway.name}/{silent.native_id}/state"]
                ),
            ),
        }
        runs = {}
        for name, (checked, report) in reports.items():
            runs[name] = uuid.uuid4().hex
            record_check(
                session,
                device_id=checked.id,
                run_id=runs[name],
                started_by_id=operator.id,
                started_by=operator.username,
                started_at=heard,
                finished_at=heard,
                report=report,
            )
        return TechWorld(
            operator.username, resident.username, gateway.id, gateway.name, device.id, runs, unique
        )
