"""Deleting a household against the real InfluxDB and registry (SQLite and PostgreSQL): afterwards no
measurement in any retention policy has a point of it, the other households (one of the same name in
another building) keep every value, the registry has no row of it, the record says who and how much;
a deletion cut off by InfluxDB being away is finished by running it again."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ingest.config import RegistrySettings
from ingest.lifecycle_cli import InfluxV1
from ingest.localservices import LOOPBACK, free_port
from ingest.privacy.delete import (
    SETTLE_MARGIN_S,
    DeletionFailed,
    delete_household,
    plan_deletion,
    settle_seconds,
)
from ingest.privacy.influx import HouseholdData, Selector
from ingest.registry.models import (
    Assignment,
    DeletionRecord,
    DeletionStatus,
    Device,
    Household,
    Invitation,
    User,
)
from tests.helpers import InfluxQuery, Target
from tests.registry.privacy_world import RAW_POINTS, Home, Quarter, build, escape, write

pytestmark = pytest.mark.registry


@pytest.fixture
def quarter(session: Session, target: Target) -> Quarter:
    return build(session, target.influx_url, target.database)


def every_point(influx: InfluxQuery) -> dict[tuple[str, str], list[dict[str, object]]]:
    """Every point of every measurement in every retention policy, with its tags: (policy, measurement)
    → rows. Read without any household filter, so nothing a filter could miss is missed."""
    policies = [
        row[0] for s in influx.query(f'SHOW RETENTION POLICIES ON "{influx.database}"') for row in s["values"]
    ]
    measurements = [row[0] for s in influx.query("SHOW MEASUREMENTS") for row in s["values"]]
    out = {}
    for policy in policies:
        for measurement in measurements:
            rows = influx.rows(
                f'SELECT * FROM "{influx.database}"."{policy}"."{measurement}" '
                "WHERE time >= -9000000000000000000 AND time <= 9000000000000000000"
            )
            if rows:
                out[(policy, measurement)] = rows
    return out


def test_delete_leaves_nothing_of_the_household_and_a_record(
    session: Session, quarter: Quarter, influx: InfluxQuery
) -> None:
    gone, same_name, neighbour = quarter.homes
    before = quarter.counts()
    assert all(before[home.id] for home in quarter.homes)
    assert {"raw.electricity", "raw.environment", "rollups.electricity_15m", "rollups.energy_1d"} <= set(
        before[gone.id]
    )
    points_before = every_point(influx)
    resident_ids = [user.id for user in gone.residents]
    household_id = gone.id

    plan = plan_deletion(session, quarter.data(), gone.household)
    assert plan.residents == [user.username for user in gone.residents]
    assert plan.registry == {"residents": 2, "invitations": 1, "assignments": 2, "household": 1}
    assert plan.influx == before[gone.id]
    assert plan.series == 2 * 2 + 2 * 2 + 1  # 2 devices x (electricity, environment, _15m, _1d) + ledger

    record = delete_household(
        session, quarter.data(), gone.household, actor="op1", actor_role="operator", reason="move-out"
    )

    # InfluxDB: every measurement of every policy, read without a filter, has no point with its tags
    after = every_point(influx)
    for (policy, measurement), rows in after.items():
        mine = [r for r in rows if r.get("household") == "WE 1" and r.get("building") == gone.building]
        assert mine == [], (policy, measurement)
    # ... and the others lost nothing: the same points as before, value for value
    for (policy, measurement), rows in points_before.items():
        kept = [r for r in rows if (r.get("household"), r.get("building")) != ("WE 1", gone.building)]
        assert after.get((policy, measurement), []) == kept, (policy, measurement)
    assert quarter.counts()[same_name.id] == before[same_name.id]
    assert quarter.counts()[neighbour.id] == before[neighbour.id]
    assert (
        influx.query(f"SHOW SERIES WHERE \"building\" = '{gone.building}' AND \"household\" = 'WE 1'") == []
    )
    tag_values = influx.query('SHOW TAG VALUES WITH KEY = "building"')
    assert gone.building in [row[1] for s in tag_values for row in s["values"]]  # the neighbour's

    # the registry: no row of it, residents gone (their sessions with them), devices kept, unassigned
    session.expire_all()
    assert session.get(Household, household_id) is None
    assert all(session.get(User, user_id) is None for user_id in resident_ids)
    assert (
        session.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.household_id == household_id)
        )
        == 0
    )
    assert (
        session.scalar(
            select(func.count()).select_from(Invitation).where(Invitation.household_id == household_id)
        )
        == 0
    )
    for _gateway, native_id in gone.devices:
        assert session.scalar(select(Device.id).where(Device.native_id == native_id)) is not None
    for home in (same_name, neighbour):
        assert session.get(Household, home.id) is not None
        assert len(session.scalars(select(User).where(User.household_id == home.id)).all()) == 2
    no_name = session.execute(text("SELECT count(*) FROM households WHERE id = :id"), {"id": household_id})
    assert no_name.scalar() == 0

    # the record: who, when, how much, and no name or value of the household
    stored = session.scalars(select(DeletionRecord).where(DeletionRecord.household_id == household_id)).one()
    assert stored.reference == record.reference
    assert (stored.actor, stored.actor_role, stored.reason) == ("op1", "operator", "move-out")
    assert stored.status is DeletionStatus.done
    assert stored.finished_at is not None
    assert stored.building_id == gone.household.building_id
    assert stored.counts["registry"] == {"residents": 2, "invitations": 1, "assignments": 2, "household": 1}
    assert stored.counts["influx"] == before[gone.id]
    assert stored.counts["influx_series"] == 9
    assert stored.counts["influx"]["raw.environment"] == 2 * RAW_POINTS
    flat = repr((stored.counts, stored.error, stored.reason, stored.reference))
    assert "WE 1" not in flat
    assert gone.building not in flat
    assert "Resident" not in flat


def test_cut_off_by_influxdb_away_then_run_again(session: Session, quarter: Quarter) -> None:
    gone = quarter.homes[0]
    household_id = gone.id
    before = quarter.counts()
    away = InfluxV1(f"http://{LOOPBACK}:{free_port()}", auth=None, timeout_s=2)  # nothing listens there
    real = quarter.data()
    down = HouseholdData(reader=away, writer=away, database=quarter.database)

    with pytest.raises(DeletionFailed) as failed:
        delete_household(session, down, gone.household, actor="op1", actor_role="operator", reason="move-out")
    record = failed.value.record
    assert record.status is DeletionStatus.failed
    assert "InfluxDB" in record.error
    assert "WE 1" not in record.error
    session.expire_all()
    household = session.get(Household, household_id)
    assert household is not None  # still there: the command can run again
    assert quarter.counts()[household_id] == before[household_id]  # InfluxDB untouched

    again = delete_household(session, real, household, actor="op1", actor_role="operator", reason="move-out")
    assert again.status is DeletionStatus.done
    assert again.counts["registry"]["residents"] == 0  # removed by the first attempt
    assert again.counts["influx"] == before[household_id]
    assert quarter.counts()[household_id] == {}
    records = session.scalars(select(DeletionRecord).order_by(DeletionRecord.id)).all()
    assert [r.status for r in records] == [DeletionStatus.failed, DeletionStatus.done]
    assert len({r.reference for r in records}) == 2


class IngesterStillTagging(HouseholdData):
    """The real InfluxDB, and right after the first DROP SERIES a reading of the household arrives, as
    from a running ingester whose registry snapshot still has the household's assignments."""

    def __init__(self, quarter: Quarter, home: Home) -> None:
        client = InfluxV1(quarter.url, auth=None)
        super().__init__(reader=client, writer=client, database=quarter.database)
        self.quarter, self.home, self.drops = quarter, home, 0

    def drop(self, selector: Selector) -> None:
        super().drop(selector)
        self.drops += 1
        if self.drops == 1:
            gateway, device = self.home.devices[0]
            tags = f"household={escape(self.home.name)},building={escape(self.home.building)}"
            line = f"electricity,{tags},gateway={gateway},device={device} energy_import_kwh=1.5"
            write(self.quarter.url, self.quarter.database, [line])


def test_readings_tagged_after_the_first_drop_are_dropped_too(session: Session, quarter: Quarter) -> None:
    gone = quarter.homes[0]
    late = IngesterStillTagging(quarter, gone)
    record = delete_household(
        session, late, gone.household, actor="op1", actor_role="operator", reason="move-out", settle_s=0.2
    )
    assert late.drops == 2
    assert record.counts["influx_late"] == {"raw.electricity": 1}
    assert quarter.counts()[gone.id] == {}


def test_settle_follows_the_ingesters_snapshot() -> None:
    assert settle_seconds(RegistrySettings(enrich=True, refresh_s=10)) == 10 + SETTLE_MARGIN_S
    assert settle_seconds(RegistrySettings(enrich=False, refresh_s=10)) == 0
