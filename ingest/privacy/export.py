"""Everything stored about a household as one ZIP, streamed: memory holds one query's chunk, never the
whole household.

Inside the ZIP::

    household.json                    the registry's facts (ingest.privacy.registry.facts) and, per
                                      CSV file, its measurement, retention policy and row count
    influx/<policy>/<measurement>.csv one row per point: time (RFC 3339, UTC), the tags, the fields
    quarantine.csv                    the household's messages in the ingester's quarantine (every
                                      instance's file, :mod:`ingest.privacy.quarantine`): file, id,
                                      received, reason, detail, status, topic, the exact payload (as text
                                      when it is UTF-8, else base64); only when there are any

Only points with the household's own tags are read (:class:`ingest.privacy.influx.Selector`); the registry
facts and the household's device windows are gathered before the first byte is sent, so the stream needs
no database session.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ingest.privacy import quarantine as quarantined
from ingest.privacy import registry
from ingest.privacy.influx import HouseholdData, Selector
from ingest.quarantine import QuarantineRecord
from ingest.registry.models import Household

FORMAT = 1
FLUSH_BYTES = 64 * 1024
QUARANTINE_CSV = "quarantine.csv"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a device's payload is not to run in a spreadsheet
QUARANTINE_HEADER = (
    "file",
    "id",
    "received",
    "reason",
    "detail",
    "status",
    "topic",
    "payload_encoding",
    "payload",
)


class _Sink:
    """A write-only, unseekable file for :class:`zipfile.ZipFile`: what is written waits in ``parts``
    until the stream takes it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return out


@dataclass(frozen=True)
class HouseholdExport:
    """A household's export, ready to stream (:meth:`chunks`)."""

    household_id: int
    facts: dict[str, Any]
    selector: Selector
    quarantine: Path | None = None  # <state_dir>/quarantine.sqlite3; every instance's beside it is read
    windows: list[quarantined.Window] = field(default_factory=list)  # its devices while assigned to it

    @property
    def filename(self) -> str:
        return f"household-{self.household_id}-export.zip"

    def chunks(self, data: HouseholdData) -> Iterator[bytes]:
        """The ZIP's bytes, a piece at a time (about :data:`FLUSH_BYTES`), reading from ``data``."""
        sink = _Sink()
        files: list[dict[str, Any]] = []
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(data.counts(self.selector)):
                policy, _, measurement = name.partition(".")
                path = f"influx/{policy}/{measurement}.csv"
                columns = data.columns(policy, measurement)
                rows = 0
                with (
                    archive.open(path, "w") as raw,
                    io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
                ):
                    writer = csv.writer(text)
                    writer.writerow(columns.header)
                    for row in data.rows(self.selector, policy, measurement, columns):
                        writer.writerow(["" if value is None else value for value in row])
                        rows += 1
                        if sink.size >= FLUSH_BYTES:
                            yield sink.take()
                files.append(
                    {"file": path, "retention_policy": policy, "measurement": measurement, "rows": rows}
                )
                yield sink.take()
            held_rows = self._quarantine_rows()
            first = next(held_rows, None)
            held = 0
            if first is not None:  # the file only when there is something in it
                with (
                    archive.open(QUARANTINE_CSV, "w") as raw,
                    io.TextIOWrapper(raw, encoding="utf-8", newline="") as text,
                ):
                    writer = csv.writer(text)
                    writer.writerow(QUARANTINE_HEADER)
                    for row in itertools.chain([first], held_rows):
                        writer.writerow(row)
                        held += 1
                        if sink.size >= FLUSH_BYTES:
                            yield sink.take()
                yield sink.take()
            document = {"format": FORMAT, **self.facts, "influx_files": files, "quarantine_messages": held}
            archive.writestr("household.json", json.dumps(document, ensure_ascii=False, indent=2))
        yield sink.take()

    def _quarantine_rows(self) -> Iterator[list[str | int]]:
        for file, record in quarantined.entries(self.quarantine, self.windows, self.selector):
            yield [
                file,
                record.id,
                _received(record),
                record.reason,
                record.detail,
                record.status,
                record.topic,
                *_payload(record),
            ]


def _received(record: QuarantineRecord) -> str:
    return datetime.fromtimestamp(record.received_ns / 1e9, UTC).isoformat(timespec="microseconds")


def _payload(record: QuarantineRecord) -> tuple[str, str]:
    """(encoding, payload): the text when it is UTF-8 without control characters a CSV cell could hide
    and does not start like a spreadsheet formula, else base64 (exact)."""
    try:
        text = record.payload.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(record.payload).decode("ascii")
    if not text.startswith(FORMULA_STARTS) and all(c.isprintable() or c in "\t\r\n" for c in text):
        return "utf-8", text
    return "base64", base64.b64encode(record.payload).decode("ascii")


def export_household(
    session: Session, household: Household, *, quarantine: Path | None = None
) -> HouseholdExport:
    """The household's export: registry facts read now, InfluxDB points and its quarantined messages
    (``quarantine``: the ingester's ``<state_dir>/quarantine.sqlite3``, every instance's beside it) while
    streaming (``chunks``)."""
    return HouseholdExport(
        household_id=household.id,
        facts=registry.facts(session, household),
        selector=registry.selector(household),
        quarantine=quarantine,
        windows=quarantined.windows(session, household),
    )
