"""A household's export (:mod:`ingest.privacy.export`): time, ZIP size and peak Python memory while
streaming, for DAYS days of raw readings of two meters every 10 s, beside a neighbour's.

    .venv/bin/python -m bench.privacy_export --days 14            # time (no tracing)
    .venv/bin/python -m bench.privacy_export --days 14 --memory   # peak memory (tracemalloc, slower)

Starts its own InfluxDB 1.6 in a temp dir on a free loopback port. Prints one JSON document.
The peak should not grow with the days: the export reads one day of raw data per query.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import httpx

from ingest.lifecycle_cli import InfluxV1, init_lifecycle
from ingest.localservices import InfluxDB
from ingest.privacy.export import HouseholdExport
from ingest.privacy.influx import HouseholdData, Selector

STEP_NS = 10 * 10**9
PER_DAY = 8640  # readings a day, one every 10 s


def _fill(url: str, database: str, days: int, now_ns: int) -> int:
    total = days * PER_DAY
    for device in ("m1", "m2"):
        for start in range(0, total, 20_000):
            lines = [
                f"electricity,household=WE\\ 1,building=A,gateway=g,device={device} "
                f"energy_import_kwh={i / 100},power_w={i % 500} {now_ns - i * STEP_NS}"
                for i in range(start, min(total, start + 20_000))
            ]
            httpx.post(f"{url}/write", params={"db": database}, content="\n".join(lines)).raise_for_status()
        neighbour = [
            f"electricity,household=WE\\ 2,building=A,gateway=g,device=n{device} energy_import_kwh=1 "
            f"{now_ns - i * STEP_NS}"
            for i in range(2000)
        ]
        httpx.post(f"{url}/write", params={"db": database}, content="\n".join(neighbour)).raise_for_status()
    return 2 * total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--memory", action="store_true", help="measure the peak with tracemalloc")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, InfluxDB(Path(directory)) as server:
        client = InfluxV1(server.url, auth=None)
        init_lifecycle(client, database="bench", raw_retention=dt.timedelta(days=90))
        now_ns = time.time_ns() - time.time_ns() % STEP_NS
        points = _fill(server.url, "bench", args.days, now_ns)
        data = HouseholdData(reader=client, writer=client, database="bench")
        export = HouseholdExport(household_id=1, facts={}, selector=Selector("WE 1", "A"))
        if args.memory:
            tracemalloc.start()
        started = time.monotonic()
        size = pieces = largest = 0
        for piece in export.chunks(data):
            size, pieces, largest = size + len(piece), pieces + 1, max(largest, len(piece))
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1] if args.memory else None
        client.close()
    print(
        json.dumps(
            {
                "days": args.days,
                "points": points,
                "zip_bytes": size,
                "pieces": pieces,
                "largest_piece_bytes": largest,
                "seconds": round(seconds, 2),
                "peak_python_mib": round(peak / 2**20, 1) if peak is not None else None,
            }
        )
    )


if __name__ == "__main__":
    main()
