"""Every alert rule of deploy/grafana/provisioning/alerting runs its InfluxQL against a real InfluxDB
(Debian's 1.6; Grafana cannot run here) on made-up readings and ingest_stats points, and the value the
rule's threshold sees fires for the faulty case only: a silent gateway and meter, a quarantine spike, a
spool over half full, broker drops, counters that no longer add up, dropped messages.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ingest.lineprotocol import format_line
from ingest.localservices import InfluxDB
from ingest.stats import Stats
from tests.helpers import InfluxQuery

pytestmark = [pytest.mark.integration]
RULES = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "provisioning" / "alerting"
MINUTE_NS = 60_000_000_000
OPS = {"gt": lambda value, limit: value > limit, "lt": lambda value, limit: value < limit}


def rules() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(RULES.glob("*.yaml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            for rule in group["rules"]:
                found[rule["uid"]] = rule
    return found


@pytest.fixture
def db(influxdb: InfluxDB) -> Iterator[InfluxQuery]:
    query = InfluxQuery(influxdb.url, f"alerts_{uuid.uuid4().hex[:8]}")
    httpx.post(f"{influxdb.url}/query", params={"q": f'CREATE DATABASE "{query.database}"'}, trust_env=False)
    yield query
    query.drop()


def write(db: InfluxQuery, lines: list[str]) -> None:
    response = httpx.post(
        f"{db.url}/write", params={"db": db.database}, content="\n".join(lines), trust_env=False
    )
    assert response.status_code == 204, response.text


def firing(db: InfluxQuery, uid: str) -> dict[tuple[str, ...], bool]:
    """The rule's query, reduced to its last value per series (Grafana's B) and checked against its
    threshold (C): series tags -> fires."""
    rule = rules()[uid]
    query, reduce, threshold = (item["model"] for item in rule["data"])
    assert reduce["reducer"] == "last"
    assert threshold["expression"] == "B"
    evaluator = threshold["conditions"][0]["evaluator"]
    result = {}
    for series in db.query(query["query"]):
        values = [row[1] for row in series["values"] if row[1] is not None]
        assert values, series
        key = tuple(series.get("tags", {}).values())
        result[key] = OPS[evaluator["type"]](values[-1], evaluator["params"][0])
    return result


def stats(client: str, at_ns: int, **fields: int) -> str:
    counters = [name for name, _ in Stats().point_fields()]  # what the ingester's point carries
    base = dict.fromkeys([*counters, "in_spool_records", "spool_bytes", "broker_dropped"], 0)
    base["spool_max_bytes"] = 1000
    base.update(fields)
    line: str = format_line("ingest_stats", {"client_id": client}, dict(base), at_ns)
    return line


def test_silent_gateway_and_meter(db: InfluxQuery) -> None:
    now = time.time_ns()
    lines = []
    for minute in range(120):
        at = now - minute * MINUTE_NS
        fields: dict[str, int | float | bool | str | None] = {"energy_import_kwh": 100.0 - minute}
        lines.append(format_line("electricity", {"device": "m1", "gateway": "gw-live"}, fields, at))
        if minute >= 16:  # silent for the last 16 minutes
            lines.append(format_line("electricity", {"device": "m2", "gateway": "gw-quiet"}, fields, at))
        if minute >= 10:  # a meter silent for 10 minutes only: not yet
            lines.append(format_line("electricity", {"device": "m3", "gateway": "gw-live"}, fields, at))
    write(db, lines)
    assert firing(db, "reallabor-silent-gateway") == {("gw-live",): False, ("gw-quiet",): True}
    assert firing(db, "reallabor-silent-meter") == {
        ("m1", "gw-live"): False,
        ("m2", "gw-quiet"): True,
        ("m3", "gw-live"): False,
    }


def test_ingest_stats_rules(db: InfluxQuery) -> None:
    now = time.time_ns()
    lines = []
    for step in range(30):  # every 10 s for 5 minutes, newest last
        at = now - (29 - step) * 10_000_000_000
        n = step * 100
        # healthy: what came in is spooled or quarantined, 5 messages on their way, nothing dropped
        lines.append(
            stats("healthy", at, received=n + step + 5, spooled=n, quarantined=step, spool_bytes=100)
        )
        # failing: 10 quarantined per step (290 in 5 min), spool 60 % full, the broker dropped 3 more,
        # counters that no longer add up and a dropped message
        lines.append(
            stats(
                "failing",
                at,
                received=n,
                spooled=n,
                quarantined=10 * step,
                spool_bytes=600,
                broker_dropped=7 if step > 20 else 4,
                dropped=1 if step > 25 else 0,
            )
        )
    write(db, lines)
    for uid in (
        "reallabor-quarantine-spike",
        "reallabor-spool-half-full",
        "reallabor-broker-dropped",
        "reallabor-accounting-broken",
        "reallabor-ingester-dropped",
    ):
        assert firing(db, uid) == {("failing",): True, ("healthy",): False}, uid


def test_an_ingester_restart_is_no_quarantine_spike(db: InfluxQuery) -> None:
    """Counters start at 0 again after a restart: the rules count increases, never the fall."""
    now = time.time_ns()
    values = [5000, 5001, 5002, 0, 1, 2]  # restarted between the third and fourth point
    write(
        db,
        [
            stats("restarted", now - (5 - i) * 10_000_000_000, received=2 * v, spooled=v, quarantined=v)
            for i, v in enumerate(values)
        ],
    )
    assert firing(db, "reallabor-quarantine-spike") == {("restarted",): False}
    assert firing(db, "reallabor-accounting-broken") == {("restarted",): False}


def test_silent_ingester(db: InfluxQuery) -> None:
    """An instance that stopped reporting for 5 minutes fires (its share queues in its session); one that
    reports, or was silent for 3 minutes only, does not."""
    now = time.time_ns()
    lines = []
    for step in range(60):  # every 10 s for 10 minutes, newest first
        at = now - step * 10_000_000_000
        lines.append(stats("reallabor-ingest-0", at, received=1000 - step))
        if step >= 33:  # nothing for the last 5.5 minutes
            lines.append(stats("reallabor-ingest-1", at, received=1000 - step))
        if step >= 18:  # nothing for the last 3 minutes: not yet
            lines.append(stats("reallabor-ingest-2", at, received=1000 - step))
    write(db, lines)
    assert firing(db, "reallabor-silent-ingester") == {
        ("reallabor-ingest-0",): False,
        ("reallabor-ingest-1",): True,
        ("reallabor-ingest-2",): False,
    }


def test_session_lost(db: InfluxQuery) -> None:
    """An instance whose process found its session gone (sessions_lost 1 since its start) fires; one that
    never lost it does not."""
    now = time.time_ns()
    lines = []
    for step in range(30):  # every 10 s for 5 minutes
        at = now - step * 10_000_000_000
        lines.append(stats("reallabor-ingest-0", at, received=1000 - step))
        lines.append(stats("reallabor-ingest-1", at, received=1000 - step, sessions_lost=1))
    write(db, lines)
    assert firing(db, "reallabor-session-lost") == {
        ("reallabor-ingest-0",): False,
        ("reallabor-ingest-1",): True,
    }
