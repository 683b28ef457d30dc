"""Fixtures: real Mosquitto and InfluxDB on free loopback ports in temp dirs, each test isolated.

One broker and one InfluxDB serve the whole session; every test gets its own topic prefix, MQTT client
id and InfluxDB database. Tests that stop or kill a service ask for their own instances instead.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.localservices import InfluxDB, Mosquitto
from tests.filled_day import filled_day  # one simulated day, shared by the panels and /ops tests
from tests.helpers import InfluxQuery, IngesterProcess, Target

__all__ = ["filled_day"]

REPO = Path(__file__).resolve().parents[1]
_counter = itertools.count(1)


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def mosquitto(services_dir: Path) -> Iterator[Mosquitto]:
    with Mosquitto(services_dir / "mosquitto") as broker:
        yield broker


@pytest.fixture(scope="session")
def influxdb(services_dir: Path) -> Iterator[InfluxDB]:
    with InfluxDB(services_dir / "influxdb") as server:
        yield server


@pytest.fixture
def target(mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> Iterator[Target]:
    """This test's own slice of the shared services: topic prefix, client id, database."""
    n = next(_counter)
    tag = f"t{n}{uuid.uuid4().hex[:6]}"
    target = Target(
        mqtt_port=mosquitto.port,
        influx_url=influxdb.url,
        database=f"db_{tag}",
        topic_prefix=f"{tag}/",
        client_id=f"ingest-{tag}",
        state_dir=tmp_path / "state",
        profiles_dir=REPO / "device_profiles",
    )
    yield target
    InfluxQuery(influxdb.url, target.database).drop()


@pytest.fixture
def ingester(target: Target, tmp_path: Path) -> Iterator[IngesterProcess]:
    """``reallabor ingest`` as a child process on this test's slice (started by the test)."""
    process = IngesterProcess(target, tmp_path, env={**os.environ})
    yield process
    process.stop()


@pytest.fixture
def influx(target: Target) -> InfluxQuery:
    return InfluxQuery(target.influx_url, target.database)


#: session fixtures that take tens of seconds to build, by module and name: their tests share one xdist
#: worker (``make test`` runs ``pytest -n 2 --dist loadgroup``), so each is built once, not once per worker
_EXPENSIVE_SESSION_FIXTURES = {
    ("tests.filled_day", "filled_day"): "filled-day",
    ("tests.panels.conftest", "rolled_day"): "filled-day",
    ("tests.portal.conftest", "ledger"): "portal-ledger",
    ("tests.portal.conftest", "world"): "portal-ledger",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        groups = {
            _EXPENSIVE_SESSION_FIXTURES[key]
            for name, defs in info.name2fixturedefs.items()
            if defs and (key := (defs[-1].func.__module__, name)) in _EXPENSIVE_SESSION_FIXTURES
        }
        if groups:
            item.add_marker(pytest.mark.xdist_group(sorted(groups)[0]))
