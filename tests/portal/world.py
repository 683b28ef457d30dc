"""A registry matching the test ledger (buildings, households, a resident each, an operator and a
technician, devices assigned), and the API pointed at the ledger's InfluxDB."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import Engine

from ingest.api.app import create_app
from ingest.api.security import TokenSigner
from ingest.config import Settings
from ingest.registry.assignments import create_assignment
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import commit, make_engine, session_factory
from ingest.registry.fleet import create_device
from ingest.registry.migrate import upgrade
from ingest.registry.models import Device, Role
from tests.portal.ledger import HOUSEHOLDS, Ledger
from tests.registry import factories as f

REPO = Path(__file__).resolve().parents[2]


@dataclass
class World:
    app: FastAPI
    engine: Engine
    residents: list[str]  # username per ledger household index
    operator: str
    technician: str
    devices: dict[int, list[str]]  # household index -> native ids assigned now

    def token(self, username: str) -> str:
        from ingest.registry.models import User

        with session_factory(self.engine)() as session:
            user = session.query(User).filter_by(username=username).one()
            signer: TokenSigner = self.app.state.signer
            return signer.issue(user)


def build_world(ledger: Ledger, directory: Path) -> World:
    engine = make_engine(f"sqlite:///{directory / 'registry.db'}")
    upgrade(engine)
    residents: list[str] = []
    devices: dict[int, list[str]] = {}
    now = dt.datetime.now(dt.UTC)
    with session_factory(engine)() as session:
        buildings = {}
        for name in sorted({building for _, building in HOUSEHOLDS}):
            buildings[name] = create_building(session, name=name).id
        gateway = f.gateway_row(session)
        for index, (name, building) in enumerate(HOUSEHOLDS):
            household = create_household(session, building_id=buildings[building], name=name)
            residents.append(f.user(session, Role.resident, household.id).username)
            ids = []
            for kind, location, seen in (("meter", "Zählerschrank", 60), ("climate", "Wohnzimmer", 3600)):
                native = f"dev-{index}-{kind}"
                device = create_device(
                    session,
                    gateway_id=gateway.id,
                    native_id=native,
                    profile_id="tasmota-sml" if kind == "meter" else "zigbee2mqtt",
                )
                session.get(Device, device.id).last_seen = now - dt.timedelta(seconds=seen)  # type: ignore[union-attr]
                session.get(Device, device.id).location = location  # type: ignore[union-attr]
                create_assignment(
                    session,
                    device_id=device.id,
                    household_id=household.id,
                    valid_from=now - dt.timedelta(days=30),
                )
                ids.append(native)
            # a device that measured this household until last week: not in its home any more
            old = create_device(
                session, gateway_id=gateway.id, native_id=f"dev-{index}-old", profile_id="sml"
            )
            create_assignment(
                session,
                device_id=old.id,
                household_id=household.id,
                valid_from=now - dt.timedelta(days=60),
                valid_to=now - dt.timedelta(days=7),
            )
            devices[index] = ids
        operator = f.user(session, Role.operator).username
        technician = f.user(session, Role.technician).username
        commit(session)
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        influx={"url": ledger.influx.url, "database": ledger.influx.database},
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": directory / "state"},
    )
    app = create_app(settings, engine=engine, migrate=False)
    return World(app, engine, residents, operator, technician, devices)
