"""The lifecycle's rollups (``rollups.<measurement>_15m`` / ``_1d``) of the panels' simulated day."""

from __future__ import annotations

import datetime as dt

import pytest

from ingest import lifecycle
from ingest.lifecycle_cli import InfluxV1
from tests.filled_day import DAY_DATE, FilledDay


@pytest.fixture(scope="session")
def rolled_day(filled_day: FilledDay) -> FilledDay:
    """``filled_day`` with the rollups of its day (and the evening before) computed by the lifecycle's
    backfill statements, as ``reallabor influx init --backfill-from`` does; running them again writes
    the same points."""
    influx = filled_day.influx
    client = InfluxV1(influx.url, auth=None)
    try:
        policies = client.query(f'SHOW RETENTION POLICIES ON "{influx.database}"')
        default = next(row[0] for row in policies[0]["values"] if row[-1] is True)
        # the whole rollup day (it ends at 23:00 UTC, an hour after the local day)
        until = dt.datetime.fromtimestamp(filled_day.day_end_ms / 1000 + 2 * 3600, dt.UTC)
        for statement in lifecycle.backfill_statements(
            influx.database, first_day=DAY_DATE - dt.timedelta(days=1), until=until, raw_rp=default
        ):
            client.query(statement, database=influx.database)
    finally:
        client.close()
    return filled_day
