"""A registry for the bench workload: 11 buildings (one per gateway), 110 households, 440 devices, each
assigned since 2000 (so every reading, past or live, gets household and building tags), plus the probe.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bench.workload import Device, devices
from ingest.registry.assignments import create_assignment
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import make_engine, session_factory
from ingest.registry.fleet import create_device
from ingest.registry.migrate import upgrade
from ingest.registry.models import Gateway, GatewayStatus

SINCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def seed_registry(path: Path, *, extra: list[Device]) -> str:
    """Create the SQLite registry at ``path``; returns its SQLAlchemy URL."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    session = session_factory(engine)()
    try:
        buildings: dict[str, int] = {}
        gateways: dict[str, int] = {}
        households: dict[str, int] = {}
        for device in [*devices(), *extra]:
            if device.gateway not in gateways:
                building = create_building(session, name=f"Haus {device.gateway}")
                # added directly, as the tests do: no broker account is needed for the bench
                gateway = Gateway(
                    name=device.gateway,
                    building_id=building.id,
                    status=GatewayStatus.active,
                    broker_username=f"gw-{device.gateway}",
                )
                session.add(gateway)
                session.commit()
                buildings[device.gateway], gateways[device.gateway] = building.id, gateway.id
            household_name = device.device.rsplit("-", 1)[0]  # hh-001-sml -> hh-001
            if household_name not in households:
                households[household_name] = create_household(
                    session, building_id=buildings[device.gateway], name=household_name
                ).id
            registered = create_device(
                session,
                gateway_id=gateways[device.gateway],
                native_id=device.device,
                profile_id="tasmota-sml",
            )
            create_assignment(
                session, device_id=registered.id, valid_from=SINCE, household_id=households[household_name]
            )
    finally:
        session.close()
        engine.dispose()
    return url
