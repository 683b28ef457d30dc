"""``reallabor opendata export|run``: the open-data files from the command line (docs/opendata.md).

``export --from D --to D [--out DIR]`` exports the local days D … D (both included, ISO dates, local time
in ``ingest.timezone``) into the month files under DIR (default ``opendata.out_dir``) and rewrites
``catalog.jsonld``; it prints a one-line JSON summary. ``run`` wakes every day at ``opendata.daily_at``
and exports yesterday's month up to yesterday; ``run --once`` does that once now and exits (for cron).
The export reads InfluxDB as the reader account (``influx.read_username``) and the registry for the
public labels. Exit codes: 0 done, 1 InfluxDB or the registry refused or is away, 2 bad settings or usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from ingest.config import Settings
    from ingest.opendata.export import ExportReport

EXIT_FAILED, EXIT_USAGE = 1, 2
log = logging.getLogger("reallabor.opendata")


def _date(text: str) -> dt.date:
    """An ISO-8601 date, as argparse's type (a bad one: exit 2 naming it)."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date (2026-11-29): {text!r}") from None


def writable_directory(path: Path) -> str | None:
    """None if ``path`` is (or can be made) a directory we can write files in, else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        return f"{exc.strerror or type(exc).__name__}"
    return None


def export_with(settings: Settings, first: dt.date, last: dt.date, out_dir: Path) -> ExportReport:
    """:func:`ingest.opendata.export.export_days` against the settings' InfluxDB and registry."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from ingest.opendata.export import ExportFailed, export_days
    from ingest.opendata.sources import load_labels
    from ingest.portal.reader import Reader
    from ingest.registry.db import make_engine, session_factory

    opendata = settings.opendata
    url = make_url(settings.registry.url)
    database = url.database or ""
    if (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not Path(database).exists()
    ):
        raise ExportFailed(f"no registry database at {url.database}: run `reallabor registry migrate`")
    engine = make_engine(settings.registry.url)
    try:
        with session_factory(engine)() as session:
            labels = load_labels(session, opendata.street_building)
    except SQLAlchemyError as exc:
        raise ExportFailed(
            f"the registry ({url.get_backend_name()}) cannot be read: {type(exc).__name__}; "
            "run `reallabor registry migrate`"
        ) from None
    finally:
        engine.dispose()
    reader = Reader(settings.influx, timeout_s=120)
    try:
        return export_days(
            reader,
            labels,
            first=first,
            last=last,
            out_dir=out_dir,
            opendata=opendata,
            tz=ZoneInfo(settings.ingest.timezone),
            raw_rp=settings.influx.retention_policy,
        )
    finally:
        reader.close()


def _settings(args: argparse.Namespace) -> Settings | None:
    from ingest.cli import find_settings
    from ingest.config import ConfigError

    try:
        return find_settings(args.config)
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return None


def _export(settings: Settings, first: dt.date, last: dt.date, out_dir: Path, command: str) -> int:
    from ingest.opendata.export import FAILURES
    from ingest.portal.reader import InfluxUnavailable

    try:
        report = export_with(settings, first, last, out_dir)
    except InfluxUnavailable as exc:
        print(f"reallabor opendata {command}: InfluxDB at {settings.influx.url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FAILURES as exc:
        print(f"reallabor opendata {command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(report.line())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.to < args.from_:
        print(
            f"reallabor opendata export: --from ({args.from_.isoformat()}) is after --to "
            f"({args.to.isoformat()})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    out_dir: Path = args.out if args.out is not None else settings.opendata.out_dir
    problem = writable_directory(out_dir)
    if problem is not None:
        print(f"reallabor opendata export: --out {out_dir} is not writable: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return _export(settings, args.from_, args.to, out_dir, "export")


def cmd_run(args: argparse.Namespace) -> int:
    from ingest.opendata.export import daily_range, run_loop
    from ingest.security.audit import setup_logging

    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    opendata = settings.opendata
    problem = writable_directory(opendata.out_dir)
    if problem is not None:
        print(
            f"reallabor opendata run: opendata.out_dir {opendata.out_dir} is not writable: {problem}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    tz = ZoneInfo(settings.ingest.timezone)
    if args.once:
        first, last = daily_range(dt.datetime.now(tz).date())
        return _export(settings, first, last, opendata.out_dir, "run")
    setup_logging(settings.ingest.log_level)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.warning(
        "open data: every day at %s (%s) yesterday's month into %s",
        opendata.daily_at,
        settings.ingest.timezone,
        os.fspath(opendata.out_dir),
    )
    run_loop(
        lambda first, last: export_with(settings, first, last, opendata.out_dir),
        daily_at=opendata.daily_at,
        tz=tz,
        stop=stop,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    opendata = sub.add_parser(
        "opendata", help="open data: the quarter's energy and street sensors as CSV/JSON with a catalogue"
    )
    actions = opendata.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export", help="export local days (both included) into the month files and rewrite the catalogue"
    )
    export.add_argument("--config", type=Path, help="settings YAML (default: as the other commands find it)")
    export.add_argument(
        "--from", dest="from_", type=_date, required=True, metavar="DATE", help="first local day (ISO)"
    )
    export.add_argument("--to", type=_date, required=True, metavar="DATE", help="last local day (ISO)")
    export.add_argument("--out", type=Path, help="output directory (default: opendata.out_dir)")
    export.set_defaults(func=cmd_export)
    run = actions.add_parser(
        "run", help="every day at opendata.daily_at: yesterday's month up to yesterday into opendata.out_dir"
    )
    run.add_argument("--config", type=Path, help="settings YAML (default: as the other commands find it)")
    run.add_argument("--once", action="store_true", help="export yesterday's month now, once, and exit")
    run.set_defaults(func=cmd_run)
