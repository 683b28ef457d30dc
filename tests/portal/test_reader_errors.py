"""The portal's InfluxDB reader says what failed without the statement: its names (a household's) stay out
of logs and of the letters' stderr."""

from __future__ import annotations

import pytest

from ingest.config import InfluxSettings
from ingest.localservices import InfluxDB
from ingest.portal.reader import InfluxUnavailable, Reader

pytestmark = pytest.mark.integration


def test_a_refused_statement_is_named_by_its_status_only(influxdb: InfluxDB) -> None:
    reader = Reader(InfluxSettings(url=influxdb.url, database="portal_errors"))
    try:
        with pytest.raises(InfluxUnavailable) as refused:  # a syntax error: InfluxDB answers 400
            reader.rows('SELECT "kwh" FROM "energy" WHERE "household" = \'Familie Mustermann\' AND')
    finally:
        reader.close()
    assert str(refused.value) == "HTTP 400"
    assert "Mustermann" not in str(refused.value)
