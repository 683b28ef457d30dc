"""Why a panel query is slow: the same query with one part changed at a time (InfluxDB 1.6 has no
EXPLAIN ANALYZE), on the data a ``python -m bench.panels --reuse DIR`` run left in DIR.

    .venv/bin/python -m bench.panel_variants --reuse /tmp/bench-panels      # ~2 min

Each variant runs over 30 days ending at the data's end, as Grafana expands it (building: all), one
warm-up and ``--repetitions`` timed runs; the median and the p95 are printed with the rows returned.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.panel_fill import FillSpec, quarter_of
from bench.panels import FILL_FILE, BenchInflux, QueryError, percentile, run_query, variables
from ingest.localservices import free_port
from ingest.panels.catalogue import dashboards
from ingest.panels.macros import expand

BUILDING_FILTER = re.compile(r' AND "building" =~ /\^\(.*?\)\$/')
Change = Callable[[str], str]


def same(query: str) -> str:
    return query


def no_tz(query: str) -> str:
    return query.replace(" tz('Europe/Berlin')", "")


def no_building(query: str) -> str:
    return BUILDING_FILTER.sub("", query)


def bucket(size: str) -> Change:
    return lambda query: re.sub(r"time\(\d+[smhd]\)", f"time({size})", query)


def no_time_buckets(query: str) -> str:
    return query.replace(" GROUP BY time(15m) fill(none)", "")


def tags_only(*tags: str) -> Change:
    group = ", ".join(f'"{t}"' for t in tags)
    return lambda query: re.sub(r"GROUP BY (time\([^)]*\)), [^f]*fill", rf"GROUP BY \1, {group} fill", query)


def rollup(measurement: str) -> Change:
    """The same query on the lifecycle's 15-minute rollup (a count there counts quarter hours)."""
    return lambda query: query.replace(f'FROM "{measurement}"', f'FROM "rollups"."{measurement}_15m"')


def days(count: int) -> Change:
    """The range: the last ``count`` days (instead of 30)."""

    def change(query: str) -> str:
        start, end = (int(n) for n in re.findall(r"time [<>]= (\d+)ms", query)[:2])
        return query.replace(f"{start}ms", f"{end - count * 86_400_000}ms")

    return change


def newest_point(query: str) -> str:
    """last() per series as a raw select of the newest point: InfluxDB reads one block per series."""
    out = query.replace('SELECT last("power_w") AS "reading"', 'SELECT "power_w" AS "reading"')
    return out + " ORDER BY time DESC LIMIT 1"


VARIANTS: tuple[tuple[str, str, int, str, Change], ...] = (
    ("reallabor-energy", "today-15m", 0, "as the panel (ledger, 15m, tz, building regex)", same),
    ("reallabor-energy", "today-15m", 0, "without tz()", no_tz),
    ("reallabor-energy", "today-15m", 0, "without the building filter", no_building),
    ("reallabor-energy", "today-15m", 0, "without tz() and building filter", lambda q: no_tz(no_building(q))),
    ("reallabor-energy", "today-15m", 0, "GROUP BY time(1h)", bucket("1h")),
    ("reallabor-energy", "today-15m", 0, "GROUP BY time(1d)", bucket("1d")),
    ("reallabor-energy", "today-15m", 0, "no time buckets (one total)", no_time_buckets),
    ("reallabor-energy", "today-15m", 0, "as the panel, over 1 day", days(1)),
    ("reallabor-energy", "months-12", 0, "as the panel (energy_1d, 1d, tz), over 1 year", days(365)),
    ("reallabor-energy", "months-12", 0, "over 1 year without tz()", lambda q: no_tz(days(365)(q))),
    ("reallabor-energy", "months-12", 0, "over 90 days (the data there is)", days(90)),
    ("reallabor-fleet", "last-seen", 0, "as the panel (last() per gateway, device)", same),
    ("reallabor-fleet", "last-seen", 0, "newest point: ORDER BY time DESC LIMIT 1", newest_point),
    ("reallabor-fleet", "gateways", 0, "as the panel (raw count, $__interval, gateway)", same),
    ("reallabor-fleet", "gateways", 0, "fill(none)", lambda q: q.replace("fill(0)", "fill(none)")),
    ("reallabor-fleet", "gateways", 0, "GROUP BY time(1d)", bucket("1d")),
    ("reallabor-fleet", "gateways", 0, "on rollups.electricity_15m", rollup("electricity")),
    ("reallabor-environment", "temperature", 0, "as the panel (raw mean, building, device)", same),
    ("reallabor-environment", "temperature", 0, "GROUP BY time, building only", tags_only("building")),
    ("reallabor-environment", "temperature", 0, "GROUP BY time(6h)", bucket("6h")),
    ("reallabor-environment", "temperature", 0, "on rollups.environment_15m", rollup("environment")),
    ("reallabor-fleet", "signal", 0, "as the panel (raw mean, device)", same),
    ("reallabor-fleet", "signal", 0, "on rollups.device_health_15m", rollup("device_health")),
    ("reallabor-fleet", "signal", 0, "GROUP BY time(6h)", bucket("6h")),
)


def measure(http: httpx.Client, query: str, repetitions: int) -> dict[str, Any]:
    try:
        _, rows = run_query(http, query)
        times = [run_query(http, query)[0] for _ in range(repetitions)]
    except QueryError as exc:
        return {"error": str(exc)}
    return {
        "p50_ms": round(percentile(times, 0.5), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--reuse", type=Path, required=True, metavar="DIR", help="a bench.panels data dir")
    parser.add_argument("--repetitions", type=int, default=7)
    args = parser.parse_args(argv)
    state = args.reuse / FILL_FILE
    if not state.exists():
        parser.error(f"--reuse {args.reuse}: no {FILL_FILE}: fill it with python -m bench.panels --reuse DIR")
    spec = FillSpec(**json.loads(state.read_text())["spec"])
    end_ms = spec.end_s * 1000
    household = quarter_of(spec).households[0].name
    influx = BenchInflux(args.reuse / "influx", port=free_port())
    influx.start(timeout=60)
    out = []
    try:
        with httpx.Client(base_url=influx.url, timeout=300, trust_env=False) as http:
            boards = {d.uid: d for d in dashboards()}
            for uid, key, index, label, change in VARIANTS:
                board = boards[uid]
                panel = next(p for p in board.panels if p.key == key)
                query = expand(
                    panel.targets[index].query,
                    from_ms=end_ms - 30 * 86_400_000,
                    to_ms=end_ms,
                    variables=variables(http, board, household),
                    min_interval=panel.interval,
                )
                result = {
                    "dashboard": uid,
                    "panel": key,
                    "variant": label,
                    **measure(http, change(query), args.repetitions),
                }
                p50, p95, rows = (result.get(k, "-") for k in ("p50_ms", "p95_ms", "rows"))
                print(
                    f"{uid:22} {key:12} {label:50} p50 {p50:>8} p95 {p95:>8} rows {rows:>7} "
                    f"{result.get('error', '')}",
                    file=sys.stderr,
                    flush=True,
                )
                out.append(result)
    finally:
        influx.stop()
    print(json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(), "variants": out}, separators=(",", ":")))


if __name__ == "__main__":
    main()
