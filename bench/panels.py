"""Panel query latency: every panel of every dashboard on a quarter's 90 days of 1-minute data.

    make bench-panels                                        # 110 households x 90 days, 20 repetitions
    .venv/bin/python -m bench.panels --reuse /tmp/panels     # keep the filled InfluxDB for the next run
    .venv/bin/python -m bench.panels --households 3 --days 2 --repetitions 2   # seconds

Starts its own InfluxDB 1.6 (temp dir or ``--reuse DIR``, free port, loopback), sets the database up as
``reallabor influx init`` does (retention policies ``raw`` 90d default + ``rollups``), backfills the
simulated quarter (:mod:`bench.panel_fill`), computes the rollups for the range with the data lifecycle's
backfill statements (:func:`ingest.lifecycle.backfill_statements`) and, where the command exists, the
energy ledger (``reallabor energy rollup``). Then every target of every panel, expanded as Grafana
expands it (:func:`ingest.panels.macros.expand`; building: all, household: one), runs over the panel's
default range (ending at the end of the data, "now") and over 30 days: one warm-up, N timed
repetitions. A panel's time per repetition is the sum of its targets' (InfluxDB 1.x runs the statements
of one request one after the other). A target that reads rollups is also timed on its raw twin.
A query that returns no data is an error.

Prints a table to stderr and one JSON document on stdout (its last line).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson

from bench.datadir import data_directory
from bench.panel_fill import FillSpec, backfill, messages_per_second, quarter_of
from ingest import lifecycle
from ingest.lifecycle_cli import InfluxV1, init_lifecycle
from ingest.localservices import InfluxDB, free_port
from ingest.panels.catalogue import Dashboard, Panel, dashboards
from ingest.panels.macros import Variable, expand

REPO = Path(__file__).resolve().parent.parent
DATABASE = "reallabor"
ZONE = ZoneInfo("Europe/Berlin")  # the dashboards' time zone is the browser's: the operators are here
GOAL_MS = 500.0
FILL_FILE = "fill.json"


def rollup_version() -> str:
    """What the rollups of a filled directory were made with: the lifecycle's statements (a changed
    rollup, e.g. a new field, makes a reused directory compute its rollups again)."""
    return "\n".join(statement for _, statement in lifecycle.create_cqs(DATABASE))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchInflux(InfluxDB):
    """InfluxDB as ``ingest.localservices`` configures it, with TSM compaction soon after writes stop:
    the backfill's shards then look like months-old ones (fully compacted) instead of fresh ones."""

    def command(self) -> list[str]:
        command = super().command()
        config = self.directory / "influxdb.conf"
        text = config.read_text().replace(
            "[data]\n",
            '[data]\n  cache-snapshot-write-cold-duration = "5s"\n'
            '  compact-full-write-cold-duration = "20s"\n',
            1,
        )
        config.write_text(text)
        return command


# time ranges as Grafana computes them -------------------------------------------------------------------


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def grafana_time(text: str, now: dt.datetime, *, end: bool) -> dt.datetime:
    """A Grafana relative time: ``now``, ``now-24h``, ``now/d`` (start of the local day; as the range's
    end: its last millisecond), or a panel's relative time ``30d`` / ``1y`` (= ``now-30d``)."""
    local = now.astimezone(ZONE)
    if text == "now":
        return now
    if text == "now/d":
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if end:
            following = (midnight + dt.timedelta(days=1, hours=3)).replace(hour=0)
            return following - dt.timedelta(milliseconds=1)
        return midnight
    offset = text.removeprefix("now-")
    number, unit = int(offset[:-1]), offset[-1]
    if unit == "y":
        return local.replace(year=local.year - number)
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    return now - dt.timedelta(seconds=number * seconds)


def default_range(dashboard: Dashboard, panel: Panel, now: dt.datetime) -> tuple[str, int, int]:
    if panel.time_from:
        return panel.time_from, _ms(grafana_time(panel.time_from, now, end=False)), _ms(now)
    start = grafana_time(dashboard.time_from, now, end=False)
    stop = grafana_time(dashboard.time_to, now, end=True)
    label = (
        dashboard.time_from if dashboard.time_to == "now" else f"{dashboard.time_from}..{dashboard.time_to}"
    )
    return label, _ms(start), _ms(stop)


# query timing ---------------------------------------------------------------------------------------------


class QueryError(Exception):
    pass


@dataclass
class Timed:
    ms: list[float] = field(default_factory=list)  # per repetition, all queries
    per_query: list[list[float]] = field(default_factory=list)  # per query, per repetition
    rows: int = 0
    error: str | None = None


def run_query(http: httpx.Client, query: str) -> tuple[float, int]:
    """(milliseconds, rows) of one query as Grafana sends it (GET, epoch=ms): until the whole response is
    in (our JSON parsing not counted); QueryError when InfluxDB reports an error or the result is empty."""
    began = time.perf_counter()
    response = http.get("/query", params={"db": DATABASE, "q": query, "epoch": "ms"})
    elapsed = (time.perf_counter() - began) * 1000
    body = orjson.loads(response.content)
    results = body.get("results") or [{}]
    if body.get("error") or results[0].get("error"):
        raise QueryError(str(body.get("error") or results[0].get("error")))
    rows = sum(len(series.get("values") or []) for series in results[0].get("series") or [])
    if rows == 0:
        raise QueryError("no data")
    return elapsed, rows


def time_queries(http: httpx.Client, queries: list[str], repetitions: int, budget_s: float) -> Timed:
    """One warm-up, then ``repetitions`` times every query in turn; per repetition the sum (ms). A slow
    set gets fewer repetitions (at least 3): as many as fit into ``budget_s`` by the warm-up's time."""
    timed = Timed(per_query=[[] for _ in queries])
    try:
        warm_ms = 0.0
        for query in queries:
            ms, rows = run_query(http, query)
            timed.rows += rows
            warm_ms += ms
        count = min(repetitions, max(3, int(budget_s * 1000 / max(warm_ms, 1.0))))
        for _ in range(count):
            times = [run_query(http, query)[0] for query in queries]
            for own, ms in zip(timed.per_query, times, strict=True):
                own.append(ms)
            timed.ms.append(sum(times))
    except QueryError as exc:
        timed.error = str(exc)
    except httpx.HTTPError as exc:
        timed.error = f"{type(exc).__name__}: {exc}"
    return timed


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-int(share * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


def figures(timed: Timed) -> dict[str, Any]:
    if not timed.ms:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None, "repetitions": 0, "targets_p95_ms": []}
    return {
        "p50_ms": round(percentile(timed.ms, 0.5), 1),
        "p95_ms": round(percentile(timed.ms, 0.95), 1),
        "max_ms": round(max(timed.ms), 1),
        "repetitions": len(timed.ms),
        "targets_p95_ms": [round(percentile(ms, 0.95), 1) for ms in timed.per_query],
    }


def variables(http: httpx.Client, dashboard: Dashboard, household: str) -> dict[str, Variable]:
    """Building (multi): every option, as "All"; household (single): ``household``."""
    out = {}
    for variable in dashboard.variables:
        if not variable.multi:
            out[variable.name] = Variable((household,))
            continue
        response = http.get("/query", params={"db": DATABASE, "q": variable.query})
        series = response.json()["results"][0].get("series") or []
        options = sorted(row[1] for s in series for row in s["values"])
        out[variable.name] = Variable(tuple(options), multi=True)
    return out


def bench_panels(
    url: str,
    now: dt.datetime,
    *,
    repetitions: int,
    budget_s: float,
    household: str,
    goal_ms: float,
    only: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    results = []
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as http:
        for dashboard in dashboards():
            chosen = variables(http, dashboard, household)
            for panel in dashboard.panels:
                if only and panel.key not in only and f"{dashboard.uid}/{panel.key}" not in only:
                    continue
                label, start, stop = default_range(dashboard, panel, now)
                # a panel with its own range (Grafana's relative time) never sees the dashboard's 30 days
                month = ("30d", _ms(now - dt.timedelta(days=30)), _ms(now))
                ranges = [
                    ("default", label, start, stop),
                    ("30d", *((label, start, stop) if panel.time_from else month)),
                ]
                for kind, text, from_ms, to_ms in ranges:
                    queries = [
                        expand(
                            t.query,
                            from_ms=from_ms,
                            to_ms=to_ms,
                            variables=chosen,
                            max_data_points=panel.max_data_points,
                            min_interval=panel.interval,
                        )
                        for t in panel.targets
                    ]
                    twins = [
                        expand(
                            t.raw or t.query,
                            from_ms=from_ms,
                            to_ms=to_ms,
                            variables=chosen,
                            max_data_points=panel.max_data_points,
                            min_interval=panel.interval,
                        )
                        for t in panel.targets
                    ]
                    has_twin = any(t.raw for t in panel.targets)
                    timed = time_queries(http, queries, repetitions, budget_s)
                    raw = time_queries(http, twins, repetitions, budget_s) if has_twin else timed
                    main, twin = figures(timed), figures(raw)
                    errors = [e for e in (timed.error, raw.error if has_twin else None) if e]
                    p95 = main["p95_ms"]
                    results.append(
                        {
                            "dashboard": dashboard.uid,
                            "panel": panel.key,
                            "range": kind,
                            "range_text": text,
                            "from": dt.datetime.fromtimestamp(from_ms / 1000, dt.UTC).isoformat(),
                            "to": dt.datetime.fromtimestamp(to_ms / 1000, dt.UTC).isoformat(),
                            "targets": len(queries),
                            "reads": "rollups" if has_twin else "raw (no twin: the query is on raw data)",
                            **main,
                            "rows": timed.rows,
                            **{f"raw_{k}": v for k, v in twin.items()},
                            "raw_rows": raw.rows,
                            "ok": p95 is not None and p95 <= goal_ms and not errors,
                            "errors": errors,
                        }
                    )
                    log(
                        f"{dashboard.uid:22} {panel.key:18} {kind:7} p95 {p95 or -1:8.1f} ms  "
                        f"raw {twin['p95_ms'] or -1:8.1f} ms  rows {timed.rows:6} {'; '.join(errors)}"
                    )
    return results


# setup --------------------------------------------------------------------------------------------------


def energy_command() -> list[str]:
    return [sys.executable, "-m", "ingest.cli", "energy", "rollup"]


def energy_ledger(url: str, directory: Path, since: dt.date, until: dt.date) -> dict[str, Any]:
    """``reallabor energy rollup`` over the range, when the command exists (ingest/energy/ is being built)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALLABOR_")}
    env["PYTHONPATH"] = str(REPO)
    probe = subprocess.run(
        [*energy_command(), "--help"], capture_output=True, text=True, env=env, cwd=REPO, check=False
    )
    if probe.returncode != 0:
        return {"skipped": "`reallabor energy rollup` does not exist yet", "detail": probe.stderr[-300:]}
    config = directory / "energy.yaml"
    config.write_text(
        json.dumps({"mode": "development", "influx": {"url": url, "database": DATABASE}})  # JSON is YAML
    )
    command = [
        *energy_command(),
        "--config",
        str(config),
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
    ]
    began = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=3600
    )
    seconds = round(time.monotonic() - began, 1)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}", "seconds": seconds, "stderr": done.stderr[-1000:]}
    return {"seconds": seconds, "output": done.stdout[-500:].strip()}


def rollups(url: str, spec: FillSpec, *, workers: int) -> dict[str, Any]:
    """The lifecycle's backfill statements for the range: the quarter hours day by day (``workers`` at
    once), then the days from them."""
    client = InfluxV1(url, auth=None, timeout_s=3600)
    first = lifecycle.rollup_day(spec.start_s * 1_000_000_000)
    until = dt.datetime.fromtimestamp(spec.end_s + 1, dt.UTC)
    statements = list(lifecycle.backfill_statements(DATABASE, first_day=first, until=until))
    daily = [s for s in statements if '_1d" FROM' in s]
    quarter_hours = [s for s in statements if '_1d" FROM' not in s]
    points = 0

    def run(statement: str) -> int:
        series = client.query(statement, database=DATABASE)
        return int(series[0]["values"][0][1]) if series else 0

    try:
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            points += sum(pool.map(run, quarter_hours))
        quarter_s = time.monotonic() - began
        began = time.monotonic()
        points += sum(run(s) for s in daily)
        daily_s = time.monotonic() - began
    finally:
        client.close()
    return {
        "statements": len(statements),
        "points": points,
        "quarter_hour_seconds": round(quarter_s, 1),
        "daily_seconds": round(daily_s, 1),
        "seconds": round(quarter_s + daily_s, 1),
    }


def tsm_files(directory: Path) -> int:
    return sum(1 for _ in (directory / "data").rglob("*.tsm"))


def wait_compacted(directory: Path, *, quiet_s: float = 30, timeout_s: float = 600) -> float:
    """Wait until the number of TSM files stays the same for ``quiet_s`` (compactions done)."""
    began = time.monotonic()
    last, since = -1, time.monotonic()
    while time.monotonic() - began < timeout_s:
        count = tsm_files(directory)
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(2)
    return round(time.monotonic() - began, 1)


def fill(influx: BenchInflux, spec: FillSpec, args: argparse.Namespace) -> dict[str, Any]:
    client = InfluxV1(influx.url, auth=None)
    try:
        # 91 days: the oldest day (written last) must not fall out of the 90 days while the fill runs
        init_lifecycle(client, database=DATABASE, raw_retention=dt.timedelta(days=91))
    finally:
        client.close()
    log(f"backfill: {spec.households} households x {args.days} days, {args.writers} writers")
    report: dict[str, Any] = {"backfill": backfill(influx.url, DATABASE, spec, writers=args.writers)}
    log(f"backfill done: {report['backfill']}")
    report["rollups"] = rollups(influx.url, spec, workers=args.writers)
    log(f"rollups done: {report['rollups']}")
    return report


def household_of(spec: FillSpec) -> str:
    """The drill-down's household: one with PV and an EV charger when the quarter has one (most series)."""
    households = quarter_of(spec).households
    rich = [h for h in households if h.pv_kwp and h.ev_kw] or list(households)
    return rich[0].name


def machine() -> dict[str, Any]:
    version = subprocess.run(
        ["influxd", "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    memory = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {
        "cores": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "memory_gb": round(int(memory) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "influxd": version,
        "load_at_start": os.getloadavg()[0],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"bench": "panels", "machine": machine(), "goal_ms": args.goal_ms}
    with data_directory(args.reuse, prefix="bench-panels-") as directory:
        state = directory / FILL_FILE
        saved = json.loads(state.read_text()) if state.exists() else None
        wanted = {"households": args.households, "days": args.days, "interval_s": args.interval}
        if saved is not None and saved["wanted"] != wanted:
            log(f"{directory}: filled for {saved['wanted']}, not {wanted}: filling again")
            shutil.rmtree(directory / "influx", ignore_errors=True)
            saved = None
        influx = BenchInflux(directory / "influx", port=free_port())
        influx.start(timeout=60)
        try:
            if saved is None:
                end = int(time.time()) // args.interval * args.interval
                spec = FillSpec(
                    args.households, end - args.days * 86400 + args.interval, end, interval_s=args.interval
                )
                report = fill(influx, spec, args)
                saved = {"wanted": wanted, "spec": asdict(spec), "report": report}
                saved["rollup_version"] = rollup_version()
                state.write_text(json.dumps(saved))
                result["reused"] = False
            else:
                spec = FillSpec(**saved["spec"])
                report = saved["report"]
                result["reused"] = str(directory)
                log(f"reusing the data in {directory} (filled {saved['spec']})")
                if saved.get("rollup_version") != rollup_version():
                    log("the rollups changed since the fill: computing them again")
                    report["rollups"] = rollups(influx.url, spec, workers=args.writers)
                    log(f"rollups done: {report['rollups']}")
                    saved = {**saved, "report": report, "rollup_version": rollup_version()}
                    state.write_text(json.dumps(saved))
            quarter = quarter_of(spec)
            result["data"] = {
                "households": spec.households,
                "buildings": len({h.building for h in quarter.households}),
                "days": args.days,
                "start": dt.datetime.fromtimestamp(spec.start_s, dt.UTC).isoformat(),
                "end": dt.datetime.fromtimestamp(spec.end_s, dt.UTC).isoformat(),
                "interval_s": spec.interval_s,
                "messages_per_s_simulated": round(messages_per_second(quarter, spec.interval_s), 2),
            }
            result.update(report)
            since = lifecycle.rollup_day(spec.start_s * 1_000_000_000)
            until = lifecycle.rollup_day(spec.end_s * 1_000_000_000) + dt.timedelta(days=1)
            if args.energy and ("energy" not in report or "skipped" in report["energy"]):
                log("energy ledger: reallabor energy rollup")
                report["energy"] = energy_ledger(influx.url, directory, since, until)
                state.write_text(
                    json.dumps({**(saved or {}), "wanted": wanted, "spec": asdict(spec), "report": report})
                )
            result["energy"] = report.get("energy", {"skipped": "--no-energy"})
            log(f"energy ledger: {result['energy']}")
            result["compaction_wait_s"] = wait_compacted(influx.directory, quiet_s=args.quiet)
            log(f"compactions settled after {result['compaction_wait_s']} s; timing the panels")
            now = dt.datetime.fromtimestamp(spec.end_s, dt.UTC)
            began = time.monotonic()
            panels = bench_panels(
                influx.url,
                now,
                repetitions=args.repetitions,
                budget_s=args.budget,
                household=household_of(spec),
                goal_ms=args.goal_ms,
                only=frozenset(args.only),
            )
            result["queries_seconds"] = round(time.monotonic() - began, 1)
        finally:
            influx.stop()
    result["repetitions"] = args.repetitions
    result["panels"] = panels
    result["summary"] = summary(panels)
    result["machine"]["load_at_end"] = os.getloadavg()[0]
    return result


def summary(panels: list[dict[str, Any]]) -> dict[str, Any]:
    def worst(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        timed = [r for r in rows if r["p95_ms"] is not None]
        if not timed:
            return None
        top = max(timed, key=lambda r: r["p95_ms"])
        return {k: top[k] for k in ("dashboard", "panel", "range", "p95_ms", "raw_p95_ms")}

    out: dict[str, Any] = {}
    for kind in ("default", "30d"):
        rows = [r for r in panels if r["range"] == kind]
        out[kind] = {
            "panels": len(rows),
            "meet_goal": sum(1 for r in rows if r["ok"]),
            "errors": sum(1 for r in rows if r["errors"]),
            "worst": worst(rows),
        }
    out["errors"] = [
        {k: r[k] for k in ("dashboard", "panel", "range", "errors")} for r in panels if r["errors"]
    ]
    out["all_ok"] = all(r["ok"] for r in panels)
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{'dashboard':22} {'panel':18} {'range':8} {'p50':>8} {'p95':>8} {'raw p95':>9} {'rows':>6}  ok",
    ]
    for r in result["panels"]:
        raw = "" if r["raw_p95_ms"] is None or r["reads"] != "rollups" else f"{r['raw_p95_ms']:.1f}"
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.1f}"
        p95 = "-" if r["p95_ms"] is None else f"{r['p95_ms']:.1f}"
        flag = "yes" if r["ok"] else ("ERROR " + "; ".join(r["errors"]) if r["errors"] else "no")
        lines.append(
            f"{r['dashboard']:22} {r['panel']:18} {r['range']:8} {p50:>8} {p95:>8} {raw:>9} "
            f"{r['rows']:>6}  {flag}"
        )
    fill_report = result.get("backfill", {})
    lines.append(
        f"backfill: {fill_report.get('points')} points in {fill_report.get('seconds')} s "
        f"({fill_report.get('points_per_s')} points/s); "
        f"rollups {result.get('rollups', {}).get('seconds')} s; "
        f"energy {result.get('energy')}"
    )
    for kind in ("default", "30d"):
        s = result["summary"][kind]
        lines.append(
            f"{kind}: {s['meet_goal']}/{s['panels']} panels within {result['goal_ms']:.0f} ms; "
            f"worst {s['worst']}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--households", type=int, default=110)
    parser.add_argument("--days", type=int, default=90, help="days of data, ending now (at most 90: raw RP)")
    parser.add_argument("--interval", type=int, default=60, help="seconds between meter/PV/EV readings")
    parser.add_argument("--repetitions", type=int, default=20, help="timed runs per query (after 1 warm-up)")
    parser.add_argument("--writers", type=int, default=3, help="backfill processes writing at once")
    parser.add_argument(
        "--budget",
        type=float,
        default=15,
        help="seconds per panel and range at most (fewer repetitions for slow queries, at least 3)",
    )
    parser.add_argument("--goal-ms", type=float, default=GOAL_MS)
    parser.add_argument("--reuse", type=Path, metavar="DIR", help="keep the filled InfluxDB here; reuse it")
    parser.add_argument("--no-energy", dest="energy", action="store_false", help="skip the energy ledger")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY",
        help="time only this panel (its key, or uid/key; repeatable)",
    )
    parser.add_argument(
        "--quiet", type=float, default=30, help="seconds without TSM changes before timing (compactions)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.days <= 90:
        parser.error(f"--days {args.days}: from 1 to 90 (the raw retention policy keeps 90 days)")
    if args.households < 1 or args.repetitions < 1 or args.writers < 1:
        parser.error("--households, --repetitions and --writers must be at least 1")
    if args.interval < 1 or 300 % args.interval:
        parser.error(f"--interval {args.interval}: a divisor of 300 s (heat and climate report every 5 min)")
    return args


def main(argv: list[str] | None = None) -> None:
    # a TERM (or an INT to a background job, which ignores it) still stops our InfluxDB: finally blocks run
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result = run(parse_args(argv))
    print(table(result), file=sys.stderr)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
