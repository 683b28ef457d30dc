"""Three households with registry rows and InfluxDB points in every place a household's data lands:
raw readings (retention policy ``raw``), the 15-minute and daily rollups and the energy ledger
(``rollups``). Two of them share a name in different buildings (the enricher's tags: household name +
building name), so a deletion or export that went by the name alone would touch the wrong one.

Every household's values are its own: ``index * 1_000_000 + n`` (so an export holding a foreign value
is caught by value, not only by tag).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy.orm import Session

from ingest.lifecycle_cli import InfluxV1, init_lifecycle
from ingest.privacy.influx import HouseholdData
from ingest.registry.assignments import create_assignment
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import commit
from ingest.registry.models import Household, Invitation, Role, User
from tests.registry import factories as f

MINUTE_NS = 60 * 10**9
RAW_POINTS = 30  # per device and measurement, a minute apart, the last half hour
ROLLUP_DAYS = 40  # daily rollups and ledger rows reaching back beyond one export chunk (31 days)


@dataclass
class Home:
    index: int
    household: Household
    building: str
    residents: list[User]
    id: int = 0  # kept here: the ORM row is gone after a deletion
    name: str = ""
    usernames: list[str] = field(default_factory=list)
    devices: list[tuple[str, str]] = field(default_factory=list)  # (gateway, native id)

    def __post_init__(self) -> None:
        self.id, self.name = self.household.id, self.household.name
        self.usernames = [user.username for user in self.residents]

    @property
    def base(self) -> int:
        return self.index * 1_000_000


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _lines(home: Home, now_ns: int) -> tuple[list[str], list[str]]:
    tags = f"household={escape(home.name)},building={escape(home.building)}"
    raw, rollups = [], []
    for gateway, device in home.devices:
        dev = f"{tags},gateway={escape(gateway)},device={escape(device)}"
        for n in range(RAW_POINTS):
            at = now_ns - n * MINUTE_NS
            value = home.base + n
            raw.append(f"electricity,{dev} energy_import_kwh={value},power_w={value + 0.5} {at}")
            raw.append(f"environment,{dev} temperature_c={value} {at}")
        for n in range(8):
            at = now_ns - now_ns % (900 * 10**9) - n * 900 * 10**9
            value = home.base + n
            rollups.append(
                f"electricity_15m,{dev} energy_import_kwh={value},energy_import_kwh_max={value} {at}"
            )
        day_ns = 86_400 * 10**9
        for n in range(ROLLUP_DAYS):
            at = now_ns - now_ns % day_ns - n * day_ns - 3_600 * 10**9
            rollups.append(f"electricity_1d,{dev} energy_import_kwh={home.base + n} {at}")
    day_ns = 86_400 * 10**9
    for n in range(ROLLUP_DAYS):  # the ledger: one row per household and day, no device
        at = now_ns - now_ns % day_ns - n * day_ns - 3_600 * 10**9
        rollups.append(f"energy_1d,{tags},kind=import kwh={home.base + n + 0.25} {at}")
    return raw, rollups


def write(url: str, database: str, lines: list[str], *, policy: str | None = None) -> None:
    params = {"db": database, "precision": "ns", **({"rp": policy} if policy else {})}
    response = httpx.post(f"{url}/write", params=params, content="\n".join(lines), trust_env=False)
    assert response.status_code == 204, response.text


@dataclass
class Quarter:
    homes: list[Home]
    url: str
    database: str

    def data(self) -> HouseholdData:
        client = InfluxV1(self.url, auth=None)
        return HouseholdData(reader=client, writer=client, database=self.database)

    def counts(self) -> dict[int, dict[str, int]]:
        """Each household's values per ``policy.measurement``, read as a stranger would: by tags."""
        from ingest.privacy.influx import Selector

        data = self.data()
        return {home.id: data.counts(Selector(home.name, home.building)) for home in self.homes}


def build(session: Session, url: str, database: str) -> Quarter:
    """Two buildings; households 'WE 1' in both and 'WE 2' in the first; residents, an invitation,
    devices with assignments; InfluxDB's retention policies as ``reallabor influx init`` makes them."""
    client = InfluxV1(url, auth=None)
    try:
        init_lifecycle(client, database=database, raw_retention=dt.timedelta(days=90))
    finally:
        client.close()
    suffix = f.tag()
    haus_a = create_building(session, name=f"Haus A{suffix}")
    haus_b = create_building(session, name=f"Haus B{suffix}")
    homes = []
    for index, (building, name) in enumerate(((haus_a, "WE 1"), (haus_b, "WE 1"), (haus_a, "WE 2")), 1):
        household = create_household(session, building_id=building.id, name=name, notes=f"notes {index}")
        residents = [f.user(session, Role.resident, household.id) for _ in range(2)]
        residents[0].full_name = f"Resident {index}"
        gateway = f.gateway_row(session, building.id)
        home = Home(index, household, building.name, residents)
        for _ in range(2):
            device = f.device(session, gateway.id)
            create_assignment(
                session,
                device_id=device.id,
                household_id=household.id,
                valid_from=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            )
            home.devices.append((gateway.name, device.native_id))
        session.add(
            Invitation(
                code_hash=f"{index:02d}" + "0" * 62,
                household_id=household.id,
                created_by="operator",
                expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
            )
        )
        commit(session)
        homes.append(home)
    now_ns = time.time_ns()
    for home in homes:
        raw, rollups = _lines(home, now_ns)
        write(url, database, raw)
        write(url, database, rollups, policy="rollups")
    return Quarter(homes=homes, url=url, database=database)
