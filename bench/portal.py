"""Residents' portal latency: the year, month and day views of 110 households over a year of data.

    .venv/bin/python -m bench.portal                                  # 110 households x 365 days, 20 reps
    .venv/bin/python -m bench.portal --reuse /tmp/portal-bench        # keep the filled InfluxDB
    .venv/bin/python -m bench.portal --households 6 --days 3 --repetitions 2   # seconds

Starts its own InfluxDB 1.6 (temp dir or ``--reuse DIR``, loopback), then fills the energy ledger the
portal reads (``rollups.energy`` per quarter hour and device, ``rollups.energy_1d`` per local day) for the
year 2025: what the ledger job makes of a year of 1-minute counters (main meter import/export, PV on a
third of the households, heat, EV charging on a fifth), generated per quarter hour directly, since 231
million raw lines would take hours to write here. The last ``--raw-days`` (default 1) do go the real way:
1-minute raw counters written and rolled up by :mod:`ingest.energy` (overwriting those days' points).

A SQLite registry holds the households and one resident each; the real app (``create_app``) answers
``/portal?view=year|month|day`` in-process (TestClient: routing, session, queries, template). Each view is
timed ``cold`` (the quarter's per-day figures empty before each request, as after a start: a month or a
day computes its days in the request, a year says "being computed") and ``warm`` (after the background
warm-up computed the year's days: every resident after it), each repetition another household.
Prints a table to stderr and one JSON document on stdout (its last line); the goal is the year view's
p95 <= ``--goal-ms`` (300).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np

from bench.datadir import data_directory

ZONE = ZoneInfo("Europe/Berlin")
DATABASE = "reallabor"
YEAR = 2025
VIEWS = ("year", "month", "day")  # on 18 June 2025 (or the last day filled, when fewer)
STATE = "filled.json"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def household_tags(h: int) -> tuple[str, str]:
    return f"hh-{h:03}", f"Haus {(h - 1) // 10 + 1}"


def kinds_of(h: int) -> list[tuple[str, str]]:
    """(kind, device) of household ``h`` (1-based)."""
    name, _ = household_tags(h)
    out = [("import", f"{name}-p1"), ("export", f"{name}-p1"), ("heat", f"{name}-heat")]
    if h % 3 == 0:
        out.append(("pv", f"{name}-pv"))
    if h % 5 == 0:
        out.append(("ev", f"{name}-ev"))
    return out


def day_profile(h: int, kind: str, day: dt.date, starts: np.ndarray) -> Any:
    """kWh per quarter hour starting at ``starts`` (UTC seconds): smooth shapes, varied per household."""
    local_hour = (((starts + 3600) % 86400) / 3600.0).astype(float)  # near enough for shapes
    season = np.cos((day.timetuple().tm_yday - 172) / 365 * 2 * np.pi)  # +1 midsummer, -1 midwinter
    rng = np.random.default_rng(h * 1000 + day.toordinal() % 997)
    scale = 0.7 + (h % 7) / 10
    sun = np.clip(np.sin((local_hour - 6) / 14 * np.pi), 0, None) * (0.6 + 0.4 * season)
    if kind == "import":
        base = (
            0.05 + 0.08 * np.exp(-((local_hour - 19) ** 2) / 6) + 0.04 * np.exp(-((local_hour - 8) ** 2) / 3)
        )
        values = base * scale - (0.08 * sun if h % 3 == 0 else 0.0)
        return np.round(np.clip(values + rng.normal(0, 0.01, starts.size), 0.0, None), 6)
    if kind == "export":
        return (
            np.round(np.clip(0.3 * sun - 0.05, 0.0, None) * scale, 6) if h % 3 == 0 else np.zeros(starts.size)
        )
    if kind == "pv":
        return np.round(0.45 * sun * scale, 6)
    if kind == "heat":
        return np.round((0.25 - 0.2 * season) * scale * (1 + 0.2 * np.cos(local_hour / 24 * 2 * np.pi)), 6)
    charging = (local_hour >= 18) & (local_hour < 21) & (rng.random() < 0.5)
    return np.round(np.where(charging, 2.7, 0.0), 6)


def day_lines(day: dt.date, households: int) -> list[str]:
    start = dt.datetime.combine(day, dt.time(), ZONE)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ZONE)
    starts = np.arange(int(start.timestamp()), int(end.timestamp()), 900)
    midnight = int(start.timestamp())
    lines: list[str] = []
    for h in range(1, households + 1):
        name, building = household_tags(h)
        head_tags = f"building={building.replace(' ', chr(92) + ' ')},device="
        for kind, device in kinds_of(h):
            values = day_profile(h, kind, day, starts)
            tags = f"{head_tags}{device},household={name},kind={kind}"
            lines += [
                f"energy,{tags} kwh={v:.6f} {t}"
                for t, v in zip(starts.tolist(), values.tolist(), strict=True)
            ]
            lines.append(f"energy_1d,{tags} kwh={float(values.sum()):.6f} {midnight}")
    return lines


def raw_lines(day: dt.date, households: int, counters: dict[str, float]) -> list[str]:
    """1-minute counters of the day (and the counters carried on), as the ingester writes them."""
    start = int(dt.datetime.combine(day, dt.time(), ZONE).timestamp())
    minutes = np.arange(start - 60, start + 86400, 60)
    quarters = minutes - minutes % 900
    lines: list[str] = []
    for h in range(1, households + 1):
        name, building = household_tags(h)
        tags = f"building={building.replace(' ', chr(92) + ' ')},household={name}"
        per_minute = {
            kind: day_profile(h, kind, day, quarters) / 15.0 for kind, _ in kinds_of(h)
        }  # the quarter hour's energy spread evenly
        for kind, device in kinds_of(h):
            key = f"{device}:{kind}"
            steps = np.cumsum(per_minute[kind]) + counters.get(key, 1000.0)
            counters[key] = float(steps[-1])
            per_minute[kind] = steps
        for i, t in enumerate(minutes.tolist()):
            ns = t * 1_000_000_000
            lines.append(
                f"electricity,{tags},device={name}-p1 energy_import_kwh={per_minute['import'][i]:.4f},"
                f"energy_export_kwh={per_minute['export'][i]:.4f},power_w=400 {ns}"
            )
            lines.append(f"heat,{tags},device={name}-heat energy_kwh={per_minute['heat'][i]:.4f} {ns}")
            if "pv" in per_minute:
                lines.append(f"pv,{tags},device={name}-pv energy_kwh={per_minute['pv'][i]:.4f} {ns}")
            if "ev" in per_minute:
                ev = per_minute["ev"][i]
                lines.append(f"electricity,{tags},channel=0,device={name}-ev energy_import_kwh={ev:.4f} {ns}")
    return lines


def write(http: httpx.Client, lines: list[str], *, rp: str | None) -> None:
    params = {"db": DATABASE, "precision": "s" if rp else "ns"}
    if rp:
        params["rp"] = rp
    for chunk in range(0, len(lines), 50_000):
        response = http.post(
            "/write", params=params, content="\n".join(lines[chunk : chunk + 50_000]).encode()
        )
        response.raise_for_status()


def fill(url: str, households: int, days: int, raw_days: int) -> dict[str, Any]:
    first = dt.date(YEAR, 1, 1)
    report: dict[str, Any] = {}
    with httpx.Client(base_url=url, trust_env=False, timeout=300) as http:
        for statement in (
            f'CREATE DATABASE "{DATABASE}"',
            f'CREATE RETENTION POLICY "rollups" ON "{DATABASE}" DURATION INF REPLICATION 1',
        ):
            http.post("/query", data={"q": statement}).raise_for_status()
        started = time.monotonic()
        points = 0
        for offset in range(days):
            lines = day_lines(first + dt.timedelta(days=offset), households)
            write(http, lines, rp="rollups")
            points += len(lines)
            if offset % 30 == 29:
                log(f"ledger: {offset + 1} days, {points:,} points, {time.monotonic() - started:.0f} s")
        report["ledger_points"] = points
        report["ledger_write_s"] = round(time.monotonic() - started, 1)
        raw_first = first + dt.timedelta(days=max(0, days - raw_days))
        counters: dict[str, float] = {}
        started = time.monotonic()
        raw = 0
        for offset in range(min(raw_days, days)):
            lines = raw_lines(raw_first + dt.timedelta(days=offset), households, counters)
            write(http, lines, rp=None)
            raw += len(lines)
        report["raw_lines"] = raw
        report["raw_write_s"] = round(time.monotonic() - started, 1)
    if raw_days:
        from ingest.energy.job import rollup
        from ingest.energy.store import LedgerWriter, RawReader
        from ingest.lifecycle_cli import InfluxV1

        client = InfluxV1(url, auth=None, timeout_s=600)
        writer = LedgerWriter(url, DATABASE, auth=None)
        try:
            since = dt.datetime.combine(raw_first, dt.time(), ZONE)
            until = dt.datetime.combine(first + dt.timedelta(days=days), dt.time(), ZONE)
            done = rollup(RawReader(client, DATABASE), writer, since=since, until=until)
            report["rollup"] = done.line()
        finally:
            writer.close()
            client.close()
    return report


def registry(directory: Path, households: int) -> tuple[Any, list[str]]:
    from ingest.registry.buildings import create_building, create_household
    from ingest.registry.db import commit, make_engine, session_factory
    from ingest.registry.migrate import upgrade
    from ingest.registry.models import Role, User

    engine = make_engine(f"sqlite:///{directory / 'registry.db'}")
    upgrade(engine)
    usernames = []
    with session_factory(engine)() as session:
        buildings: dict[str, int] = {}
        for h in range(1, households + 1):
            name, building = household_tags(h)
            if building not in buildings:
                buildings[building] = create_building(session, name=building).id
            household = create_household(session, building_id=buildings[building], name=name)
            user = User(
                username=f"resident-{h:03}",
                password_hash="!",  # never logs in by password: the bench issues its session
                role=Role.resident,
                household_id=household.id,
                full_name="",
                is_active=True,
                session_version=0,
            )
            session.add(user)
            usernames.append(user.username)
        commit(session)
    return engine, usernames


def measure(url: str, directory: Path, households: int, days: int, repetitions: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from ingest.api.app import create_app
    from ingest.api.security import SESSION_COOKIE
    from ingest.config import Settings
    from ingest.portal.quarter import QuarterDays
    from ingest.registry.db import session_factory
    from ingest.registry.models import User

    engine, _usernames = registry(directory, households)
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        influx={"url": url, "database": DATABASE},
        ingest={"state_dir": directory / "state"},
    )
    app = create_app(settings, engine=engine, migrate=False)
    with session_factory(engine)() as session:
        tokens = [
            app.state.signer.issue(user) for user in session.scalars(select(User).order_by(User.username))
        ]
    results: dict[str, Any] = {}
    date = (dt.date(YEAR, 1, 1) + dt.timedelta(days=min(days - 1, 168))).isoformat()
    portal = app.state.portal

    class Cold(QuarterDays):
        """A cache as after a start: empty, and no warmer (it would run under the next requests)."""

        def warm(self, *, extra: tuple[dt.date, dt.date] | None = None) -> None:  # noqa: ARG002
            return None

    with TestClient(app) as client:
        for mode in ("cold", "warm"):
            if mode == "warm":
                portal.quarter = QuarterDays(portal.reader, portal.tz, now=portal.now)
                started = time.perf_counter()
                portal.quarter.warm()
                portal.quarter.wait()
                results["warm_up_s"] = round(time.perf_counter() - started, 1)
                log(f"the quarter's days of {YEAR} and {YEAR + 1} computed in {results['warm_up_s']} s")
            for view in VIEWS:
                times = []
                pending = 0
                for rep in range(repetitions + 1):  # the first is a warm-up
                    client.cookies.set(SESSION_COOKIE, tokens[(rep * 7) % len(tokens)])
                    if mode == "cold":
                        portal.quarter = Cold(portal.reader, portal.tz, now=portal.now)
                        portal.forget_kept()
                    started = time.perf_counter()
                    response = client.get("/portal", params={"view": view, "date": date})
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200 or 'class="totals"' not in response.text:
                        raise RuntimeError(f"{view}: HTTP {response.status_code}, no data on the page")
                    if rep:
                        times.append(elapsed)
                        pending += 'id="quarter-pending"' in response.text
                times.sort()
                p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                results[f"{view}_{mode}"] = {
                    "p50_ms": round(statistics.median(times), 1),
                    "p95_ms": round(p95, 1),
                    "max_ms": round(times[-1], 1),
                    "n": len(times),
                    "quarter_figures_pending": pending,
                }
                p50 = statistics.median(times)
                log(f"{view:5} {mode}: p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  pending {pending}")
    engine.dispose()
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ingest.localservices import InfluxDB

    result: dict[str, Any] = {
        "bench": "portal",
        "goal_ms": args.goal_ms,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_at_start": os.getloadavg()[0],
        },
    }
    wanted = {"households": args.households, "days": args.days, "raw_days": args.raw_days}
    with data_directory(args.reuse, prefix="bench-portal-") as directory:
        state = directory / STATE
        saved = json.loads(state.read_text()) if state.exists() else None
        if saved is not None and saved["wanted"] != wanted:
            shutil.rmtree(directory / "influxdb", ignore_errors=True)
            saved = None
        with InfluxDB(directory / "influxdb") as influx:
            if saved is None:
                report = fill(influx.url, args.households, args.days, args.raw_days)
                state.write_text(json.dumps({"wanted": wanted, "report": report}))
            else:
                report = saved["report"]
                log(f"reusing {directory}")
            result["data"] = {**wanted, **report}
            run_dir = Path(tempfile.mkdtemp(prefix="bench-portal-app-"))
            try:
                result["views"] = measure(influx.url, run_dir, args.households, args.days, args.repetitions)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
    year_p95 = result["views"]["year_warm"]["p95_ms"]
    result["year_p95_ms"] = {"warm": year_p95, "cold": result["views"]["year_cold"]["p95_ms"]}
    result["goal_met"] = {
        mode: result["views"][f"year_{mode}"]["p95_ms"] <= args.goal_ms for mode in ("warm", "cold")
    }
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--households", type=int, default=110)
    parser.add_argument("--days", type=int, default=365, help="days of 2025 from 1 January (default 365)")
    parser.add_argument(
        "--raw-days", type=int, default=1, help="last days through raw counters and the ledger"
    )
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--goal-ms", type=float, default=300.0)
    parser.add_argument("--reuse", type=Path, metavar="DIR", help="keep the filled InfluxDB here; reuse it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(run(parse_args(argv))))


if __name__ == "__main__":
    main()
