"""Enrichment: tag each reading with the household and building its device was assigned to at the
reading's time, from an in-memory registry snapshot (no database query per message).

The snapshot is reloaded in a worker thread every ``registry.refresh_s``; lookups bisect over the
device's assignment history, so a meter swap or a move mid-day tags readings before and after it right.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ingest.decoders.gateway_health import MEASUREMENT as GATEWAY_HEALTH
from ingest.readings import DecodeRejected, Reading
from ingest.timeparse import datetime_to_ns

UNREGISTERED_PORT = "unregistered"  # the port tag of a gateway's health for a port no registered meter has

if TYPE_CHECKING:
    from ingest.registry.snapshot import RegistrySnapshot

log = logging.getLogger(__name__)

UnknownPolicy = Literal["quarantine", "accept"]


@dataclass(frozen=True, slots=True)
class _History:
    starts: tuple[int, ...]  # valid_from in ns, ascending
    ends: tuple[int | None, ...]  # valid_to in ns (None: open)
    tags: tuple[dict[str, str], ...]

    def tags_at(self, time_ns: int) -> dict[str, str] | None:
        index = bisect.bisect_right(self.starts, time_ns) - 1
        if index < 0:
            return None
        end = self.ends[index]
        return self.tags[index] if end is None or time_ns < end else None


class Enricher:
    def __init__(self, snapshot: RegistrySnapshot, *, unknown: UnknownPolicy = "quarantine") -> None:
        self.unknown = unknown
        self._devices: dict[tuple[str, str], _History] = {}
        for key, entry in snapshot.devices.items():
            tags = []
            for span in entry.spans:
                span_tags = {"building": span.building}
                if span.household is not None:
                    span_tags["household"] = span.household
                tags.append(span_tags)
            self._devices[key] = _History(
                starts=tuple(datetime_to_ns(s.valid_from) for s in entry.spans),
                ends=tuple(None if s.valid_to is None else datetime_to_ns(s.valid_to) for s in entry.spans),
                tags=tuple(tags),
            )

    def __len__(self) -> int:
        return len(self._devices)

    def __contains__(self, key: object) -> bool:
        return key in self._devices

    def keys(self) -> frozenset[tuple[str, str]]:
        """The registered devices as (gateway, native id)."""
        return frozenset(self._devices)

    def enrich(self, readings: list[Reading]) -> None:
        """Add household/building tags in place; DecodeRejected("unknown_device") for an unregistered one."""
        for reading in readings:
            if reading.measurement == GATEWAY_HEALTH:
                # the gateway's own: its broker account, bound to lab/<gateway>/, registers it; a serial
                # port is a registered meter of that gateway, or "unregistered" (bounded series: a gateway
                # cannot make a new InfluxDB series per made-up port name)
                port = reading.tags.get("port")
                if port is not None and (reading.tags.get("gateway", ""), port) not in self._devices:
                    reading.tags["port"] = UNREGISTERED_PORT
                continue
            tags = reading.tags
            key = (tags.get("gateway", ""), tags.get("device", ""))
            history = self._devices.get(key)
            if history is None:
                if self.unknown == "quarantine":
                    rejected = DecodeRejected(
                        "unknown_device", f"device {key[1]!r} behind gateway {key[0]!r} is not registered"
                    )
                    rejected.key = key
                    raise rejected
                tags["unregistered"] = "true"
                continue
            found = history.tags_at(reading.time_ns)
            if found is not None:
                tags.update(found)


class RegistryLink:
    """The ingester's door to the registry database (blocking: call it from a worker thread)."""

    def __init__(self, url: str) -> None:
        from ingest.registry.db import make_engine, session_factory

        self._engine = make_engine(url)
        self._sessions = session_factory(self._engine)

    def load(self, *, unknown: UnknownPolicy) -> Enricher:
        from ingest.registry.snapshot import load_snapshot

        with self._sessions() as session:
            return Enricher(load_snapshot(session), unknown=unknown)

    def record_last_seen(self, seen: dict[tuple[str, str], int]) -> int:
        """Move gateways' and devices' ``last_seen`` to the newest receive time heard (ns)."""
        from ingest.registry.fleet_status import record_last_seen

        sightings = [
            (gateway, device, dt.datetime.fromtimestamp(received_ns / 1e9, dt.UTC))
            for (gateway, device), received_ns in seen.items()
        ]
        with self._sessions() as session:
            return record_last_seen(session, sightings)

    def close(self) -> None:
        self._engine.dispose()
