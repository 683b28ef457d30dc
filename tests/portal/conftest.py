"""The portal tests' ledger: written once per session into its own database of the session's InfluxDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from ingest.config import InfluxSettings
from ingest.localservices import InfluxDB
from ingest.portal.data import PortalData
from ingest.portal.reader import Reader
from tests.portal.ledger import TZ, Ledger, make_ledger
from tests.portal.world import World, build_world


@pytest.fixture(scope="session")
def ledger(influxdb: InfluxDB) -> Iterator[Ledger]:
    written = make_ledger(influxdb, today=dt.datetime.now(TZ).date())
    yield written
    written.influx.drop()


@pytest.fixture
def portal_data(ledger: Ledger) -> Iterator[PortalData]:
    reader = Reader(InfluxSettings(url=ledger.influx.url, database=ledger.influx.database))
    yield PortalData(reader, TZ)
    reader.close()


@pytest.fixture(scope="session")
def world(ledger: Ledger, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build_world(ledger, tmp_path_factory.mktemp("portal-world"))
    yield built
    built.engine.dispose()
