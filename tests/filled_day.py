"""A real InfluxDB filled for the panel queries: one simulated day backfilled, and a short ingester run.

The day (18 June 2025, Europe/Berlin) of a 110-household quarter, readings every 15 minutes from 23:45 the
evening before, with meter swaps injected (``swap=0.05``: about one meter in 20 swapped during the day,
the new meter counting from zero), and one counter reset: :data:`RESET_HOUSEHOLD`'s main meter is
reset to zero right after its last reading before :data:`RESET_AT` (it counts from zero from there; the
energy used, the ground truth, is unchanged). Backfill: the simulator's messages go through the
ingester's decoder (device profiles) and line protocol, tagged with household and building as the
registry would tag them (``Haus <n>``, the demo's names), and are written over /write as fast as InfluxDB
takes them.

The energy ledger is filled by the real :func:`ingest.energy.job.rollup` over the day (and the evening
before, whose 23:45 readings are the meters' first: their baselines), into ``rollups.energy`` and
``rollups.energy_1d``, as ``reallabor energy rollup`` does; ``FilledDay.ledger`` is its report.

``ingest_stats`` (the pipeline dashboard) comes from the real ingester: it takes a few hundred messages
of another quarter on 1 January 2024 (far from the day, so no energy query sees them), some malformed,
through the real broker.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from ingest.decode import MessageDecoder
from ingest.energy.job import RollupReport, rollup
from ingest.energy.store import LedgerWriter, RawReader
from ingest.lifecycle_cli import InfluxV1
from ingest.lineprotocol import reading_line
from ingest.localservices import InfluxDB, Mosquitto
from ingest.profiles import load_profiles
from ingest.readings import DecodeRejected, FieldValue
from simulators.drive import drive
from simulators.engine import Message, Periods, Simulation
from simulators.faults import FaultSpec, FaultState
from simulators.publisher import Publisher
from simulators.quarter import Quarter, make_quarter
from simulators.sinks import MqttSink
from simulators.truth import GroundTruth
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

REPO = Path(__file__).resolve().parents[1]
DAY = int(dt.datetime(2025, 6, 17, 22, tzinfo=dt.UTC).timestamp())  # 18 June 2025 00:00 CEST
DAY_DATE = dt.date(2025, 6, 18)
STREET_BUILDING = "Quartiersplatz"
RESET_HOUSEHOLD = "hh-003"
RESET_AT = DAY + 12 * 3600  # noon local


@dataclass
class FilledDay:
    influx: InfluxQuery
    quarter: Quarter
    truth: GroundTruth
    faults: FaultState
    day_start_ms: int
    day_end_ms: int
    ledger: RollupReport


class BackfillSink:
    """Decode, tag like the registry, write line protocol in batches."""

    def __init__(self, quarter: Quarter, influx: InfluxQuery) -> None:
        self.decoder = MessageDecoder(load_profiles(REPO / "device_profiles"))
        self.influx = influx
        self.lines: list[str] = []
        self.tags: dict[str, dict[str, str]] = {}
        for h in quarter.households:
            for device in (h.meter_device, h.pv_device, h.ev_device, h.heat_device, h.climate_device):
                self.tags[device] = {"household": h.name, "building": f"Haus {h.building}"}
        for sensor in quarter.street:
            self.tags[sensor.device] = {"building": STREET_BUILDING}
        self.rejected = 0
        self.reset_device = next(h.meter_device for h in quarter.households if h.name == RESET_HOUSEHOLD)
        self.reset_by: float | None = None  # the counter at the reset, subtracted from every reading after
        self.last_import = 0.0

    def __call__(self, message: Message) -> None:
        try:
            readings = self.decoder.decode(message.topic, message.payload, message.time_s * 1_000_000_000)
        except DecodeRejected:
            self.rejected += 1
            return
        for reading in readings:
            if reading.tags["device"] == self.reset_device and "energy_import_kwh" in reading.fields:
                self._reset(reading.time_ns, reading.fields)
            reading.tags.update(self.tags[reading.tags["device"]])
            self.lines.append(reading_line(reading))
        if len(self.lines) >= 5000:
            self.flush()

    def _reset(self, time_ns: int, fields: dict[str, FieldValue]) -> None:
        """The counter reset: from RESET_AT on the meter reads what it counted since its last reading
        before (zero right after that reading)."""
        value = float(fields["energy_import_kwh"])
        if self.reset_by is None and time_ns >= RESET_AT * 1_000_000_000:
            self.reset_by = self.last_import
        elif self.reset_by is not None and value < self.last_import:
            self.reset_by = 0.0  # a swap after the reset: the new meter counts from its own zero
        if self.reset_by is not None:
            fields["energy_import_kwh"] = round(value - self.reset_by, 3)
        self.last_import = value

    def flush(self) -> None:
        if self.lines:
            response = httpx.post(
                f"{self.influx.url}/write",
                params={"db": self.influx.database, "precision": "ns"},
                content="\n".join(self.lines).encode(),
                timeout=60,
                trust_env=False,
            )
            assert response.status_code == 204, response.text
            self.lines = []


def gateway_health(sink: BackfillSink, quarter: Quarter) -> None:
    """Each gateway's health message every 15 minutes of the day, through the central decoder. The first
    gateway's uplink is down 14:00-16:00 local: its outbox fills with 4 readings a second and is sent when
    the link returns; the last gateway's clock is not synchronised in the morning (no offset)."""
    gateways = quarter.gateways
    meters = {g: [h.meter_device for h in quarter.households if h.gateway == g] for g in gateways}
    outage = (DAY + 14 * 3600, DAY + 16 * 3600)
    for time_s in range(DAY, DAY + 86400, 900):
        for n, gateway in enumerate(gateways):
            uptime = time_s - DAY + 3600
            depth = 4 * (time_s - outage[0]) if n == 0 and outage[0] <= time_s < outage[1] else 0
            clock: dict[str, object] = {
                "synced": True,
                "offset_s": round(0.002 * ((n + time_s // 900) % 5 - 2), 3),
            }
            if n == len(gateways) - 1 and time_s < DAY + 8 * 3600:
                clock = {"synced": False}
            document = {
                "time": dt.datetime.fromtimestamp(time_s, dt.UTC).isoformat().replace("+00:00", "Z"),
                "uptime_s": uptime,
                "outbox": {"depth": depth, "oldest_age_s": depth / 4},
                "clock": clock,
                "uplink": {"connected": depth == 0},
                "ports": {
                    m: {"frames": uptime, "broken": (uptime // 7200) % 3, "reconnects": 0}
                    for m in meters[gateway]
                },
            }
            topic = f"lab/{gateway}/health"
            payload = json.dumps(document).encode()
            for reading in sink.decoder.decode(topic, payload, time_s * 1_000_000_000):
                sink.lines.append(reading_line(reading))


@pytest.fixture(scope="session")
def filled_day(
    influxdb: InfluxDB, mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FilledDay]:
    database = f"panels_{uuid.uuid4().hex[:8]}"
    influx = InfluxQuery(influxdb.url, database)
    httpx.post(f"{influxdb.url}/query", data={"q": f'CREATE DATABASE "{database}"'}, trust_env=False)
    quarter = make_quarter(110, seed=5)
    faults = FaultState(FaultSpec(swap=0.05), seed=7)
    sim = Simulation(
        quarter,
        start_s=DAY - 1800,  # first reading 23:45 the evening before: the day's first increment
        interval_s=900,
        faults=faults,
        periods=Periods(heat=900, climate=900, street=900),
    )
    truth = GroundTruth(quarter)
    sink = BackfillSink(quarter, influx)
    drive(sim, sink, until_s=DAY + 86400, truth=truth)
    gateway_health(sink, quarter)
    sink.flush()
    assert sink.rejected == 0
    ledger = fill_ledger(influx, since=DAY_DATE - dt.timedelta(days=1), until=DAY_DATE + dt.timedelta(days=1))
    _ingester_run(influx, mosquitto, tmp_path_factory.mktemp("panels-ingester"))
    yield FilledDay(influx, quarter, truth, faults, DAY * 1000, (DAY + 86400) * 1000 - 1, ledger)
    influx.drop()


def fill_ledger(influx: InfluxQuery, *, since: dt.date, until: dt.date) -> RollupReport:
    """The energy ledger of the local days [since, until) by the real rollup (rollups RP made first, as
    `reallabor influx init` would)."""
    influx.query(f'CREATE RETENTION POLICY "rollups" ON "{influx.database}" DURATION INF REPLICATION 1')
    zone = ZoneInfo("Europe/Berlin")
    client = InfluxV1(influx.url, auth=None)
    writer = LedgerWriter(influx.url, influx.database, auth=None)
    try:
        return rollup(
            RawReader(client, influx.database),
            writer,
            since=dt.datetime.combine(since, dt.time(), zone),
            until=dt.datetime.combine(until, dt.time(), zone),
        )
    finally:
        writer.close()
        client.close()


def _ingester_run(influx: InfluxQuery, mosquitto: Mosquitto, directory: Path) -> None:
    """The real ingester into the same database: ingest_stats points, some messages quarantined."""
    tag = f"p{uuid.uuid4().hex[:6]}"
    target = Target(
        mqtt_port=mosquitto.port,
        influx_url=influx.url,
        database=influx.database,
        topic_prefix=f"{tag}/",
        client_id=f"ingest-{tag}",
        state_dir=directory / "state",
        profiles_dir=REPO / "device_profiles",
    )
    ingester = IngesterProcess(target, directory, env={**os.environ})
    ingester.start(ingest={"stats_interval_s": 0.5})
    try:
        quarter = make_quarter(4, seed=9)
        start = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp())
        sim = Simulation(
            quarter, start_s=start, interval_s=300, faults=FaultState(FaultSpec(malformed=0.1), seed=9)
        )
        with Publisher("127.0.0.1", mosquitto.port, client_id=f"sim-{tag}", window=500) as publisher:
            result = drive(sim, MqttSink(publisher, prefix=target.topic_prefix), until_s=start + 7200)
            publisher.flush()

        def settled() -> bool:
            rows = influx.rows(
                'SELECT last("received") AS "r", last("written") AS "w", '
                'last("quarantined") AS "q" FROM "ingest_stats"'
            )
            return (
                bool(rows)
                and rows[0]["r"] == result.delivered
                and rows[0]["w"] + rows[0]["q"] == rows[0]["r"]
            )

        wait_for(settled, timeout=60, what="ingest_stats with every message written or quarantined")

        def buckets() -> bool:  # the 10 s panels difference neighbouring buckets: three with stats
            series = influx.query(
                'SELECT count("received") FROM "ingest_stats" WHERE time > now() - 5m '
                "GROUP BY time(10s) fill(none)"
            )
            return bool(series) and len(series[0]["values"]) >= 3

        wait_for(buckets, timeout=40, what="ingest_stats in three 10-second buckets")
    finally:
        process = ingester.process
        ingester.stop()
        if process is not None and process.stderr is not None:
            process.stderr.close()
