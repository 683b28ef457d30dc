"""The demo's registry: the simulated quarter's buildings, households, gateways (with broker accounts),
devices and assignments, and one login per role.

Idempotent item by item: a start after a crash half-way through seeding completes what is missing and
keeps what is there (gateways, users, devices and their history made on the pages included). A gateway
whose password the demo does not know (made before a crash) gets a new one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.demo.credentials import DemoCredentials
from ingest.registry.assignments import create_assignment
from ingest.registry.buildings import create_building, create_household
from ingest.registry.fleet import BrokerAccounts, create_device, create_gateway, rotate_gateway
from ingest.registry.models import Building, Device, Gateway, GatewayStatus, Household, Role, User
from ingest.registry.people import create_user
from simulators.quarter import STREET_GATEWAY, Quarter

STREET_BUILDING = "Quartiersplatz"  # the street sensors' place: building-level, no household


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: Role
    household: str | None = None


def demo_logins(quarter: Quarter) -> tuple[DemoLogin, ...]:
    return (
        DemoLogin("operator", Role.operator),
        DemoLogin("technician", Role.technician),
        DemoLogin("resident", Role.resident, household=quarter.households[0].name),
    )


@dataclass(frozen=True)
class DemoDevice:
    native_id: str
    profile_id: str
    location: str
    household: str | None  # None: assigned to the building only


def household_devices(quarter: Quarter) -> Iterator[tuple[str, DemoDevice]]:
    """(gateway, device) for every device the simulator publishes."""
    for h in quarter.households:
        yield h.gateway, DemoDevice(h.meter_device, h.meter_family, "Zählerschrank", h.name)
        if h.pv_kwp:
            yield h.gateway, DemoDevice(h.pv_device, "generic-json", "Dach", h.name)
        if h.ev_kw:
            yield h.gateway, DemoDevice(h.ev_device, "shelly-gen2", "Tiefgarage", h.name)
        yield h.gateway, DemoDevice(h.heat_device, "generic-json", "Heizungsverteiler", h.name)
        yield h.gateway, DemoDevice(h.climate_device, "zigbee2mqtt", "Wohnzimmer", h.name)
    for sensor in quarter.street:
        yield sensor.gateway, DemoDevice(sensor.device, "ttn-v3", "Straße", None)


def _building_name(number: int) -> str:
    return f"Haus {number}"


def _by_name(
    session: Session, model: type[Building] | type[Household] | type[Gateway], name: str
) -> int | None:
    found: int | None = session.scalar(select(model.id).where(model.name == name))
    return found


def _stamp(gateway: Gateway) -> str:
    """When the gateway's password was made, as UTC without zone (SQLite gives it back naive)."""
    issued = gateway.credentials_issued_at
    if issued is None:
        return ""
    if issued.tzinfo is not None:
        issued = issued.astimezone(dt.UTC).replace(tzinfo=None)
    return issued.isoformat()


def _take_back(
    session: Session,
    broker: BrokerAccounts,
    gateway: Gateway,
    credentials: DemoCredentials,
    notices: list[str],
) -> None:
    """A new password for the simulated gateway when its own was lost, or was changed on the pages or
    the command line since the demo made it (the demo's gateways are the demo's to run). A revoked
    gateway stays revoked and silent, as a real one would."""
    name = gateway.name
    if gateway.status is not GatewayStatus.active:
        if credentials.gateways.pop(name, None) is not None:
            notices.append(f"{name} is {gateway.status.value}: its simulated devices stay silent")
        return
    known = name in credentials.gateways
    if known and credentials.issued.get(name, _stamp(gateway)) == _stamp(gateway):
        return
    credentials.gateways[name] = rotate_gateway(session, broker, gateway)
    if known:
        notices.append(f"{name}'s broker password was changed outside the demo: its simulation got a new one")


def seed(
    session: Session,
    broker: BrokerAccounts,
    quarter: Quarter,
    credentials: DemoCredentials,
    *,
    since: dt.datetime,
    notices: list[str],
) -> None:
    """Complete the registry for ``quarter``; new passwords go into ``credentials`` (save them).

    ``since``: when the devices were installed (their assignments' start). What a user should know
    (a gateway revoked or rotated on the pages) is appended to ``notices``.
    """
    buildings: dict[int, int] = {}
    for number in sorted({h.building for h in quarter.households}):
        found = _by_name(session, Building, _building_name(number))
        if found is None:
            found = create_building(session, name=_building_name(number), address=f"Quartiersweg {number}").id
        buildings[number] = found
    street = _by_name(session, Building, STREET_BUILDING)
    if street is None:
        street = create_building(session, name=STREET_BUILDING, notes="Straßensensoren des Quartiers").id
    households: dict[str, tuple[int, int]] = {}  # name -> (household id, building id)
    for h in quarter.households:
        found = _by_name(session, Household, h.name)
        if found is None:
            found = create_household(session, building_id=buildings[h.building], name=h.name).id
        households[h.name] = (found, buildings[h.building])
    gateway_buildings = {h.gateway: buildings[h.building] for h in quarter.households}
    gateway_buildings[STREET_GATEWAY] = street
    gateways: dict[str, int] = {}
    for name, building_id in gateway_buildings.items():
        gateway = session.scalar(select(Gateway).where(Gateway.name == name))
        if gateway is None:
            gateway, password = create_gateway(session, broker, name=name, building_id=building_id)
            credentials.gateways[name] = password
        else:
            _take_back(session, broker, gateway, credentials, notices)
        credentials.issued[name] = _stamp(gateway)
        gateways[name] = gateway.id
    known = set(session.execute(select(Device.gateway_id, Device.native_id)).tuples())
    for gateway_name, device in household_devices(quarter):
        gateway_id = gateways[gateway_name]
        if (gateway_id, device.native_id) in known:
            continue
        registered = create_device(
            session,
            gateway_id=gateway_id,
            native_id=device.native_id,
            profile_id=device.profile_id,
            location=device.location,
        )
        if device.household is None:
            create_assignment(session, device_id=registered.id, valid_from=since, building_id=street)
        else:
            create_assignment(
                session,
                device_id=registered.id,
                valid_from=since,
                household_id=households[device.household][0],
            )
    for login in demo_logins(quarter):
        if session.scalar(select(User.id).where(User.username == login.username)) is not None:
            continue
        password = credentials.logins.get(login.username) or DemoCredentials.new_password()
        resident_of = households[login.household][0] if login.household is not None else None
        create_user(
            session, username=login.username, password=password, role=login.role, household_id=resident_of
        )
        credentials.logins[login.username] = password
