"""``reallabor opendata export|run``: the open-data files from the command line (docs/opendata.md).

``export --from D --to D [--out DIR] [--force]`` exports the local days D … D (both included,
YYYY-MM-DD, local time in ``ingest.timezone``) into the month files under DIR (default
``opendata.out_dir``) and rewrites ``catalog.jsonld``; it prints a one-line JSON summary. Only final days
(the energy ledger no longer rewrites them, :func:`ingest.opendata.export.final_at`): a range reaching
past the newest final day is refused, naming the first day that is not final and when it will be. Days
already published are left as they are; ``--force`` rewrites them and warns. ``run`` wakes every day at
``opendata.daily_at`` and exports the days that have become final since its last run; ``run --once``
does that once now and exits (for cron). The export reads InfluxDB as the reader account
(``influx.read_username``) and the registry for the public labels.
Exit codes: 0 done, 1 InfluxDB or the registry refused or is away (or another export held the
directory too long), 2 bad settings or usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
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
#: the days InfluxDB's nanosecond timestamps can hold (1677-09-21 … 2262-04-11), from the Unix epoch
EARLIEST, LATEST = dt.date(1970, 1, 1), dt.date(2262, 4, 10)
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EXAMPLE = """\
exit codes:
  0  done (the summary line says how many days were published, already published, without data)
  1  InfluxDB or the registry refused or is away; another export held the directory too long
  2  bad usage: a date that is not YYYY-MM-DD or out of range, --from after --to, a day that is not
     final yet (the energy ledger may still rewrite it: today, yesterday with energy.window 1d),
     an output directory that cannot be written, bad settings

example:
  reallabor opendata export --from 2026-11-01 --to 2026-11-28
  # a day already published is left as it is (a revised figure can give away one household);
  # --force rewrites it and warns. Days without any data write nothing.
"""


def _date(text: str) -> dt.date:
    """A day as YYYY-MM-DD, as argparse's type (a bad one: exit 2 naming it)."""
    try:
        if not _ISO_DAY.match(text.strip()):
            raise ValueError(text)
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD (2026-11-29): {text!r}") from None
    if not EARLIEST <= day <= LATEST:
        raise argparse.ArgumentTypeError(
            f"{text!r} is outside {EARLIEST.isoformat()} … {LATEST.isoformat()} (what InfluxDB can hold)"
        )
    return day


def writable_directory(path: Path) -> str | None:
    """None if ``path`` is (or can be made) a directory we can write files in, else why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        return f"{exc.strerror or type(exc).__name__}"
    return None


def export_with(
    settings: Settings, first: dt.date, last: dt.date, out_dir: Path, *, force: bool = False
) -> ExportReport:
    """:func:`ingest.opendata.export.export_days` against the settings' InfluxDB and registry. The days
    must be final (:func:`final_through`); the caller checks."""
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
            force=force,
        )
    finally:
        reader.close()


def ledger_window(settings: Settings) -> dt.timedelta:
    """``energy.window``: how long after a day's end the energy ledger may still rewrite it."""
    from ingest.energy.settings import parse_window

    return parse_window(settings.energy.window)


def final_through(settings: Settings, now: dt.datetime | None = None) -> dt.date:
    """The newest local day that is final now (the ledger's window and settling time after its end)."""
    from ingest.opendata.export import last_final_day

    moment = now if now is not None else dt.datetime.now(dt.UTC)
    return last_final_day(moment, ledger_window(settings), ZoneInfo(settings.ingest.timezone))


def _settings(args: argparse.Namespace) -> Settings | None:
    from ingest.cli import find_settings
    from ingest.config import ConfigError

    try:
        return find_settings(args.config)
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return None


def _failed(settings: Settings, command: str, exc: Exception) -> int:
    from ingest.portal.reader import InfluxUnavailable

    if isinstance(exc, InfluxUnavailable):
        print(f"reallabor opendata {command}: InfluxDB at {settings.influx.url}: {exc}", file=sys.stderr)
    else:
        print(f"reallabor opendata {command}: {exc}", file=sys.stderr)
    return EXIT_FAILED


def _summary(report: ExportReport, command: str) -> None:
    if report.forced:
        days = ", ".join(day.isoformat() for day in report.forced)
        print(
            f"reallabor opendata {command}: WARNING --force rewrote {len(report.forced)} published day(s) "
            f"({days}): where a figure changed, old and new file together give away the change, which "
            "can be one household's own value (docs/opendata.md)",
            file=sys.stderr,
        )
    if report.empty and not report.published and not report.forced:
        print(
            f"reallabor opendata {command}: no data on any of the {len(report.empty)} day(s) "
            f"{report.empty[0].isoformat()} … {report.empty[-1].isoformat()}: nothing written for them",
            file=sys.stderr,
        )
    print(report.line())


def _not_final(settings: Settings, first: dt.date, last: dt.date) -> str | None:
    """Why ``first`` … ``last`` cannot be exported yet, or None."""
    from ingest.opendata.export import final_at

    newest = final_through(settings)
    if last <= newest:
        return None
    pending = max(first, newest + dt.timedelta(days=1))
    tz = ZoneInfo(settings.ingest.timezone)
    when = final_at(pending, ledger_window(settings), tz)
    return (
        f"{pending.isoformat()} is not final yet: the energy ledger (energy.window "
        f"{settings.energy.window}) may still rewrite it until {when.isoformat(timespec='minutes')}, and a "
        f"published day is never rewritten; days up to {newest.isoformat()} are final"
    )


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
    not_final = _not_final(settings, args.from_, args.to)
    if not_final is not None:
        print(f"reallabor opendata export: {not_final}", file=sys.stderr)
        return EXIT_USAGE
    out_dir: Path = args.out if args.out is not None else settings.opendata.out_dir
    problem = writable_directory(out_dir)
    if problem is not None:
        print(f"reallabor opendata export: --out {out_dir} is not writable: {problem}", file=sys.stderr)
        return EXIT_USAGE
    from ingest.opendata.export import FAILURES

    try:
        report = export_with(settings, args.from_, args.to, out_dir, force=args.force)
    except FAILURES as exc:
        return _failed(settings, "export", exc)
    _summary(report, "export")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ingest.opendata.export import FAILURES, run_due, run_loop
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
    window = ledger_window(settings)

    def job(first: dt.date, last: dt.date) -> ExportReport:
        return export_with(settings, first, last, opendata.out_dir)

    if args.once:
        now = dt.datetime.now(dt.UTC)
        try:
            report, _ = run_due(job, now=now, window=window, tz=tz, out_dir=opendata.out_dir)
        except FAILURES as exc:
            return _failed(settings, "run", exc)
        if report is None:
            newest = final_through(settings, now)
            print(json.dumps({"nothing_due": True, "final_through": newest.isoformat()}))
        else:
            _summary(report, "run")
        return 0
    setup_logging(settings.ingest.log_level)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    log.warning(
        "open data: every day at %s (%s) the days that became final (energy.window %s) into %s",
        opendata.daily_at,
        settings.ingest.timezone,
        settings.energy.window,
        os.fspath(opendata.out_dir),
    )
    run_loop(job, daily_at=opendata.daily_at, tz=tz, stop=stop, out_dir=opendata.out_dir, window=window)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    opendata = sub.add_parser(
        "opendata", help="open data: the quarter's energy and street sensors as CSV/JSON with a catalogue"
    )
    actions = opendata.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export",
        help="export final local days (both included) into the month files and rewrite the catalogue",
        description="Export the local days --from … --to (ingest.timezone) into the month files "
        "<out>/<dataset>/<dataset>_<YYYY-MM>.csv|.json and rewrite <out>/catalog.jsonld; print one line "
        "of JSON. Only final days: the energy ledger no longer rewrites them (the day's end plus "
        "energy.window plus 15 minutes). A day already published is left as it is; a day without any "
        "data writes nothing. docs/opendata.md",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--config", type=Path, help="settings YAML (default: as the other commands find it)")
    export.add_argument(
        "--from", dest="from_", type=_date, required=True, metavar="YYYY-MM-DD", help="first local day"
    )
    export.add_argument("--to", type=_date, required=True, metavar="YYYY-MM-DD", help="last local day")
    export.add_argument("--out", type=Path, help="output directory (default: opendata.out_dir)")
    export.add_argument(
        "--force",
        action="store_true",
        help="rewrite days already published (warns: a revised figure can give away one household)",
    )
    export.set_defaults(func=cmd_export)
    run = actions.add_parser(
        "run",
        help="every day at opendata.daily_at: the days that became final since the last run",
        description="Every day at opendata.daily_at (local time) export the days that have become final "
        "since the last run (remembered in <out_dir>/.daily-run.json; the first run starts at the first "
        "of the newest final day's month) into opendata.out_dir. Exit codes as for export.",
    )
    run.add_argument("--config", type=Path, help="settings YAML (default: as the other commands find it)")
    run.add_argument("--once", action="store_true", help="export the days due now, once, and exit")
    run.set_defaults(func=cmd_run)
