"""One documented example of every device profile through real Mosquitto and the ingester into InfluxDB."""

from __future__ import annotations

import math
from pathlib import Path

from ingest.localservices import Mosquitto
from ingest.profiles import load_profiles
from ingest.profiles.schema import Example
from ingest.timeparse import datetime_to_ns
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "device_profiles")


def _first_example_with_readings(profile_id: str) -> Example:
    """Preferably one whose readings carry the device's time (then the time is checked too)."""
    examples = [e for e in PROFILES.by_id[profile_id].profile.examples if e.readings]
    timed = [e for e in examples if all(r.time is not None for r in e.readings)]
    return (timed or examples)[0]


def _matches(row: dict[str, object], fields: dict[str, float | bool | str]) -> bool:
    for key, expected in fields.items():
        actual = row.get(key)
        if isinstance(expected, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
            if not math.isclose(float(actual), expected, rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif actual != expected:
            return False
    return True


def test_one_example_of_every_profile_lands_in_influxdb(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery
) -> None:
    ingester.start()
    # announcements give no readings: they are kept in quarantine (tests/integration/test_discovery.py)
    examples = {
        p.id: _first_example_with_readings(p.id) for p in PROFILES if p.profile.decoder != "announcement"
    }
    with Publisher("127.0.0.1", mosquitto.port) as publisher:
        for example in examples.values():
            publisher.publish(target.topic_prefix + example.topic, example.payload_bytes())
        publisher.flush()

    for profile_id, example in examples.items():
        for expected in example.readings:
            profile = expected.tags.get("profile", profile_id)  # also_read_by: another reads part
            query = f"SELECT * FROM \"{expected.measurement}\" WHERE profile = '{profile}'"
            if expected.time is not None:
                query += f" AND time = {datetime_to_ns(expected.time)}"

            def found(query: str = query, fields: dict[str, float | bool | str] = expected.fields) -> bool:
                return any(_matches(row, fields) for row in influx.rows(query))

            wait_for(found, timeout=30, what=f"{profile_id}: {expected.measurement} {expected.fields}")
    assert "Traceback" not in ingester.output()
