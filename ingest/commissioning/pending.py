"""Pending quarantine entries of one device's topics, read from the ingester's quarantine file (read-only)."""

from __future__ import annotations

from pathlib import Path

from ingest.commissioning.report import QuarantineHit
from ingest.profiles.fill import filter_matches
from ingest.quarantine import Quarantine

SCAN_LIMIT = 500


def _like(topic_filter: str) -> str:
    # a coarse LIKE pattern ('_' and '%' in names match too much): exact matching follows in Python
    return topic_filter.replace("+", "%").replace("#", "%")


def pending_for(path: Path, filters: list[str], *, limit: int = 20) -> list[QuarantineHit]:
    """The newest pending entries whose topic matches one of ``filters``; [] without a quarantine file.

    Raises :class:`ingest.quarantine.QuarantineError` when the file exists but cannot be read.
    """
    if not path.exists():
        return []
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
    return [found[key] for key in sorted(found, reverse=True)[:limit]]
