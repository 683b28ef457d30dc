"""Gateways (with their broker accounts) and devices: keyword-only CRUD.

A gateway's broker account is created, re-keyed and removed through :class:`BrokerAccounts` (implemented by
:class:`ingest.dynsec.DynsecAdmin`). The generated password is returned once and never stored. Each account
is bound to the gateway's client id (:func:`gateway_client_id`, its broker username): no account can take
over another's session. :func:`bind_client_ids` binds the accounts of a broker provisioned before that.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from ingest.gateway.accounts import GATEWAY_NAME as NEW_GATEWAY_NAME
from ingest.gateway.accounts import GATEWAY_NAME_RULE as NEW_GATEWAY_NAME_RULE
from ingest.gateway.accounts import GATEWAY_USER_PREFIX as GATEWAY_USER_PREFIX  # re-exported
from ingest.gateway.accounts import broker_username as broker_username
from ingest.gateway.accounts import gateway_client_id as gateway_client_id
from ingest.registry.common import apply_changes, paginate, reference
from ingest.registry.db import commit, flush, utcnow
from ingest.registry.errors import Conflict, InvalidField
from ingest.registry.models import Assignment, Building, Device, DeviceStatus, Gateway, GatewayStatus
from ingest.registry.passwords import generate_password
from ingest.security.audit import audit

log = logging.getLogger(__name__)

# any gateway in the registry (lookups by name): older ones may have capitals; a new gateway must fit
# NEW_GATEWAY_NAME, gateway.yaml's rule, or it could never get an installation bundle
GATEWAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
GATEWAY_NAME_RULE = "1-64 letters, digits, '-' or '_' (it is a topic level: no '/', '+', '#')"


class BrokerAccounts(Protocol):
    """The broker's per-gateway accounts. Implementations raise their own error tree on failure."""

    def provision_gateway(self, *, gateway: str, username: str, password: str, client_id: str) -> None: ...

    def rotate_gateway(self, *, gateway: str, username: str, password: str, client_id: str) -> None: ...

    def revoke_gateway(self, *, gateway: str, username: str) -> None: ...


class BrokerClientIds(Protocol):
    """The client ids bound to the broker's accounts."""

    def client_ids(self) -> dict[str, str | None]: ...

    def bind_client_id(self, *, username: str, client_id: str) -> None: ...


# ---------------------------------------------------------------- gateways


def create_gateway(
    session: Session,
    broker: BrokerAccounts,
    *,
    name: str,
    building_id: int | None = None,
    notes: str = "",
) -> tuple[Gateway, str]:
    """Register a gateway and create its broker account; returns it with its password (shown once)."""
    if not NEW_GATEWAY_NAME.fullmatch(name):  # "$" alone lets a trailing newline through
        raise InvalidField("name", NEW_GATEWAY_NAME_RULE)
    if building_id is not None:
        reference(session, Building, building_id, field="building_id")
    gateway = Gateway(
        name=name,
        building_id=building_id,
        notes=notes,
        status=GatewayStatus.active,
        broker_username=broker_username(name),
        credentials_issued_at=utcnow(),
    )
    session.add(gateway)
    flush(session)  # a duplicate name is refused before the broker is touched
    password = generate_password()
    try:
        broker.provision_gateway(
            gateway=name,
            username=gateway.broker_username,
            password=password,
            client_id=gateway_client_id(name),
        )
    except BaseException:
        session.rollback()
        raise
    try:
        commit(session)
    except BaseException:
        log.warning("gateway %s: database commit failed, removing its broker account", name)
        broker.revoke_gateway(gateway=name, username=broker_username(name))
        raise
    audit("gateway.provisioned", gateway=name, broker_user=gateway.broker_username)
    return gateway, password


def rotate_gateway(
    session: Session, broker: BrokerAccounts, gateway: Gateway, *, actor: str | None = None
) -> str:
    """A new broker password for ``gateway`` (the old one stops working); returned once. ``actor``: who
    asked for it (a page's user, ``cli:<login>``), for the audit line."""
    if gateway.status is not GatewayStatus.active:
        raise Conflict(f"gateway {gateway.name} is {gateway.status.value}: provision a new one instead")
    password = generate_password()
    broker.rotate_gateway(
        gateway=gateway.name,
        username=gateway.broker_username,
        password=password,
        client_id=gateway_client_id(gateway.name),
    )
    gateway.credentials_issued_at = utcnow()
    commit(session)
    audit("gateway.rotated", gateway=gateway.name, broker_user=gateway.broker_username, actor=actor)
    return password


def revoke_gateway(session: Session, broker: BrokerAccounts, gateway: Gateway) -> Gateway:
    """Delete the broker account (a connected gateway is disconnected); the registry keeps the history."""
    broker.revoke_gateway(gateway=gateway.name, username=gateway.broker_username)
    gateway.status = GatewayStatus.revoked
    commit(session)
    audit("gateway.revoked", gateway=gateway.name, broker_user=gateway.broker_username)
    return gateway


@dataclass
class Bindings:
    """What :func:`bind_client_ids` found and did, by broker username."""

    bound: dict[str, str] = field(default_factory=dict)  # bound now (or would be, in a dry run)
    already: dict[str, str] = field(default_factory=dict)  # bound right before
    foreign: dict[str, str] = field(default_factory=dict)  # not ours, bound to an id of its own: left alone
    unbound: list[str] = field(default_factory=list)  # not ours and unbound: may use any id, ours too
    clashing: dict[str, str] = field(default_factory=dict)  # not ours, bound to one of our ids
    missing: list[str] = field(default_factory=list)  # active gateways without a broker account

    @property
    def complete(self) -> bool:
        """No account (the exempt aside) can connect with another account's client id."""
        return not self.unbound and not self.clashing


def bind_client_ids(
    session: Session,
    broker: BrokerClientIds,
    *,
    accounts: Mapping[str, str],
    exempt: Collection[str],
    dry_run: bool = False,
) -> Bindings:
    """Bind every broker account to its client id; idempotent.

    Gateway accounts (``gw-*``, in the registry or left over) get :func:`gateway_client_id`; ``accounts``
    maps further usernames (the ingester's) to theirs. ``exempt`` (the dynsec admin, who may change any
    binding anyway) stays as it is. Any other account is reported, never guessed at: the plugin does not
    keep ids unique, so one that is unbound, or bound to one of our ids, can take over that session.
    """
    wanted = {
        gateway.broker_username: gateway_client_id(gateway.name)
        for gateway in session.scalars(select(Gateway).where(Gateway.status == GatewayStatus.active))
    }
    on_broker = broker.client_ids()
    result = Bindings(missing=sorted(wanted.keys() - on_broker.keys()))
    wanted.update(accounts)
    ours = set(wanted.values())
    for username, current in sorted(on_broker.items()):
        if username in exempt:
            continue
        target = wanted.get(username)
        if target is None and username.startswith(GATEWAY_USER_PREFIX):
            target = gateway_client_id(username.removeprefix(GATEWAY_USER_PREFIX))
        if target is None:
            if current is None:
                result.unbound.append(username)
            elif current in ours or current.startswith(GATEWAY_USER_PREFIX):
                result.clashing[username] = current
            else:
                result.foreign[username] = current
        elif current == target:
            result.already[username] = target
        else:
            if not dry_run:
                broker.bind_client_id(username=username, client_id=target)
                log.info("broker account %s bound to client id %s (was %s)", username, target, current)
            result.bound[username] = target
    return result


def get_gateway_by_name(session: Session, name: str) -> Gateway | None:
    return session.scalar(select(Gateway).where(Gateway.name == name))


def list_gateways(
    session: Session,
    *,
    limit: int,
    offset: int,
    building_id: int | None = None,
    status: GatewayStatus | None = None,
    name: str | None = None,
) -> tuple[list[Gateway], int]:
    statement = select(Gateway).order_by(Gateway.id)
    if building_id is not None:
        statement = statement.where(Gateway.building_id == building_id)
    if status is not None:
        statement = statement.where(Gateway.status == status)
    if name is not None:
        statement = statement.where(Gateway.name == name)
    return paginate(session, statement, limit=limit, offset=offset)


def update_gateway(session: Session, gateway: Gateway, *, changes: Mapping[str, Any]) -> Gateway:
    if changes.get("building_id") is not None:
        reference(session, Building, changes["building_id"], field="building_id")
    apply_changes(gateway, changes)
    commit(session)
    return gateway


# ---------------------------------------------------------------- devices


def _check_meter_number(session: Session, meter_number: str | None, *, device_id: int | None = None) -> None:
    if meter_number is None:
        return
    statement = select(Device.id).where(Device.meter_number == meter_number)
    if device_id is not None:
        statement = statement.where(Device.id != device_id)
    if session.scalar(statement) is not None:
        raise Conflict(f"a device with meter number {meter_number!r} exists")


def create_device(
    session: Session,
    *,
    gateway_id: int,
    native_id: str,
    profile_id: str,
    meter_number: str | None = None,
    location: str = "",
    notes: str = "",
    status: DeviceStatus = DeviceStatus.registered,
    commit_now: bool = True,
) -> Device:
    gateway = reference(session, Gateway, gateway_id, field="gateway_id")
    _check_meter_number(session, meter_number)
    if session.scalar(
        select(Device.id).where(Device.gateway_id == gateway_id, Device.native_id == native_id)
    ):
        raise Conflict(f"gateway {gateway.name} already has a device {native_id!r}")
    device = Device(
        gateway_id=gateway_id,
        native_id=native_id,
        profile_id=profile_id,
        meter_number=meter_number,
        location=location,
        notes=notes,
        status=status,
    )
    session.add(device)
    if commit_now:
        commit(session)
    else:
        flush(session)
    return device


def get_device_by_meter_number(session: Session, meter_number: str) -> Device | None:
    return session.scalar(select(Device).where(Device.meter_number == meter_number))


def _assigned_at(statement: Select[Device], at: dt.datetime, **where: int) -> Select[Device]:
    conditions = [
        Assignment.device_id == Device.id,
        Assignment.valid_from <= at,
        (Assignment.valid_to.is_(None)) | (Assignment.valid_to > at),
    ]
    conditions += [getattr(Assignment, name) == value for name, value in where.items()]
    return statement.where(exists().where(*conditions))


def list_devices(
    session: Session,
    *,
    limit: int,
    offset: int,
    gateway_id: int | None = None,
    building_id: int | None = None,
    household_id: int | None = None,
    meter_number: str | None = None,
    profile_id: str | None = None,
    status: DeviceStatus | None = None,
    at: dt.datetime | None = None,
) -> tuple[list[Device], int]:
    """Devices by their fields; building and household filter by the assignment valid ``at`` (now)."""
    statement = select(Device).order_by(Device.id)
    if gateway_id is not None:
        statement = statement.where(Device.gateway_id == gateway_id)
    if meter_number is not None:
        statement = statement.where(Device.meter_number == meter_number)
    if profile_id is not None:
        statement = statement.where(Device.profile_id == profile_id)
    if status is not None:
        statement = statement.where(Device.status == status)
    if building_id is not None:
        statement = _assigned_at(statement, at or utcnow(), building_id=building_id)
    if household_id is not None:
        statement = _assigned_at(statement, at or utcnow(), household_id=household_id)
    return paginate(session, statement, limit=limit, offset=offset)


def update_device(session: Session, device: Device, *, changes: Mapping[str, Any]) -> Device:
    if "gateway_id" in changes:
        reference(session, Gateway, changes["gateway_id"], field="gateway_id")
    if "meter_number" in changes:
        _check_meter_number(session, changes["meter_number"], device_id=device.id)
    apply_changes(device, changes)
    commit(session)
    return device


def delete_device(session: Session, device: Device) -> None:
    """Delete a device that was never assigned; one with history must be retired instead."""
    if session.scalar(select(Assignment.id).where(Assignment.device_id == device.id).limit(1)):
        raise Conflict("the device has assignment history: set its status to retired instead")
    session.delete(device)
    commit(session)
