"""The quarter simulator end to end: real Mosquitto, the ingester process, real InfluxDB, vs ground truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ingest.consumption import daily_energy
from ingest.localservices import Mosquitto, free_port
from simulators.drive import drive
from simulators.engine import Periods, Simulation
from simulators.faults import FaultSpec, FaultState
from simulators.publisher import Publisher
from simulators.quarter import make_quarter
from simulators.sinks import MqttSink
from simulators.truth import GroundTruth, read_days
from tests.helpers import InfluxQuery, IngesterProcess, Target, assert_accounting, settled, wait_for

DAY = int(dt.datetime(2025, 6, 17, 22, tzinfo=dt.UTC).timestamp())  # 18 June 00:00 CEST
SPEED = 86400 / 8  # a simulated day in about 8 s


def _run_day(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, tmp_path: Path, faults: str
) -> tuple[Path, int, FaultState]:
    port = free_port()
    ingester.start(ingest={"metrics_port": port, "stats_interval_s": 1})
    quarter = make_quarter(110, seed=5)
    state = FaultState(FaultSpec.parse(faults), seed=5)
    sim = Simulation(
        quarter,
        start_s=DAY - 900,  # the first reading at midnight is the day's baseline
        interval_s=900,
        faults=state,
        periods=Periods(climate=3600, street=3600),
        heat=False,
    )
    truth = GroundTruth(quarter)
    with Publisher("127.0.0.1", mosquitto.port, client_id=f"sim-{target.client_id}", window=2000) as pub:
        result = drive(
            sim, MqttSink(pub, prefix=target.topic_prefix), until_s=DAY + 86400, speed=SPEED, truth=truth
        )
        pub.flush()
    metrics = wait_for(
        lambda: (m := settled(port)) and m["received_total"] >= result.delivered and m,
        timeout=60,
        what="every message written",
    )
    assert_accounting(metrics)
    assert metrics["received_total"] == result.delivered
    path = tmp_path / "truth.csv"
    truth.write(path)
    _stop(ingester)
    return path, result.delivered, state


def _stop(ingester: IngesterProcess) -> None:
    """Stop the ingester and close its stderr pipe (IngesterProcess.stop leaves it to the GC)."""
    process = ingester.process
    ingester.stop()
    if process is not None and process.stderr is not None:
        process.stderr.close()


def _assert_matches_truth(influx: InfluxQuery, truth_path: Path) -> int:
    truth = read_days(truth_path)
    rows = influx.rows(
        'SELECT "energy_import_kwh", "energy_export_kwh" FROM "electricity" '
        'WHERE "profile" != \'generic-json\' GROUP BY "device"'
    )
    series: dict[str, list[tuple[int, float, float]]] = {}
    for row in rows:
        if row["energy_import_kwh"] is not None:
            series.setdefault(row["device"], []).append(
                (row["time"], row["energy_import_kwh"], row["energy_export_kwh"])
            )
    checked = 0
    for (device, day), expected in truth.items():
        points = series.get(device, [])
        imported = daily_energy([(t, i * 1000) for t, i, _ in points]).get(dt.date.fromisoformat(day), 0.0)
        exported = daily_energy([(t, e * 1000) for t, _, e in points]).get(dt.date.fromisoformat(day), 0.0)
        assert imported == pytest.approx(expected["import_wh"], abs=0.5), (device, day)
        assert exported == pytest.approx(expected["export_wh"], abs=0.5), (device, day)
        checked += 1
    return checked


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_simulated_day_matches_the_ground_truth_to_the_wh(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery, tmp_path: Path
) -> None:
    truth_path, _, _ = _run_day(mosquitto, target, ingester, tmp_path, "")
    assert _assert_matches_truth(influx, truth_path) >= 110
    day = dt.date(2025, 6, 18).isoformat()
    totals = [v for (_, d), v in read_days(truth_path).items() if d == day]
    assert sum(v["import_wh"] for v in totals) > 110 * 3000  # a June day: ~8 kWh a household, less PV
    assert sum(v["export_wh"] for v in totals) > 0


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_with_offline_bursts_and_duplicates_too(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery, tmp_path: Path
) -> None:
    truth_path, _, state = _run_day(
        mosquitto, target, ingester, tmp_path, "offline=0.05,dup=0.01,reorder=0.005"
    )
    assert state.bursts > 0
    assert _assert_matches_truth(influx, truth_path) >= 110
