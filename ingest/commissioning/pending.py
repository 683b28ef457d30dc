"""Pending quarantine entries of one device's topics, read from the ingester's quarantine files (read-only).

With several ingester instances each keeps its own quarantine under ``<state_dir>/instance-K/``; a device's
messages go to any of them, so every one is read (:func:`quarantine_files`).
"""

from __future__ import annotations

from pathlib import Path

from ingest.commissioning.report import QuarantineHit
from ingest.config import INSTANCE_DIR
from ingest.profiles.fill import filter_matches
from ingest.quarantine import Quarantine

SCAN_LIMIT = 500


def _like(topic_filter: str) -> str:
    # a coarse LIKE pattern ('_' and '%' in names match too much): exact matching follows in Python
    return topic_filter.replace("+", "%").replace("#", "%")


def quarantine_files(path: Path) -> list[Path]:
    """``path`` (``<state_dir>/quarantine.sqlite3``) and its namesakes in the instances' directories
    (``<state_dir>/instance-K/``), those that exist."""
    prefix = INSTANCE_DIR.format(instance="")
    instances = [
        candidate
        for candidate in sorted(path.parent.glob(f"{prefix}*/{path.name}"))
        if candidate.parent.name.removeprefix(prefix).isdigit()
    ]
    return [file for file in (path, *instances) if file.is_file()]


def pending_for(path: Path, filters: list[str], *, limit: int = 20) -> list[QuarantineHit]:
    """The newest pending entries whose topic matches one of ``filters``, from every quarantine file of
    :func:`quarantine_files`; [] without one.

    Raises :class:`ingest.quarantine.QuarantineError` when a file exists but cannot be read.
    """
    files = quarantine_files(path)
    found = [hit for file in files for hit in _pending_in(file, filters)]
    if len(files) == 1:  # newest first: by id in one file; across several (ids each their own) by time
        found.sort(key=lambda hit: hit.id, reverse=True)
    else:
        found.sort(key=lambda hit: hit.received_ns, reverse=True)
    return found[:limit]


def _pending_in(path: Path, filters: list[str]) -> list[QuarantineHit]:
    found: dict[int, QuarantineHit] = {}
    with Quarantine(path, read_only=True) as quarantine:
        for topic_filter in filters:
            records = quarantine.list(
                topic_like=_like(topic_filter), status="pending", newest_first=True, limit=SCAN_LIMIT
            )
            for record in records:
                if filter_matches(topic_filter, record.topic):
                    found[record.id] = QuarantineHit(
                        id=record.id,
                        topic=record.topic,
                        reason=record.reason,
                        detail=record.detail,
                        received_ns=record.received_ns,
                    )
    return list(found.values())
