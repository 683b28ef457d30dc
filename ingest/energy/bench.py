"""The ledger's throughput: ``python -m ingest.energy.bench [--days 2] [--households 110]``.

Starts a throw-away InfluxDB (:class:`ingest.localservices.InfluxDB`, loopback, a temporary directory),
writes 1-minute counter readings of each household's main meter (import and export), EV sub-meter, PV and
heat meter, rolls the range up and prints readings/s and the peak memory; then one day again (the loop's
usual work).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from ingest.energy.job import RollupReport, rollup
from ingest.energy.store import LedgerWriter, RawReader
from ingest.lifecycle_cli import InfluxV1
from ingest.localservices import InfluxDB

DATABASE = "bench"
ZONE = ZoneInfo("Europe/Berlin")


def _lines(minute: int, start_s: int, households: int) -> list[str]:
    t = (start_s + minute * 60) * 1_000_000_000
    out = []
    for h in range(1, households + 1):
        tags = f"building=Haus\\ {(h - 1) // 10 + 1},household=hh-{h:03}"
        device = f"hh-{h:03}"
        out += [
            f"electricity,{tags},device={device}-p1 energy_import_kwh={1000 + h + 0.006 * minute:.3f},"
            f"energy_export_kwh={200 + 0.002 * minute:.3f},power_w=400 {t}",
            f"electricity,{tags},channel=0,device={device}-ev energy_import_kwh={10 + 0.01 * minute:.3f} {t}",
            f"pv,{tags},device={device}-pv energy_kwh={50 + 0.003 * minute:.3f} {t}",
            f"heat,{tags},device={device}-heat energy_kwh={7000 + 0.01 * minute:.3f} {t}",
        ]
    return out


def bench(influx_url: str, *, days: int, households: int) -> tuple[RollupReport, RollupReport]:
    with httpx.Client(base_url=influx_url, trust_env=False, timeout=120) as http:
        for statement in (
            f'CREATE DATABASE "{DATABASE}"',
            f'CREATE RETENTION POLICY "rollups" ON "{DATABASE}" DURATION INF REPLICATION 1',
        ):
            http.post("/query", data={"q": statement})
        start = dt.datetime(2025, 6, 1, tzinfo=ZONE)
        written = time.monotonic()
        for hour in range(days * 24):
            lines = [
                line
                for m in range(hour * 60, hour * 60 + 60)
                for line in _lines(m, int(start.timestamp()), households)
            ]
            response = http.post(
                "/write", params={"db": DATABASE, "precision": "ns"}, content="\n".join(lines).encode()
            )
            response.raise_for_status()
        print(f"raw data written in {time.monotonic() - written:.1f} s")
    client = InfluxV1(influx_url, auth=None)
    writer = LedgerWriter(influx_url, DATABASE, auth=None)
    try:
        reader = RawReader(client, DATABASE)
        whole = rollup(reader, writer, since=start, until=start + dt.timedelta(days=days))
        last = start + dt.timedelta(days=days - 1)
        one_day = rollup(reader, writer, since=last, until=last + dt.timedelta(days=1))
    finally:
        writer.close()
        client.close()
    return whole, one_day


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--households", type=int, default=110)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, InfluxDB(Path(directory) / "influxdb") as influx:
        whole, one_day = bench(influx.url, days=args.days, households=args.households)
    print(whole.line())
    print(f"one day again: {one_day.line()}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
