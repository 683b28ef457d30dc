"""Replay quarantined messages through the current profiles; those that now decode are written.

Used after a profile fix: ``reallabor quarantine replay [--reason R] [--id N ...]``. Messages that now
decode are written to InfluxDB and marked replayed (kept, never deleted); the rest stay pending with their
original reason. Lines InfluxDB refused (``influx_rejected``) are written again as they are.

Counted once: an id named twice is replayed once, and ``replayed`` counts the entries this run moved from
pending to replayed (the ingester replays a newly registered device's entries meanwhile; a message stored
twice by a crash is one entry since quarantine schema 3).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

from ingest.config import Settings
from ingest.decode import MessageDecoder
from ingest.influx import InfluxClient, InfluxError
from ingest.lineprotocol import reading_line
from ingest.profiles import load_profiles
from ingest.quarantine import Quarantine, QuarantineRecord
from ingest.readings import DecodeRejected

log = logging.getLogger(__name__)
PAGE = 500


@dataclass
class ReplayReport:
    replayed: int = 0
    still_rejected: Counter[str] = field(default_factory=Counter)
    points: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"replayed": self.replayed, "still_rejected": dict(self.still_rejected), "points": self.points}


def _lines(decoder: MessageDecoder, record: QuarantineRecord) -> list[str]:
    """The lines a quarantined message gives now; raises DecodeRejected if it still does not decode."""
    if record.reason == "influx_rejected":
        return [record.payload.decode()]
    readings = decoder.decode(record.topic, record.payload, record.received_ns)
    return [line for line in map(reading_line, readings) if line]


async def replay(
    settings: Settings, quarantine: Quarantine, *, reason: str | None = None, ids: list[int] | None = None
) -> ReplayReport:
    profiles = load_profiles(settings.ingest.profiles_dir, tz=settings.ingest.timezone)
    decoder = MessageDecoder(
        profiles, topic_prefix=settings.mqtt.topic_prefix, max_payload_bytes=settings.ingest.max_payload_bytes
    )
    if ids:
        wanted = (quarantine.get(i) for i in dict.fromkeys(ids))
        records = [r for r in wanted if r is not None and r.status == "pending"]
    else:
        records = []
        offset = 0
        while page := quarantine.list(reason=reason, status="pending", limit=PAGE, offset=offset):
            records.extend(page)
            offset += PAGE
    report = ReplayReport()
    influx = InfluxClient(settings.influx)
    try:
        await influx.ensure_database()
        for start in range(0, len(records), PAGE):
            lines: list[str] = []
            done: list[int] = []
            for record in records[start : start + PAGE]:
                try:
                    lines.extend(_lines(decoder, record))
                except DecodeRejected as exc:
                    report.still_rejected[exc.reason] += 1
                    continue
                except UnicodeDecodeError:
                    report.still_rejected[record.reason] += 1
                    continue
                done.append(record.id)
            if lines:
                await influx.write(("\n".join(lines) + "\n").encode())
            report.replayed += quarantine.mark_replayed(done)
            report.points += len(lines)
    finally:
        await influx.close()
    return report


def run_replay(
    settings: Settings, quarantine: Quarantine, *, reason: str | None, ids: list[int] | None
) -> ReplayReport:
    try:
        return asyncio.run(replay(settings, quarantine, reason=reason, ids=ids))
    except InfluxError as exc:
        raise SystemExit(f"reallabor: replay stopped, InfluxDB refused: {exc}") from exc
