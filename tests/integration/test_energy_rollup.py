"""The energy ledger against the real InfluxDB: ``reallabor energy rollup`` writes exact points (a swap,
a reset, a sub-meter, a building-level meter), again the same points, a range starts from each counter's
predecessor, no ``rollups`` policy is said plainly, and the loop takes in late data inside its window."""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from ingest.cli import main
from ingest.config import load_settings
from ingest.consumption import daily_energy
from ingest.energy.cli import rollup_with
from ingest.energy.job import run_loop
from tests.helpers import InfluxQuery, Target, wait_for

pytestmark = pytest.mark.integration
BERLIN = ZoneInfo("Europe/Berlin")
START = int(dt.datetime(2025, 1, 14, 23, tzinfo=BERLIN).timestamp())  # an hour before 15 January
FIVE_MIN = 300
STEPS = 24 * 12 * 2 + 12  # until 17 January 00:00 local


def _import(step: int) -> float:
    """Main meter m1: 10,000 kWh, swapped on the 15th at 09:00 (new meter from 0), reset to 0 on the
    16th at 14:00; 0.05 kWh every five minutes."""
    if step < 10 * 12:
        return 10000.0 + 0.05 * step
    if step < (24 + 15) * 12:
        return round(0.05 * (step - 10 * 12 + 1), 3)
    return round(0.05 * (step - (24 + 15) * 12), 3)


def _lines() -> list[str]:
    out = []
    for step in range(STEPS):
        t = (START + step * FIVE_MIN) * 10**9
        out.append(
            f"electricity,building=B1,device=m1,household=h1 energy_import_kwh={_import(step)},"
            f"energy_export_kwh={round(200 + 0.01 * step, 3)},power_w=600 {t}"
        )
        out.append(
            f"electricity,building=B1,channel=0,device=ev1,household=h1 energy_import_kwh={0.1 * step} {t}"
        )
        out.append(f"pv,building=B1,device=pv1,household=h1 energy_kwh={round(50 + 0.02 * step, 3)} {t}")
        if step % 3 == 0:  # building-level: no household tag
            out.append(f"heat,building=B1,device=heat-b1 energy_kwh={round(7000 + 0.3 * step, 3)} {t}")
    return out


def _write(influx: InfluxQuery, lines: list[str]) -> None:
    response = httpx.post(
        f"{influx.url}/write",
        params={"db": influx.database, "precision": "ns"},
        content="\n".join(lines).encode(),
        trust_env=False,
    )
    assert response.status_code == 204, response.text


@pytest.fixture
def raw(target: Target, influx: InfluxQuery, tmp_path: Path) -> tuple[InfluxQuery, Path]:
    influx.query(f'CREATE DATABASE "{influx.database}"')
    _write(influx, _lines())
    config = tmp_path / "ingest.yaml"
    config.write_text(f"influx: {{url: '{target.influx_url}', database: {target.database}}}\n")
    return influx, config


def _rollup(config: Path, since: str, until: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["energy", "rollup", "--config", str(config), "--since", since, "--until", until])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _points(influx: InfluxQuery, measurement: str) -> list[dict[str, Any]]:
    return influx.rows(f'SELECT * FROM "rollups"."{measurement}" GROUP BY *')


def _local(time_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_ns // 10**9, BERLIN)


def test_without_rollups_policy_it_says_run_influx_init(
    raw: tuple[InfluxQuery, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = raw
    code, output = _rollup(config, "2025-01-15", "2025-01-16", capsys)
    assert code == 1
    assert "no retention policy 'rollups'" in output
    assert "run `reallabor influx init`" in output


def test_rollup_exact_idempotent_and_from_the_predecessor(
    raw: tuple[InfluxQuery, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    influx, config = raw
    influx.query(f'CREATE RETENTION POLICY "rollups" ON "{influx.database}" DURATION INF REPLICATION 1')
    # the 16th alone first: it starts from each counter's last reading of the 15th
    code, output = _rollup(config, "2025-01-16", "2025-01-17", capsys)
    assert code == 0, output
    day_alone = {(p["device"], p["kind"]): p["kwh"] for p in _points(influx, "energy_1d")}
    code, output = _rollup(config, "2025-01-14T23:00", "2025-01-16T12:00", capsys)  # widened: 14th..16th
    assert code == 0, output
    for figure in ("readings=", "buckets=", "days=", "seconds="):
        assert figure in output
    quarter_hours = _points(influx, "energy")
    days = _points(influx, "energy_1d")

    # every kind, the heat meter without household, times on 15-minute boundaries / local midnight
    kinds = {(p["device"], p["kind"], p["household"]) for p in quarter_hours}
    assert kinds == {
        ("m1", "import", "h1"),
        ("m1", "export", "h1"),
        ("ev1", "ev", "h1"),
        ("pv1", "pv", "h1"),
        ("heat-b1", "heat", ""),
    }
    series = {row[0] for s in influx.query('SHOW SERIES FROM "energy"') for row in s["values"]}
    assert "energy,building=B1,device=heat-b1,kind=heat" in series  # no household tag at all
    assert all(p["time"] % (900 * 10**9) == 0 for p in quarter_hours)
    assert all(_local(p["time"]).time() == dt.time() for p in days)
    assert {p["building"] for p in quarter_hours + days} == {"B1"}

    # exact: the days equal consumption.py's days of the raw counter, and the sums of their quarter hours
    readings = [((START + s * FIVE_MIN) * 10**9, _import(s)) for s in range(STEPS)]
    expected = daily_energy(readings)
    got_days = {_local(p["time"]).date(): p["kwh"] for p in days if p["kind"] == "import"}
    assert got_days == pytest.approx({d: v for d, v in expected.items() if d in got_days})
    assert set(got_days) == {dt.date(2025, 1, d) for d in (14, 15, 16)}
    summed: dict[tuple[str, str, dt.date], float] = defaultdict(float)
    for p in quarter_hours:
        summed[(p["device"], p["kind"], _local(p["time"]).date())] += p["kwh"]
    for p in days:
        assert summed[(p["device"], p["kind"], _local(p["time"]).date())] == pytest.approx(p["kwh"])
    # the swap's quarter hour (09:00 on the 15th): the old meter's last step is in 08:55's, the new
    # meter's first reading (0.05 kWh) counts
    swap = int(dt.datetime(2025, 1, 15, 9, tzinfo=BERLIN).timestamp()) * 10**9
    assert next(p["kwh"] for p in quarter_hours if p["time"] == swap and p["kind"] == "import") == (
        pytest.approx(0.15)
    )
    # the day computed alone equals the same day computed with the one before
    day16 = {(p["device"], p["kind"]): p["kwh"] for p in days if _local(p["time"]).date().day == 16}
    assert day16 == pytest.approx(day_alone)
    assert day16[("m1", "import")] == pytest.approx(expected[dt.date(2025, 1, 16)])

    # idempotent: the same range again, the same points
    code, _ = _rollup(config, "2025-01-14T23:00", "2025-01-16T12:00", capsys)
    assert code == 0
    assert _points(influx, "energy") == quarter_hours
    assert _points(influx, "energy_1d") == days


def test_the_loop_takes_in_late_data_inside_its_window(
    target: Target, influx: InfluxQuery, tmp_path: Path
) -> None:
    """A PV meter's readings of 10:00-11:55 on the 16th arrive late (a replayed spool): first the gap's
    energy lands in 12:00's quarter hour; the loop's next run moves it into their own quarter hours."""
    influx.query(f'CREATE DATABASE "{influx.database}"')
    influx.query(f'CREATE RETENTION POLICY "rollups" ON "{influx.database}" DURATION INF REPLICATION 1')
    gap = range((24 + 11) * 12, (24 + 13) * 12)  # steps from the 14th 23:00: the 16th 10:00-11:55
    lines = [line for line in _lines() if line.startswith("pv,")]
    late = [lines.pop(gap.start) for _ in gap]
    _write(influx, lines)
    config = tmp_path / "ingest.yaml"
    config.write_text(f"influx: {{url: '{target.influx_url}', database: {target.database}}}\n")
    settings = load_settings(config)
    ten = int(dt.datetime(2025, 1, 16, 10, tzinfo=BERLIN).timestamp()) * 10**9
    twelve = int(dt.datetime(2025, 1, 16, 12, tzinfo=BERLIN).timestamp()) * 10**9

    def bucket(time_ns: int) -> float | None:
        rows = influx.rows(f'SELECT kwh FROM "rollups"."energy" WHERE kind = \'pv\' AND time = {time_ns}')
        return rows[0]["kwh"] if rows else None

    stop = threading.Event()
    runner = threading.Thread(
        target=run_loop,
        args=(lambda since, until: rollup_with(settings, since, until),),
        kwargs={
            "window": dt.timedelta(days=1),
            "interval_s": 0.3,
            "stop": stop,
            "now": lambda: dt.datetime(2025, 1, 16, 18, tzinfo=BERLIN),
        },
        daemon=True,
    )
    runner.start()
    try:
        wait_for(lambda: bucket(twelve) is not None, timeout=30, what="the loop's first run")
        assert bucket(twelve) == pytest.approx(0.02 * (25 + 2))  # the gap's two hours, then 12:05, 12:10
        assert bucket(ten) is None
        _write(influx, late)
        wait_for(lambda: bucket(ten) is not None, timeout=30, what="the late readings taken in")
        assert bucket(ten) == pytest.approx(0.02 * 3)
        assert bucket(twelve) == pytest.approx(0.02 * 3)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


def test_a_counter_silent_for_days_starts_from_its_last_reading(
    raw: tuple[InfluxQuery, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Predecessors are searched together two days back; a meter silent for longer is looked up alone
    (its gap's energy lands in its next reading's quarter hour), a new one starts from its baseline."""
    influx, config = raw
    influx.query(f'CREATE RETENTION POLICY "rollups" ON "{influx.database}" DURATION INF REPLICATION 1')

    def ns(day: int, hour: int, minute: int = 0) -> int:
        return int(dt.datetime(2025, 1, day, hour, minute, tzinfo=BERLIN).timestamp()) * 10**9

    _write(
        influx,
        [
            f"heat,building=B2,device=heat-old energy_kwh=100 {ns(10, 12)}",  # five days before
            f"heat,building=B2,device=heat-old energy_kwh=130 {ns(16, 10)}",
            f"heat,building=B2,device=heat-old energy_kwh=131 {ns(16, 10, 5)}",
            f"heat,building=B2,device=heat-new energy_kwh=500 {ns(16, 10)}",  # its first reading ever
            f"heat,building=B2,device=heat-new energy_kwh=502 {ns(16, 10, 20)}",
        ],
    )
    code, output = _rollup(config, "2025-01-16", "2025-01-17", capsys)
    assert code == 0, output
    rows = influx.rows(
        'SELECT kwh FROM "rollups"."energy" WHERE building = \'B2\' GROUP BY device ORDER BY time'
    )
    got = {(row["device"], row["time"]): row["kwh"] for row in rows}
    assert got == {
        ("heat-old", ns(16, 10)): pytest.approx(31.0),
        ("heat-new", ns(16, 10)): 0.0,
        ("heat-new", ns(16, 10, 15)): pytest.approx(2.0),
    }
