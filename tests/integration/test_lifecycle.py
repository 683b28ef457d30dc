"""The data lifecycle against the real InfluxDB: init idempotent, the backfill of a simulated day against
the simulator's ground truth, and the continuous queries running on InfluxDB's own schedule."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ingest import lifecycle
from ingest.decode import MessageDecoder
from ingest.lifecycle_cli import InfluxV1, init_lifecycle
from ingest.lineprotocol import encode
from ingest.localservices import InfluxDB
from ingest.profiles.loader import load_profiles
from ingest.readings import DecodeRejected
from simulators.drive import drive
from simulators.engine import Message, Periods, Simulation
from simulators.faults import FaultSpec, FaultState
from simulators.quarter import make_quarter
from simulators.truth import GroundTruth, read_days
from tests.conftest import REPO
from tests.helpers import InfluxQuery, Target, wait_for

DAY = dt.date(2025, 1, 15)  # winter: the rollup day (23:00-23:00 UTC) is the local day in Europe/Berlin
DAY_START = int(lifecycle.day_start(DAY).timestamp())
NINETY_DAYS = dt.timedelta(days=90)
KEEP = dt.timedelta(weeks=520)  # the simulated day lies further back than 90 days


def _state(influx: InfluxQuery) -> tuple[list[Any], list[Any]]:
    policies = influx.query(f'SHOW RETENTION POLICIES ON "{influx.database}"')[0]["values"]
    cqs = [s for s in influx.query("SHOW CONTINUOUS QUERIES") if s["name"] == influx.database]
    return policies, cqs[0]["values"] if cqs else []


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_init_twice_leaves_the_same_policies_and_queries(
    target: Target, influx: InfluxQuery, tmp_path: Path
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(target.config(influx={"raw_retention": "12w"})))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALLABOR_")}
    command = [sys.executable, "-m", "ingest.cli", "influx", "init", "--config", str(config)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=30)
    assert first.returncode == 0, first.stderr
    assert "created or changed: retention policy raw" in first.stdout
    after_first = _state(influx)
    policies, cqs = after_first
    assert ["raw", "2016h0m0s", "24h0m0s", 1, True] in policies  # 12 weeks, the default
    assert ["rollups", "0s", "168h0m0s", 1, False] in [p[:5] for p in policies]
    assert sorted(name for name, _ in cqs) == sorted(name for name, _ in lifecycle.create_cqs("x"))

    second = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=30)
    assert second.returncode == 0, second.stderr
    assert "created or changed" not in second.stdout
    assert f"unchanged: {2 + len(cqs)}" in second.stdout
    assert _state(influx) == after_first

    client = InfluxV1(target.influx_url, auth=None)  # the retention changed in the settings: altered
    try:
        report = init_lifecycle(client, database=target.database, raw_retention=NINETY_DAYS)
    finally:
        client.close()
    assert report.created == ["retention policy raw"]
    assert ["raw", "2160h0m0s", "24h0m0s", 1, True] in _state(influx)[0]
    assert _state(influx)[1] == after_first[1]


class _Writer:
    """Simulated messages decoded as the ingester does, written straight to InfluxDB (no broker)."""

    def __init__(self, url: str, database: str) -> None:
        self.decoder = MessageDecoder(load_profiles(REPO / "device_profiles"))
        self.url, self.database = url, database
        self.readings: list[Any] = []
        self.rejected = 0

    def __call__(self, message: Message) -> None:
        try:
            self.readings += self.decoder.decode(message.topic, message.payload, message.time_s * 10**9)
        except DecodeRejected:
            self.rejected += 1
        if len(self.readings) >= 5000:
            self.flush()

    def flush(self) -> None:
        if self.readings:
            response = httpx.post(
                f"{self.url}/write",
                params={"db": self.database, "precision": "ns"},
                content=encode(self.readings),
                timeout=60,
                trust_env=False,
            )
            assert response.status_code == 204, response.text
            self.readings = []


def _key(row: dict[str, Any], fields: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(sorted((k, v) for k, v in row.items() if k not in fields and v is not None))


def _by_series(influx: InfluxQuery, query: str, fields: tuple[str, ...]) -> dict[tuple[Any, ...], Any]:
    return {_key(row, fields): tuple(row[f] for f in fields) for row in influx.rows(query)}


def _counter_rows(influx: InfluxQuery, suffix: str) -> dict[tuple[str, str], list[Any]]:
    """(device, import|export) -> [(time, last, max)] of the electricity rollup."""
    out: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in influx.rows(
        'SELECT "energy_import_kwh", "energy_import_kwh_max", "energy_export_kwh", "energy_export_kwh_max" '
        f'FROM "rollups"."electricity_{suffix}" GROUP BY "device"'
    ):
        for counter in ("import", "export"):
            field = f"energy_{counter}_kwh"
            out[row["device"], counter].append((row["time"], row[field], row[f"{field}_max"]))
    return out


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_backfilled_rollups_of_a_simulated_day_match_raw_data_and_ground_truth(
    target: Target, influx: InfluxQuery, tmp_path: Path
) -> None:
    client = InfluxV1(target.influx_url, auth=None)
    try:
        init_lifecycle(client, database=target.database, raw_retention=KEEP)  # raw: the default RP
        quarter = make_quarter(110, seed=7)
        faults = FaultState(FaultSpec.parse("swap=0.05"), seed=7)
        sim = Simulation(
            quarter,
            start_s=DAY_START - 3600,  # readings the evening before: the day's baseline
            interval_s=900,
            faults=faults,
            periods=Periods(heat=900, climate=3600, street=3600),
        )
        truth = GroundTruth(quarter)
        writer = _Writer(target.influx_url, target.database)
        drive(sim, writer, until_s=DAY_START + 86400, truth=truth)
        writer.flush()
        assert faults.swaps > 0
        truth_path = tmp_path / "truth.csv"
        truth.write(truth_path)

        started = time.monotonic()
        until = lifecycle.day_start(DAY + dt.timedelta(days=2))
        first_day = DAY - dt.timedelta(days=1)
        report = init_lifecycle(
            client, database=target.database, raw_retention=KEEP, backfill_from=first_day, now=until
        )
        print(f"backfill: {report.backfill_statements} statements in {time.monotonic() - started:.1f} s")
        assert report.backfill_points > 110 * 96
        again = init_lifecycle(
            client, database=target.database, raw_retention=KEEP, backfill_from=first_day, now=until
        )
        assert again.backfill_points == report.backfill_points
        assert again.created == []
    finally:
        client.close()

    keys = ("energy_import_kwh", "energy_export_kwh")
    tag_keys = influx.query('SHOW TAG KEYS FROM "rollups"."electricity_15m"')[0]["values"]
    assert ["device"] in tag_keys
    assert ["gateway"] in tag_keys
    window = f"time >= {DAY_START - 86400}s AND time < {DAY_START + 2 * 86400}s"  # whole rollup days
    for interval, suffix in (("15m", "15m"), ("1d, -1h", "1d")):
        raw = _by_series(
            influx,
            f'SELECT last("energy_import_kwh") AS "energy_import_kwh", '
            f'last("energy_export_kwh") AS "energy_export_kwh" FROM "electricity" '
            f"WHERE {window} GROUP BY time({interval}), * fill(none)",
            keys,
        )
        rolled = _by_series(
            influx,
            f'SELECT "energy_import_kwh", "energy_export_kwh" FROM "rollups"."electricity_{suffix}" '
            f"WHERE {window} GROUP BY *",
            keys,
        )
        assert len(raw) > 110
        assert rolled == raw, suffix

    daily, quarters = _counter_rows(influx, "1d"), _counter_rows(influx, "15m")
    day_ns = DAY_START * 10**9
    checked, one_swap_days, two_swap_days = 0, 0, 0
    for (device, day), expected in read_days(truth_path).items():
        if day != DAY.isoformat():
            continue
        for counter in ("import", "export"):
            want = expected[f"{counter}_wh"]
            # every quarter hour's energy (reset rule), summed over the day: exact, swaps and all
            by_quarter = lifecycle.period_energies(quarters[device, counter])
            in_day = [e for t, e in by_quarter.items() if lifecycle.rollup_day(t) == DAY]
            assert sum(in_day) * 1000 == pytest.approx(want, rel=1e-3, abs=0.5), (device, counter)
            # the daily rollup alone: exact unless the meter was swapped twice on that day
            lasts = [(t, last) for t, last, _ in sorted(quarters[device, counter]) if last is not None]
            swaps = sum(
                1
                for (_, before), (t, after) in itertools.pairwise(lasts)
                if after < before and lifecycle.rollup_day(t) == DAY
            )
            by_day = lifecycle.period_energies(daily[device, counter])[day_ns]
            assert by_day >= 0
            if swaps <= 1:
                assert by_day * 1000 == pytest.approx(want, rel=1e-3, abs=0.5), (device, counter)
                one_swap_days += swaps
            else:
                assert by_day * 1000 <= want + 0.5  # the first new meter's part is lost, never doubled
                two_swap_days += 1
        checked += 1
    assert checked == 110
    print(f"days with one meter swap {one_swap_days}, with two {two_swap_days}")
    assert one_swap_days > 0
    assert influx.query('SELECT count("energy_kwh") FROM "rollups"."heat_1d"')  # heat meters rolled up too


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_the_continuous_queries_run(tmp_path: Path) -> None:
    with InfluxDB(tmp_path / "influxdb", continuous_queries=True, cq_run_interval="1s") as server:
        influx = InfluxQuery(server.url, "cq")
        client = InfluxV1(server.url, auth=None)
        try:
            init_lifecycle(client, database="cq", raw_retention=NINETY_DAYS)
            now = time.time_ns()
            # closed quarter hours of the last hour: a CQ's first run covers them
            minutes = range(16, 41)
            lines = [
                f"electricity,device=m1,gateway=gw-1 energy_import_kwh={1000 + 0.1 * (40 - m):.1f},"
                f"power_w={300.0 + m} {now - m * 60 * 10**9}"
                for m in minutes
            ]
            response = httpx.post(f"{server.url}/write", params={"db": "cq"}, content="\n".join(lines))
            assert response.status_code == 204
            # InfluxDB computes them on its schedule; nothing else writes them here
            rolled = wait_for(
                lambda: influx.rows('SELECT * FROM "rollups"."electricity_15m"'), timeout=20, what="15m rows"
            )
            raw = influx.rows(
                'SELECT last("energy_import_kwh") AS "last", max("power_w") AS "peak" FROM "electricity" '
                f"WHERE time >= {now - 41 * 60 * 10**9} GROUP BY time(15m) fill(none)"
            )
            assert [(r["time"], r["energy_import_kwh"], r["power_w_max"]) for r in rolled] == [
                (r["time"], r["last"], r["peak"]) for r in raw
            ]
            daily = wait_for(
                lambda: influx.rows('SELECT * FROM "rollups"."electricity_1d"'), timeout=20, what="1d rows"
            )
            assert daily[-1]["energy_import_kwh"] == rolled[-1]["energy_import_kwh"]
            assert {r["device"] for r in daily} == {"m1"}
        finally:
            client.close()
