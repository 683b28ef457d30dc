"""Everything stored about a household as one ZIP, streamed: memory holds one query's chunk, never the
whole household.

Inside the ZIP::

    household.json                    the registry's facts (ingest.privacy.registry.facts) and, per
                                      CSV file, its measurement, retention policy and row count
    influx/<policy>/<measurement>.csv one row per point: time (RFC 3339, UTC), the tags, the fields

Only points with the household's own tags are read (:class:`ingest.privacy.influx.Selector`); the registry
facts are gathered before the first byte is sent, so the stream needs no database session.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from ingest.privacy import registry
from ingest.privacy.influx import HouseholdData, Selector
from ingest.registry.models import Household

FORMAT = 1
FLUSH_BYTES = 64 * 1024


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
            document = {"format": FORMAT, **self.facts, "influx_files": files}
            archive.writestr("household.json", json.dumps(document, ensure_ascii=False, indent=2))
        yield sink.take()


def export_household(session: Session, household: Household) -> HouseholdExport:
    """The household's export: registry facts read now, InfluxDB points while streaming (``chunks``)."""
    return HouseholdExport(
        household_id=household.id,
        facts=registry.facts(session, household),
        selector=registry.selector(household),
    )
