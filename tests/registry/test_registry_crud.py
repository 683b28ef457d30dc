"""Registry CRUD, constraints, assignment history and the ingester snapshot, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from ingest.registry.assignments import (
    assignment_at,
    create_assignment,
    list_assignments,
    swap_meter,
    update_assignment,
)
from ingest.registry.buildings import create_building, create_household, list_buildings, list_households
from ingest.registry.common import delete_row
from ingest.registry.db import commit
from ingest.registry.errors import Conflict, InvalidField
from ingest.registry.fleet import delete_device, list_devices, update_device
from ingest.registry.models import Assignment, Device, DeviceStatus, Role, User
from ingest.registry.people import authenticate, create_user, update_user
from ingest.registry.snapshot import load_snapshot
from tests.registry import factories as f
from tests.registry.factories import t

pytestmark = pytest.mark.registry


def test_buildings_and_households_pagination_and_filters(session: Session) -> None:
    buildings = [f.building(session) for _ in range(3)]
    for b in buildings:
        f.household(session, b.id)
        f.household(session, b.id)
    page, total = list_buildings(session, limit=2, offset=1)
    assert total == 3
    assert [b.id for b in page] == [buildings[1].id, buildings[2].id]
    households, total = list_households(session, limit=10, offset=0, building_id=buildings[0].id)
    assert total == 2
    assert {h.building_id for h in households} == {buildings[0].id}


def test_duplicates_are_conflicts(session: Session) -> None:
    b = f.building(session)
    with pytest.raises(Conflict, match="building with this name"):
        create_building(session, name=b.name)
    h = f.household(session, b.id)
    with pytest.raises(Conflict, match="household with this name"):
        create_household(session, building_id=b.id, name=h.name)
    f.device(session, meter_number="1EMH0012345678")
    with pytest.raises(Conflict, match="meter number"):
        f.device(session, meter_number="1EMH0012345678")


def test_references_are_checked(session: Session) -> None:
    with pytest.raises(InvalidField) as error:
        create_household(session, building_id=424242, name="WE 1")
    assert error.value.field == "building_id"
    with pytest.raises(InvalidField) as error:
        f.device(session, gateway_id=424242)
    assert error.value.field == "gateway_id"


def test_delete_still_referenced_is_conflict(session: Session) -> None:
    h = f.household(session)
    with pytest.raises(Conflict, match="still referenced"):
        delete_row(session, h.building)
    delete_row(session, h)


def test_residents_belong_to_exactly_one_household(session: Session) -> None:
    h = f.household(session)
    with pytest.raises(InvalidField, match="household_id"):
        create_user(session, username="r1", password="long enough pw", role=Role.resident)
    with pytest.raises(InvalidField, match="only residents"):
        create_user(
            session, username="t1", password="long enough pw", role=Role.technician, household_id=h.id
        )
    resident = create_user(
        session, username="r1", password="long enough pw", role=Role.resident, household_id=h.id
    )
    assert resident.password_hash.startswith("$argon2id$")
    assert "long enough pw" not in resident.password_hash
    # the database refuses it too, whatever the code path
    session.add(User(username="r2", password_hash="x", role=Role.resident, household_id=None))
    with pytest.raises(Conflict):
        commit(session)


def test_authenticate_and_session_version(session: Session) -> None:
    h = f.household(session)
    user = create_user(
        session, username="anna", password="first password", role=Role.resident, household_id=h.id
    )
    assert authenticate(session, username="anna", password="first password") is not None
    assert authenticate(session, username="anna", password="wrong password") is None
    assert authenticate(session, username="nobody", password="first password") is None
    update_user(session, user, changes={"password": "second password"})
    assert user.session_version == 1
    assert authenticate(session, username="anna", password="first password") is None
    assert authenticate(session, username="anna", password="second password") is not None
    update_user(session, user, changes={"is_active": False})
    assert authenticate(session, username="anna", password="second password") is None


def test_overlapping_assignment_refused(session: Session) -> None:
    h1, h2 = f.household(session), f.household(session)
    device = f.device(session)
    create_assignment(session, device_id=device.id, household_id=h1.id, valid_from=t(8), valid_to=t(12))
    for start, end in [(t(7), t(9)), (t(11), None), (t(9), t(10)), (t(6), t(13)), (t(8), t(12))]:
        with pytest.raises(Conflict, match="already assigned"):
            create_assignment(
                session, device_id=device.id, household_id=h2.id, valid_from=start, valid_to=end
            )
    # touching intervals are fine: [8, 12) then [12, open)
    create_assignment(session, device_id=device.id, household_id=h2.id, valid_from=t(12))
    with pytest.raises(Conflict, match="already assigned"):
        create_assignment(session, device_id=device.id, household_id=h2.id, valid_from=t(5, day=2))
    with pytest.raises(InvalidField, match="after valid_from"):
        create_assignment(session, device_id=device.id, household_id=h2.id, valid_from=t(3), valid_to=t(2))


def test_overlap_enforced_by_the_database(session: Session) -> None:
    """Even a writer that skips the registry's check (or races it) cannot store an overlap."""
    h = f.household(session)
    device = f.device(session)
    create_assignment(session, device_id=device.id, household_id=h.id, valid_from=t(8))
    session.add(
        Assignment(
            device_id=device.id, household_id=h.id, building_id=h.building_id, valid_from=t(10), note=""
        )
    )
    with pytest.raises(Conflict, match="overlaps"):
        commit(session)
    other = create_assignment(
        session, device_id=device.id, household_id=h.id, valid_from=t(1), valid_to=t(2), note="earlier"
    )
    other.valid_to = t(9)  # an UPDATE into the open assignment
    with pytest.raises(Conflict, match="overlaps"):
        commit(session)


def test_update_assignment_checks_overlap(session: Session) -> None:
    h = f.household(session)
    device = f.device(session)
    first = create_assignment(session, device_id=device.id, household_id=h.id, valid_from=t(1), valid_to=t(5))
    create_assignment(session, device_id=device.id, household_id=h.id, valid_from=t(5))
    with pytest.raises(Conflict):
        update_assignment(session, first, changes={"valid_to": t(6)})
    update_assignment(session, first, changes={"valid_to": t(4), "note": "shortened"})
    assert first.valid_to == t(4)


def test_assignment_place_follows_the_household(session: Session) -> None:
    h = f.household(session)
    other_building = f.building(session)
    device = f.device(session)
    with pytest.raises(InvalidField, match="building_id"):
        create_assignment(
            session, device_id=device.id, household_id=h.id, building_id=other_building.id, valid_from=t(1)
        )
    with pytest.raises(InvalidField, match="household_id"):
        create_assignment(session, device_id=device.id, valid_from=t(1))
    common = create_assignment(session, device_id=device.id, building_id=other_building.id, valid_from=t(1))
    assert common.household_id is None
    assert common.building_id == other_building.id
    a = assignment_at(session, device_id=device.id, at=t(2))
    assert a is not None
    assert a.id == common.id


def test_meter_swap_keeps_history(session: Session) -> None:
    h_a, h_b = f.household(session), f.household(session)
    gateway = f.gateway_row(session)
    old = f.device(session, gateway.id, meter_number=f"OLD{f.tag()}")
    new = f.device(session, gateway.id, meter_number=f"NEW{f.tag()}")
    first = create_assignment(session, device_id=old.id, household_id=h_a.id, valid_from=t(0))
    swapped = swap_meter(session, old_device_id=old.id, new_device_id=new.id, at=t(13, 30))
    assert swapped.household_id == h_a.id
    assert swapped.valid_from == t(13, 30)
    assert swapped.valid_to is None
    session.refresh(first)
    session.refresh(old)
    assert first.valid_to == t(13, 30)
    assert old.status is DeviceStatus.retired

    def household_at(device_id: int, at: dt.datetime) -> int | None:
        found = assignment_at(session, device_id=device_id, at=at)
        return found.household_id if found else None

    assert household_at(old.id, t(13, 29)) == h_a.id
    assert household_at(old.id, t(13, 30)) is None  # half-open: the swap instant belongs to the new meter
    assert household_at(new.id, t(13, 29)) is None
    assert household_at(new.id, t(13, 30)) == h_a.id
    # the household moves the new meter on later: history of both stays
    update_assignment(session, swapped, changes={"valid_to": t(18)})
    create_assignment(session, device_id=new.id, household_id=h_b.id, valid_from=t(18))
    assert household_at(new.id, t(17, 59)) == h_a.id
    assert household_at(new.id, t(18)) == h_b.id
    history, total = list_assignments(session, limit=10, offset=0, household_id=h_a.id)
    assert total == 2
    assert [(a.device_id, a.valid_from, a.valid_to) for a in history] == [
        (old.id, t(0), t(13, 30)),
        (new.id, t(13, 30), t(18)),
    ]
    # the snapshot for the ingester tells the same story, as plain data
    snapshot = load_snapshot(session)
    old_span = snapshot.lookup(gateway.name, old.native_id, t(12))
    assert old_span is not None
    assert old_span.household == h_a.name
    assert snapshot.lookup(gateway.name, old.native_id, t(14)) is None
    new_before = snapshot.lookup(gateway.name, new.native_id, t(13, 29))
    new_after = snapshot.lookup(gateway.name, new.native_id, t(13, 30))
    assert new_before is None
    assert new_after is not None
    assert (new_after.household, new_after.building_id) == (
        h_a.name,
        h_a.building_id,
    )
    late = snapshot.lookup(gateway.name, new.native_id, t(19))
    assert late is not None
    assert late.household == h_b.name
    assert snapshot.lookup(gateway.name, "unknown-device", t(12)) is None
    plain = snapshot.as_dict()[(gateway.name, new.native_id)]
    assert plain == [
        (t(13, 30), t(18), h_a.name, h_a.building.name),
        (t(18), None, h_b.name, h_b.building.name),
    ]


def test_swap_refused_without_an_open_assignment(session: Session) -> None:
    old, new = f.device(session), f.device(session)
    with pytest.raises(Conflict, match="no assignment"):
        swap_meter(session, old_device_id=old.id, new_device_id=new.id, at=t(10))
    h = f.household(session)
    create_assignment(session, device_id=new.id, household_id=h.id, valid_from=t(1))
    create_assignment(session, device_id=old.id, household_id=h.id, valid_from=t(1))
    with pytest.raises(Conflict, match="already assigned"):  # the new meter is busy elsewhere
        swap_meter(session, old_device_id=old.id, new_device_id=new.id, at=t(10))
    current = assignment_at(session, device_id=old.id, at=t(10))
    assert current is not None
    assert current.valid_to is None


def test_device_filters_follow_the_current_assignment(session: Session) -> None:
    h1, h2 = f.household(session), f.household(session)
    gateway = f.gateway_row(session)
    d1 = f.device(session, gateway.id, meter_number=f"M{f.tag()}")
    d2 = f.device(session, gateway.id)
    now = dt.datetime.now(dt.UTC)
    create_assignment(session, device_id=d1.id, household_id=h1.id, valid_from=now - dt.timedelta(days=2))
    create_assignment(
        session,
        device_id=d2.id,
        household_id=h1.id,
        valid_from=now - dt.timedelta(days=9),
        valid_to=now - dt.timedelta(days=1),
    )
    create_assignment(session, device_id=d2.id, household_id=h2.id, valid_from=now - dt.timedelta(days=1))
    devices, total = list_devices(session, limit=10, offset=0, household_id=h1.id)
    assert (total, [d.id for d in devices]) == (1, [d1.id])
    devices, _ = list_devices(session, limit=10, offset=0, building_id=h2.building_id)
    assert [d.id for d in devices] == [d2.id]
    devices, _ = list_devices(session, limit=10, offset=0, meter_number=d1.meter_number)
    assert [d.id for d in devices] == [d1.id]
    devices, total = list_devices(
        session, limit=1, offset=1, gateway_id=gateway.id, profile_id="generic-json"
    )
    assert (total, [d.id for d in devices]) == (2, [d2.id])
    update_device(session, d2, changes={"status": DeviceStatus.faulty})
    devices, _ = list_devices(session, limit=10, offset=0, status=DeviceStatus.faulty)
    assert [d.id for d in devices] == [d2.id]


def test_device_with_history_cannot_be_deleted(session: Session) -> None:
    h = f.household(session)
    d = f.device(session)
    create_assignment(session, device_id=d.id, household_id=h.id, valid_from=t(1))
    with pytest.raises(Conflict, match="retired"):
        delete_device(session, d)
    spare = f.device(session)
    delete_device(session, spare)
    assert session.get(Device, spare.id) is None


def test_times_come_back_in_utc(session: Session) -> None:
    h = f.household(session)
    d = f.device(session)
    berlin = dt.timezone(dt.timedelta(hours=1))
    a = create_assignment(
        session, device_id=d.id, household_id=h.id, valid_from=dt.datetime(2026, 3, 1, 9, tzinfo=berlin)
    )
    session.expire_all()
    stored = session.get(Assignment, a.id)
    assert stored is not None
    assert stored.valid_from == t(8)
    assert stored.valid_from.tzinfo is not None
