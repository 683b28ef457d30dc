"""A household's messages in the ingester's quarantine: found in every instance's file, erased.

The quarantine keeps rejected messages with their exact payload (a meter's raw readings), and with
several ingester instances each keeps its own file (``<state_dir>/instance-K/``, found beside
``<state_dir>/quarantine.sqlite3`` by :func:`ingest.commissioning.pending.quarantine_files`, the helper the
commissioning check and discovery use). A household's entries, pending or replayed, in every file:

- a message of one of its devices received while the device was assigned to it (``[valid_from,
  valid_to)``): the entry's device key is the device's (``unknown_device``, ``announcement``), or its
  topic names the device at a level below ``lab/<gateway>/`` (any other reason, e.g. an implausible
  value);
- a line InfluxDB refused (``influx_rejected``) that carries the household's two tags.

Found through the quarantine's own reader (:class:`ingest.quarantine.Quarantine`, read-only); erased by id
in one transaction per file with ``secure_delete`` (the rows' bytes are overwritten, not only unlinked)
and a WAL checkpoint, so the payloads leave the files. The ingester may be running: SQLite's locking and
``busy_timeout`` order the erasure with its writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.commissioning.pending import quarantine_files
from ingest.lineprotocol import escape_tag_value
from ingest.privacy.influx import Selector
from ingest.quarantine import Quarantine, QuarantineRecord
from ingest.readings import DecodeRejected
from ingest.registry.models import Assignment, Household
from ingest.timeparse import datetime_to_ns

PAGE = 1000  # entries read at a time


@dataclass(frozen=True)
class Window:
    """One of the household's devices while it was assigned to the household."""

    gateway: str
    device: str
    from_ns: int
    to_ns: int | None  # None: still assigned

    def holds(self, received_ns: int) -> bool:
        return self.from_ns <= received_ns and (self.to_ns is None or received_ns < self.to_ns)


def windows(session: Session, household: Household) -> list[Window]:
    """The household's assignments as device windows (read them before the assignments are removed)."""
    assignments = session.scalars(select(Assignment).where(Assignment.household_id == household.id)).unique()
    return [
        Window(
            gateway=a.device.gateway.name,
            device=a.device.native_id,
            from_ns=datetime_to_ns(a.valid_from),
            to_ns=datetime_to_ns(a.valid_to) if a.valid_to is not None else None,
        )
        for a in assignments
    ]


def closed(found: list[Window], at: dt.datetime) -> list[Window]:
    """The windows as they are once the assignments end at ``at`` (the open ones end there)."""
    end = datetime_to_ns(at)
    return [w if w.to_ns is not None else Window(w.gateway, w.device, w.from_ns, end) for w in found]


def _names_device(topic: str, gateway: str, device: str) -> bool:
    levels = topic.split("/")
    return any(
        levels[i] == "lab" and levels[i + 1] == gateway and device in levels[i + 2 :]
        for i in range(len(levels) - 2)
    )


def _unescaped_split(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _line_tags(line: bytes) -> dict[str, str]:
    """A line protocol line's tags, keys and values as written (escaped)."""
    head = _unescaped_split(line.decode("utf-8", "replace"), " ")[0]
    pairs = (pair.partition("=") for pair in _unescaped_split(head, ",")[1:])
    return {key: value for key, eq, value in pairs if eq}


def _tags(selector: Selector) -> dict[str, str] | None:
    """The household's two tags as a line carries them; None: no line can carry them (a name the
    enricher cannot write)."""
    try:
        return {
            "household": escape_tag_value(selector.household),
            "building": escape_tag_value(selector.building),
        }
    except DecodeRejected:
        return None


def _is_households(record: QuarantineRecord, found: list[Window], tags: dict[str, str] | None) -> bool:
    if record.reason == "influx_rejected":
        if tags is None:
            return False
        carried = _line_tags(record.payload)
        return all(carried.get(key) == value for key, value in tags.items())
    for window in found:
        if not window.holds(record.received_ns):
            continue
        if (record.gateway, record.device) == (window.gateway, window.device):
            return True
        if _names_device(record.topic, window.gateway, window.device):
            return True
    return False


def _pages(quarantine: Quarantine, **where: Any) -> Iterator[QuarantineRecord]:
    offset = 0
    while page := quarantine.list(**where, limit=PAGE, offset=offset):
        offset += len(page)
        yield from page


def _entries(quarantine: Quarantine, found: list[Window], selector: Selector) -> Iterator[QuarantineRecord]:
    """The household's entries in one file: the refused lines with its tags, then per gateway of its
    devices the entries whose topic lies below ``lab/<gateway>/`` (a coarse LIKE: ``_`` and ``%`` in a
    name match more, the exact check follows) since the first of their windows; each once."""
    tags = _tags(selector)
    if tags is not None:
        for record in _pages(quarantine, reason="influx_rejected"):
            if _is_households(record, found, tags):
                yield record
    seen: set[int] = set()
    for gateway in sorted({w.gateway for w in found}):
        since_ns = min(w.from_ns for w in found if w.gateway == gateway)
        for record in _pages(quarantine, topic_like=f"%lab/{gateway}/%", since_ns=since_ns):
            if record.reason == "influx_rejected" or record.id in seen:
                continue
            if _is_households(record, found, tags):
                seen.add(record.id)
                yield record


def files(quarantine_path: Path | None) -> list[Path]:
    """The quarantine files there are: ``quarantine_path`` and every instance's beside it."""
    return quarantine_files(quarantine_path) if quarantine_path is not None else []


def _label(path: Path, quarantine_path: Path) -> str:
    """A file named relative to the state directory: ``quarantine.sqlite3``, ``instance-1/...``."""
    return path.relative_to(quarantine_path.parent).as_posix()


def entries(
    quarantine_path: Path | None, found: list[Window], selector: Selector
) -> Iterator[tuple[str, QuarantineRecord]]:
    """The household's entries, file by file (named as :func:`erase` names them): in each the refused
    lines, then the devices' messages, by id; read :data:`PAGE` entries at a time (a broken meter may
    have left many)."""
    for path in files(quarantine_path):
        assert quarantine_path is not None
        with Quarantine(path, read_only=True) as quarantine:
            for record in _entries(quarantine, found, selector):
                yield _label(path, quarantine_path), record


def count(quarantine_path: Path | None, found: list[Window], selector: Selector) -> int:
    """How many of the household's entries the quarantine files hold (every instance's)."""
    total = 0
    for path in files(quarantine_path):
        with Quarantine(path, read_only=True) as quarantine:
            total += sum(1 for _ in _entries(quarantine, found, selector))
    return total


def erase(quarantine_path: Path | None, found: list[Window], selector: Selector) -> dict[str, int]:
    """Erase the household's entries from every quarantine file; how many, per file (named relative to
    the state directory: ``quarantine.sqlite3``, ``instance-1/quarantine.sqlite3``).

    Raises :class:`QuarantineError` when a file cannot be read or written (the files before it are
    erased; running it again erases the rest).
    """
    erased: dict[str, int] = {}
    for path in files(quarantine_path):
        assert quarantine_path is not None
        with Quarantine(path, read_only=True) as quarantine:
            ids = [record.id for record in _entries(quarantine, found, selector)]
        erased[_label(path, quarantine_path)] = _delete(path, ids)
    return erased


def _delete(path: Path, ids: list[int]) -> int:
    """Delete the entries ``ids`` for good (:meth:`ingest.quarantine.Quarantine.erase`); opening the file for
    writing also upgrades an old one, as the CLI's replay does."""
    if not ids:
        return 0
    with Quarantine(path) as quarantine:
        return quarantine.erase(ids)
