"""A registry for the export tests, made by the registry's own functions (gateways inserted as rows, no
broker), and every identifier in it that must never reach an open-data file."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select

from ingest.registry.assignments import create_assignment
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import commit, make_engine, session_factory
from ingest.registry.fleet import broker_username, create_device
from ingest.registry.migrate import upgrade
from ingest.registry.models import Gateway, GatewayStatus, Role
from simulators.quarter import STREET_GATEWAY, Quarter
from tests.registry import factories as f

SINCE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
STREET_BUILDING = "Quartiersplatz"


@dataclass(frozen=True)
class Placed:
    """A device: behind ``gateway``, in ``household`` of ``building`` (household None: the building's)."""

    gateway: str
    native_id: str
    profile: str
    building: str
    household: str | None
    location: str = ""


@dataclass
class Registry:
    url: str
    engine: Engine
    identifiers: set[str] = field(default_factory=set)  # household, device, gateway and user names


def build_registry(
    directory: Path, buildings: list[str], households: list[tuple[str, str]], devices: list[Placed]
) -> Registry:
    """``buildings`` in this order (their ids), ``households`` as (name, building), ``devices``; a resident
    per household, an operator."""
    url = f"sqlite:///{directory / 'registry.db'}"
    engine = make_engine(url)
    upgrade(engine)
    registry = Registry(url, engine)
    with session_factory(engine)() as session:
        building_ids = {name: create_building(session, name=name).id for name in buildings}
        household_ids = {}
        for name, building in households:
            household = create_household(session, building_id=building_ids[building], name=name)
            household_ids[(name, building)] = household.id
            resident = f.user(session, Role.resident, household.id)
            registry.identifiers |= {name, resident.username}
        registry.identifiers.add(f.user(session, Role.operator).username)
        gateways: dict[str, int] = {}
        for device in devices:
            if device.gateway not in gateways:
                row = Gateway(
                    name=device.gateway,
                    building_id=building_ids[device.building],
                    status=GatewayStatus.active,
                    broker_username=broker_username(device.gateway),
                    notes="",
                )
                session.add(row)
                commit(session)
                gateways[device.gateway] = row.id
                registry.identifiers |= {row.name, row.broker_username}
            created = create_device(
                session,
                gateway_id=gateways[device.gateway],
                native_id=device.native_id,
                profile_id=device.profile,
                location=device.location,
            )
            registry.identifiers.add(device.native_id)
            place = (
                {"household_id": household_ids[(device.household, device.building)]}
                if device.household is not None
                else {"building_id": building_ids[device.building]}
            )
            create_assignment(session, device_id=created.id, valid_from=SINCE, **place)  # type: ignore[arg-type]
        assert session.scalar(select(Gateway.id).limit(1)) is not None
    return registry


def quarter_registry(directory: Path, quarter: Quarter) -> Registry:
    """The registry of a simulated quarter as tests/filled_day.py tags its readings (``Haus <n>``, street
    sensors at :data:`STREET_BUILDING` without household), the street sensors at known coordinates."""
    buildings = [f"Haus {number}" for number in sorted({h.building for h in quarter.households})]
    devices = []
    for h in quarter.households:
        building = f"Haus {h.building}"
        natives = [(h.meter_device, h.meter_family), (h.heat_device, "generic-json")]
        natives.append((h.climate_device, "zigbee2mqtt"))
        if h.pv_kwp:
            natives.append((h.pv_device, "generic-json"))
        if h.ev_kw:
            natives.append((h.ev_device, "shelly-gen2"))
        devices += [Placed(h.gateway, native, profile, building, h.name) for native, profile in natives]
    for number, sensor in enumerate(quarter.street):
        location = f"52.{5100 + number}, 13.{4000 + number}"
        devices.append(Placed(STREET_GATEWAY, sensor.device, "ttn-v3", STREET_BUILDING, None, location))
    households = [(h.name, f"Haus {h.building}") for h in quarter.households]
    return build_registry(directory, [*buildings, STREET_BUILDING], households, devices)
