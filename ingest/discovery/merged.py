"""Several ingester instances' quarantines read as one, for the discovery list.

With several ingesters each keeps its own quarantine file (``<state_dir>/instance-K/``, found by
:func:`ingest.commissioning.pending.quarantine_files`), and the broker deals a device's messages to any of
them. :class:`MergedQuarantine` answers the read queries of :mod:`ingest.discovery.listing` over all files
as one quarantine would: per device (or topic) the pending entries are summed, the first receive time is
the earliest of the files', the last the latest, and the lists are ranked and cut per gateway only after
the merge. Each file is summarised by SQL (one query per reason and file); the merge is in Python, in time
linear in the distinct devices and topics pending.

Entry ids are counted per file, so the ids in the summaries it returns are its own handles, which
:meth:`MergedQuarantine.get` resolves to the entry in its file. With one file the listing reads the
:class:`~ingest.quarantine.Quarantine` itself (:func:`opened`), so its answers are exactly those of before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from ingest.commissioning.pending import quarantine_files
from ingest.quarantine import (
    DeviceKey,
    DeviceSummary,
    GatewayPage,
    Quarantine,
    QuarantineRecord,
    TopicSummary,
)

ALL = 1 << 62  # "no limit" for the per-file summaries: the merge needs every device and topic


class QuarantineView(Protocol):
    """What the discovery list reads of a quarantine: one file (:class:`Quarantine`) or several."""

    def get(self, entry_id: int) -> QuarantineRecord | None: ...

    def pending_by_device(
        self, reasons: Iterable[str], *, key: DeviceKey | None = None, limit: int = 1000
    ) -> list[DeviceSummary]: ...

    def pending_of_device(
        self, key: DeviceKey, *, reasons: Iterable[str], after_id: int = 0, limit: int = 500
    ) -> list[QuarantineRecord]: ...

    def pending_devices_per_gateway(
        self, reason: str, *, per_gateway: int, gateway: str | None = None, exclude: Iterable[DeviceKey] = ()
    ) -> dict[str, GatewayPage]: ...

    def pending_topics_per_gateway(
        self, reason: str, *, lead: str, per_gateway: int, gateway: str | None = None
    ) -> dict[str, GatewayPage]: ...

    def pending_keys_among(self, reason: str, keys: Iterable[DeviceKey]) -> set[DeviceKey]: ...


class _Handle(NamedTuple):
    quarantine: Quarantine
    id: int


class MergedQuarantine:
    """The pending entries of several quarantine files, read as one (see the module docstring)."""

    def __init__(self, quarantines: Sequence[Quarantine]) -> None:
        self._quarantines = list(quarantines)
        self._handles: list[_Handle] = []

    def _handle(self, quarantine: Quarantine, entry_id: int) -> int:
        self._handles.append(_Handle(quarantine, entry_id))
        return len(self._handles)  # 1-based, as SQLite's ids are

    def get(self, entry_id: int) -> QuarantineRecord | None:
        """The entry behind a handle of this view's summaries (None for any other number)."""
        if not 1 <= entry_id <= len(self._handles):
            return None
        quarantine, own_id = self._handles[entry_id - 1]
        return quarantine.get(own_id)

    def _devices(self, reasons: list[str], key: DeviceKey | None) -> dict[DeviceKey, DeviceSummary]:
        merged: dict[DeviceKey, DeviceSummary] = {}
        for quarantine in self._quarantines:
            for s in quarantine.pending_by_device(reasons, key=key, limit=ALL):
                newest = self._handle(quarantine, s.newest_id)
                oldest = self._handle(quarantine, s.oldest_id)
                mine = DeviceSummary(s.gateway, s.device, s.messages, s.first_ns, s.last_ns, newest, oldest)
                known = merged.get((s.gateway, s.device))
                merged[(s.gateway, s.device)] = mine if known is None else _joined_devices(known, mine)
        return merged

    def pending_by_device(
        self, reasons: Iterable[str], *, key: DeviceKey | None = None, limit: int = 1000
    ) -> list[DeviceSummary]:
        """As :meth:`Quarantine.pending_by_device`, over every file."""
        merged = self._devices(list(reasons), key)
        return sorted(merged.values(), key=_recent)[: max(0, limit)]

    def pending_of_device(
        self, key: DeviceKey, *, reasons: Iterable[str], after_id: int = 0, limit: int = 500
    ) -> list[QuarantineRecord]:
        """The device's pending entries with ``reasons``, the earliest received first, from every file
        (``after_id`` is not a handle here: only 0, the first page, is meaningful)."""
        if after_id:
            raise ValueError("MergedQuarantine.pending_of_device reads the first page only (after_id 0)")
        wanted = list(reasons)
        found = [r for q in self._quarantines for r in q.pending_of_device(key, reasons=wanted, limit=limit)]
        return sorted(found, key=lambda r: r.received_ns)[: max(0, limit)]

    def pending_devices_per_gateway(
        self, reason: str, *, per_gateway: int, gateway: str | None = None, exclude: Iterable[DeviceKey] = ()
    ) -> dict[str, GatewayPage]:
        """As :meth:`Quarantine.pending_devices_per_gateway`: ranked and counted after the merge."""
        left_out = set(exclude)
        kept = [
            s
            for key, s in self._devices([reason], None).items()
            if key not in left_out and (gateway is None or s.gateway == gateway)
        ]
        return _paged(((s.gateway, s) for s in kept), per_gateway)

    def pending_topics_per_gateway(
        self, reason: str, *, lead: str, per_gateway: int, gateway: str | None = None
    ) -> dict[str, GatewayPage]:
        """As :meth:`Quarantine.pending_topics_per_gateway`: ranked and counted after the merge."""
        merged: dict[str, TopicSummary] = {}
        for quarantine in self._quarantines:
            for s in quarantine.pending_by_topic(reason, limit=ALL):
                mine = TopicSummary(
                    s.topic, s.messages, s.first_ns, s.last_ns, self._handle(quarantine, s.newest_id)
                )
                known = merged.get(s.topic)
                merged[s.topic] = mine if known is None else _joined_topics(known, mine)
        placed = (
            (name, s)
            for s in merged.values()
            if (name := _gateway_of(s.topic, lead)) is not None and (gateway is None or name == gateway)
        )
        return _paged(placed, per_gateway)

    def pending_keys_among(self, reason: str, keys: Iterable[DeviceKey]) -> set[DeviceKey]:
        wanted = list(keys)
        return set().union(*(q.pending_keys_among(reason, wanted) for q in self._quarantines))


def _recent(summary: DeviceSummary | TopicSummary) -> tuple[int, int]:
    """The most recently heard first (ties: the newest entry first, as the SQL ranks them)."""
    return (-summary.last_ns, -summary.newest_id)


def _joined_devices(a: DeviceSummary, b: DeviceSummary) -> DeviceSummary:
    newest = a.newest_id if a.last_ns >= b.last_ns else b.newest_id
    oldest = a.oldest_id if a.first_ns <= b.first_ns else b.oldest_id
    return DeviceSummary(
        a.gateway,
        a.device,
        a.messages + b.messages,
        min(a.first_ns, b.first_ns),
        max(a.last_ns, b.last_ns),
        newest,
        oldest,
    )


def _joined_topics(a: TopicSummary, b: TopicSummary) -> TopicSummary:
    newest = a.newest_id if a.last_ns >= b.last_ns else b.newest_id
    return TopicSummary(
        a.topic, a.messages + b.messages, min(a.first_ns, b.first_ns), max(a.last_ns, b.last_ns), newest
    )


def _gateway_of(topic: str, lead: str) -> str | None:
    """The topic's level after ``lead`` (topic prefix and ``lab/``) when a level follows it, as the SQL of
    :meth:`Quarantine.pending_topics_per_gateway` places it."""
    if not topic.startswith(lead):
        return None
    name, slash, _rest = topic[len(lead) :].partition("/")
    return name if name and slash else None


def _paged(
    summaries: Iterable[tuple[str, DeviceSummary] | tuple[str, TopicSummary]], per_gateway: int
) -> dict[str, GatewayPage]:
    grouped: dict[str, list[DeviceSummary | TopicSummary]] = {}
    for name, summary in summaries:
        grouped.setdefault(name, []).append(summary)
    return {
        name: GatewayPage(sorted(items, key=_recent)[: max(0, per_gateway)], len(items))
        for name, items in sorted(grouped.items())
    }


@contextlib.contextmanager
def opened(quarantine_path: Path | None) -> Iterator[QuarantineView | None]:
    """The quarantine at ``quarantine_path`` (``<state_dir>/quarantine.sqlite3``) and those of the
    ingester instances beside it, read-only, as one view; None when there is none.

    Raises :class:`ingest.quarantine.QuarantineError` when a file exists but cannot be read.
    """
    files = quarantine_files(quarantine_path) if quarantine_path is not None else []
    with contextlib.ExitStack() as stack:
        each = [stack.enter_context(Quarantine(path, read_only=True)) for path in files]
        if not each:
            yield None
        elif len(each) == 1:
            yield each[0]
        else:
            yield MergedQuarantine(each)
