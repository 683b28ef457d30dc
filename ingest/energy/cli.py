"""``reallabor energy rollup|run``: the energy ledger from the command line.

``rollup --since S --until U`` computes and writes the ledger of a range (idempotent: a backfill, or a
range again after late data), widened to whole local days, and prints its figures. ``run`` is the loop:
every ``energy.interval_s`` the trailing ``energy.window``. S and U are ISO-8601 dates (a local day's
start) or date-times (without an offset: local time in ``ingest.timezone``).
Exit codes: 0 done, 1 InfluxDB refused or is away, 2 bad settings or usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.energy.job import RollupReport

EXIT_FAILED, EXIT_USAGE = 1, 2
log = logging.getLogger("reallabor.energy")


def _moment(text: str) -> dt.date | dt.datetime:
    """An ISO-8601 date or date-time, as argparse's type (a bad one: exit 2 naming it)."""
    try:
        if "T" in text or " " in text.strip():
            return dt.datetime.fromisoformat(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO-8601 date or date-time (2025-06-18, 2025-06-18T06:00, 2025-06-18T04:00Z): {text!r}"
        ) from None


def aware(value: dt.date | dt.datetime, zone: str) -> dt.datetime:
    """A date as its local midnight, a naive date-time as local time, in ``zone``."""
    tz = ZoneInfo(zone)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return dt.datetime.combine(value, dt.time(), tz)


def rollup_with(settings: Settings, since: dt.datetime, until: dt.datetime) -> RollupReport:
    """:func:`ingest.energy.job.rollup` against the settings' InfluxDB, as the ledger's user."""
    from ingest.energy.job import rollup
    from ingest.energy.settings import ledger_auth
    from ingest.energy.store import LedgerWriter, RawReader
    from ingest.lifecycle_cli import InfluxV1

    influx = settings.influx
    auth = ledger_auth(settings)
    client = InfluxV1(influx.url, auth=auth, timeout_s=120)
    writer = LedgerWriter(influx.url, influx.database, auth=auth)
    try:
        reader = RawReader(client, influx.database, raw_rp=influx.retention_policy)
        return rollup(reader, writer, since=since, until=until, zone=settings.ingest.timezone)
    finally:
        writer.close()
        client.close()


def _settings(args: argparse.Namespace) -> Settings | None:
    from ingest.cli import find_settings
    from ingest.config import ConfigError

    try:
        settings = find_settings(args.config)
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return None
    if settings.influx.api != "v1":
        print(
            "reallabor energy: the ledger speaks InfluxQL and /write (InfluxDB 1.x, or 2.x through its v1 "
            "API): set influx.api v1 with a DBRP mapping for the database's raw and rollups policies",
            file=sys.stderr,
        )
        return None
    return settings


def cmd_rollup(args: argparse.Namespace) -> int:
    from ingest.energy.store import LedgerError

    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    zone = settings.ingest.timezone
    since, until = aware(args.since, zone), aware(args.until, zone)
    if not since < until:
        print(
            f"reallabor energy rollup: --since ({since.isoformat()}) must be before --until "
            f"({until.isoformat()})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        report = rollup_with(settings, since, until)
    except LedgerError as exc:
        print(f"reallabor energy rollup: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(report.line())
    print(
        f"readings={report.readings} buckets={report.buckets} days={report.days} seconds={report.seconds:.3f}"
    )
    return 0


def run_until(settings: Settings, stop: threading.Event) -> int:
    """The loop of ``reallabor energy run`` (and of ``reallabor up``) until ``stop``; the runs done."""
    from ingest.energy.job import run_loop
    from ingest.energy.settings import parse_window

    return run_loop(
        lambda since, until: rollup_with(settings, since, until),
        window=parse_window(settings.energy.window),
        interval_s=settings.energy.interval_s,
        stop=stop,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from ingest.security.audit import setup_logging

    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    from ingest.config import ConfigError

    try:
        settings.check_production("energy")
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(settings.ingest.log_level)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.warning(
        "energy ledger: every %.0f s the last %s (whole local days)",
        settings.energy.interval_s,
        settings.energy.window,
    )
    run_until(settings, stop)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    energy = sub.add_parser(
        "energy", help="the energy ledger: exact energy per device and 15 minutes / day (rollups.energy)"
    )
    actions = energy.add_subparsers(dest="action", required=True)
    rollup = actions.add_parser(
        "rollup", help="compute and write the ledger of a range (whole local days; idempotent)"
    )
    rollup.add_argument("--config", type=Path, help="settings YAML (default: as the other commands find it)")
    for name, text in (("--since", "from (inclusive)"), ("--until", "to (exclusive)")):
        rollup.add_argument(
            name,
            type=_moment,
            required=True,
            metavar="ISO",
            help=f"{text}: ISO-8601 date or date-time (no offset: local time)",
        )
    rollup.set_defaults(func=cmd_rollup)
    run = actions.add_parser("run", help="recompute the trailing energy.window every energy.interval_s")
    run.add_argument("--config", type=Path, help="settings YAML (default: as the other commands find it)")
    run.set_defaults(func=cmd_run)
