"""The export's files: one CSV and one JSON per dataset and month, ``<out>/<id>/<id>_<YYYY-MM>.csv|.json``.

JSON: ``{"dataset": id, "month": "YYYY-MM", "columns": [header], "rows": [{column: value, ...,
"suppressed": [columns withheld]}]}``, a withheld or unmeasured value ``null``. CSV (UTF-8, comma, header
row = :attr:`Dataset.header`): the same rows and values, a withheld cell ``.``, an unmeasured one empty
(:data:`~ingest.opendata.datasets.SUPPRESSED_CSV`, :data:`~ingest.opendata.datasets.MISSING_CSV`). Numbers are
written the same way in both (Python's shortest round-trip form), so the two files say exactly the same.

Exporting days into a month whose files exist keeps the other days' rows (read back from the JSON file),
so the daily run and a backfill of a few days never lose the rest of the month; a day whose new rows are
none keeps its old ones (street readings past the raw retention are gone from InfluxDB, not from the
files). Each file is written to a temporary name and renamed: a reader (the web server, a harvester) sees
the old or the new file, never half of one. Read, merge and write happen under :func:`export_lock`, so two
exports at once (the daily run and a backfill) do not lose each other's days.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import fcntl
import io
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

from ingest.opendata.datasets import (
    DATASETS,
    MEDIA_TYPES,
    MISSING_CSV,
    SUPPRESSED_CSV,
    Dataset,
    ExportedFile,
)

Row = dict[str, object]
SUPPRESSED_KEY = "suppressed"
LOCK_NAME = ".export.lock"  # hidden: never served (serve.py looks up dataset file names only)


class ExportFileError(Exception):
    """An existing export file that cannot be read back, or a directory that cannot be written."""


class ExportBusy(ExportFileError):
    """Another export held the output directory's lock for longer than we waited."""


@contextmanager
def export_lock(out_dir: Path, timeout_s: float) -> Iterator[None]:
    """Hold ``<out_dir>/.export.lock`` exclusively (``flock``; released when the process ends, even
    killed). Waits up to ``timeout_s`` for another export to finish, then :class:`ExportBusy`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            if time.monotonic() >= deadline:
                raise ExportBusy(
                    f"another export is writing {out_dir} (it holds {path}); waited {timeout_s:.0f} s, "
                    "try again when it has finished"
                )
            time.sleep(0.05)
        yield
    finally:
        os.close(handle)  # releases the lock


def row_day(row: Row) -> dt.date:
    """The local date of a row (its ``start``'s date as written, local time)."""
    return dt.date.fromisoformat(str(row["start"])[:10])


def _csv_cell(value: object, withheld: bool) -> str:
    if withheld:
        return SUPPRESSED_CSV
    if value is None:
        return MISSING_CSV
    if isinstance(value, float | int) and not isinstance(value, bool):
        return json.dumps(value)
    return str(value)


def render_csv(dataset: Dataset, rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(dataset.header)
    for row in rows:
        withheld = set(_suppressed(row))
        writer.writerow([_csv_cell(row.get(name), name in withheld) for name in dataset.header])
    return buffer.getvalue()


def render_json(dataset: Dataset, month: str, rows: Sequence[Row]) -> str:
    body = {
        "dataset": dataset.id,
        "month": month,
        "columns": list(dataset.header),
        "rows": [
            {**{name: row.get(name) for name in dataset.header}, SUPPRESSED_KEY: _suppressed(row)}
            for row in rows
        ],
    }
    return json.dumps(body, ensure_ascii=False, indent=1) + "\n"


def _suppressed(row: Row) -> list[str]:
    value = row.get(SUPPRESSED_KEY) or []
    return [str(name) for name in value] if isinstance(value, list) else []


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # public files
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_rows(path: Path) -> list[Row]:
    """The rows of an export JSON file (none when it does not exist)."""
    if not path.exists():
        return []
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        rows = body["rows"]
        if not isinstance(rows, list):
            raise TypeError("rows is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExportFileError(
            f"{path}: not an export file ({type(exc).__name__}: {exc}); move it away"
        ) from None
    return [row for row in rows if isinstance(row, dict)]


def _sort_key(row: Row) -> tuple[dt.datetime, str]:
    label = str(row.get("building") or row.get("station") or "")
    return dt.datetime.fromisoformat(str(row["start"])), label


def write_month(
    out_dir: Path, dataset: Dataset, month: str, rows: Iterable[Row], *, days: set[dt.date]
) -> list[Path]:
    """The month's files with ``rows`` for ``days`` and the existing rows of the other days; the paths
    written (none when the month has no row at all). A day of ``days`` without any new row keeps its
    existing rows: a day's published rows are never replaced by nothing. Call under :func:`export_lock`."""
    json_path = out_dir / dataset.relative_path(month, "json")
    new = list(rows)
    replaced = days & {row_day(row) for row in new}
    kept = [row for row in read_rows(json_path) if row_day(row) not in replaced]
    merged = sorted([*kept, *new], key=_sort_key)
    if not merged:
        return []
    csv_path = out_dir / dataset.relative_path(month, "csv")
    _write_atomic(csv_path, render_csv(dataset, merged))
    _write_atomic(json_path, render_json(dataset, month, merged))
    return [csv_path, json_path]


def days_in(out_dir: Path, dataset: Dataset, month: str) -> set[dt.date]:
    """The local days that have rows in the dataset's month file (none when it does not exist)."""
    return {row_day(row) for row in read_rows(out_dir / dataset.relative_path(month, "json"))}


def _period(dataset: Dataset, rows: Sequence[Row], tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    starts = sorted(dt.datetime.fromisoformat(str(row["start"])).astimezone(tz) for row in rows)
    last = starts[-1]
    if dataset.resolution == dt.timedelta(days=1):  # the next local midnight (23 or 25 hours on DST days)
        end = dt.datetime.combine(last.date() + dt.timedelta(days=1), dt.time(), tz)
    else:
        end = last + dataset.resolution
    return starts[0], end


def exported_files(out_dir: Path, tz: ZoneInfo) -> list[ExportedFile]:
    """Every dataset month present in ``out_dir`` (both files), with the period its rows cover."""
    out: list[ExportedFile] = []
    for dataset in DATASETS:
        folder = out_dir / dataset.id
        if not folder.is_dir():
            continue
        for json_path in sorted(folder.glob(f"{dataset.id}_*.json")):
            month = json_path.stem.removeprefix(f"{dataset.id}_")
            csv_path = json_path.with_suffix(".csv")
            rows = read_rows(json_path)
            if not rows or not csv_path.exists():
                continue
            start, end = _period(dataset, rows, tz)
            for path, media in ((csv_path, MEDIA_TYPES["csv"]), (json_path, MEDIA_TYPES["json"])):
                out.append(ExportedFile(dataset.id, month, path, media, start, end))
    return out
