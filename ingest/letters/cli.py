"""``reallabor letters --month 2026-11``: the month's letters, one PDF per household and one file of all
of them to print on both sides (two pages, one sheet per household).

Files: ``letter-2026-11-<household>.pdf`` and ``letters-2026-11-all.pdf`` in ``--out`` (default
``<ingest.state_dir>/letters/2026-11``), readable by their owner only (residents' consumption is personal
data). Exit codes: 0 written, 1 InfluxDB or the registry failed, 2 bad month, settings or household.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ingest.letters.figures import BadMonth, Month

if TYPE_CHECKING:
    from ingest.letters.recipients import Recipient

EXIT_FAILED, EXIT_USAGE = 1, 2


def _slug(text: str) -> str:
    """A file-name part: ASCII letters, digits and dashes (``Haus A/Wohnung 3`` -> ``haus-a-wohnung-3``)."""
    plain = unicodedata.normalize("NFKD", text.replace("ß", "ss")).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-") or "haushalt"


def file_names(recipients: Sequence[Recipient], month: Month) -> list[str]:
    """``letter-<month>-<household>.pdf``; a household name two buildings share gets the building too."""
    counts: dict[str, int] = {}
    for recipient in recipients:
        counts[_slug(recipient.household)] = counts.get(_slug(recipient.household), 0) + 1
    names = []
    for recipient in recipients:
        slug = _slug(recipient.household)
        if counts[slug] > 1:
            slug = f"{_slug(recipient.building)}-{slug}"
        names.append(f"letter-{month}-{slug}.pdf")
    return names


def _write(path: Path, data: bytes) -> None:
    from ingest.security.files import private_file

    private_file(path)
    path.write_bytes(data)


def cmd_letters(args: argparse.Namespace) -> int:
    from ingest.cli import find_settings
    from ingest.config import ConfigError
    from ingest.letters import wording
    from ingest.letters.recipients import recipients
    from ingest.letters.render import Renderer, RenderError, merge
    from ingest.letters.source import letter_figures
    from ingest.portal.data import PortalData
    from ingest.portal.reader import InfluxUnavailable, Reader

    try:
        month = Month.parse(args.month)
    except BadMonth as exc:
        print(f"reallabor letters: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = find_settings(args.config)
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    found = recipients(settings.registry.url, household=args.household)
    if not found:
        what = f"no household named {args.household!r}" if args.household else "no households"
        print(f"reallabor letters: {what} in the registry ({settings.registry.url})", file=sys.stderr)
        return EXIT_USAGE
    texts = wording.Texts(
        sender=settings.letters.sender,
        help_text=settings.letters.help_text,
        privacy_text=settings.letters.privacy_text,
    )
    date = wording.german_date(args.date or dt.date.today())
    out_dir = args.out if args.out is not None else Path(settings.ingest.state_dir) / "letters" / str(month)
    zone = ZoneInfo(settings.ingest.timezone)
    renderer = Renderer()
    reader = Reader(settings.influx, timeout_s=60)  # the reader account (read_username): letters only read
    pdfs: list[bytes] = []
    read_s = render_s = 0.0
    try:
        figures = letter_figures(PortalData(reader, zone), found, month, zone)
        for name in file_names(found, month):
            moment = time.monotonic()
            one = next(figures)
            rendering = time.monotonic()
            pdf = renderer.pdf(wording.document(one, texts, date=date))
            read_s += rendering - moment
            render_s += time.monotonic() - rendering
            _write(out_dir / name, pdf)
            pdfs.append(pdf)
            print(out_dir / name)
    except InfluxUnavailable as exc:
        print(f"reallabor letters: InfluxDB at {settings.influx.url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except RenderError as exc:
        print(f"reallabor letters: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        reader.close()
    combined = out_dir / f"letters-{month}-all.pdf"
    _write(combined, merge(pdfs))
    print(combined)
    print(
        f"{len(pdfs)} letters for {wording.month_name(month)} in {time.monotonic() - started:.2f} s: "
        f"figures read in {read_s:.2f} s, rendered in {render_s:.2f} s "
        f"({1000 * render_s / len(pdfs):.0f} ms per letter); {2 * len(pdfs)} pages to print on both sides",
        file=sys.stderr,
    )
    return 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a date YYYY-MM-DD") from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    letters = sub.add_parser(
        "letters",
        help="the monthly letters for residents without a smartphone: one PDF per household and one to print",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    letters.add_argument("--config", type=Path, help="settings YAML (default: as the other commands find it)")
    letters.add_argument("--month", required=True, metavar="YYYY-MM", help="the month, e.g. 2026-11")
    letters.add_argument("--out", type=Path, help="directory (default: <ingest.state_dir>/letters/YYYY-MM)")
    letters.add_argument("--household", metavar="NAME", help="only this household (its registry name)")
    letters.add_argument(
        "--date", type=_date, metavar="YYYY-MM-DD", help="the date printed on the letters (default: today)"
    )
    letters.set_defaults(func=cmd_letters)
