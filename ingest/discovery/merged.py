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
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

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


@dataclass(slots=True)
class _Merged:
    """One device's (or topic's) pending entries over the files so far: its newest and oldest entry as
    the file (an index into the view's files) and that file's id; plain ints, as there are many."""

    gateway: str  # for a topic: its gateway, or "" before it is placed
    name: str  # the device's native id, or the topic
    messages: int
    first_ns: int
    last_ns: int
    newest_file: int
    newest_id: int
    oldest_file: int
    oldest_id: int

    def join(self, file: int, messages: int, first_ns: int, last_ns: int, newest: int, oldest: int) -> None:
        self.messages += messages
        if last_ns > self.last_ns:
            self.last_ns, self.newest_file, self.newest_id = last_ns, file, newest
        if first_ns < self.first_ns:
            self.first_ns, self.oldest_file, self.oldest_id = first_ns, file, oldest


class MergedQuarantine:
    """The pending entries of several quarantine files, read as one (see the module docstring)."""

    def __init__(self, quarantines: Sequence[Quarantine]) -> None:
        self._quarantines = list(quarantines)
        self._handles: list[_Handle] = []

    def _handle(self, file: int, entry_id: int) -> int:
        """A number for the entry ``entry_id`` of file ``file`` that :meth:`get` resolves (1-based, as
        SQLite's ids are)."""
        self._handles.append(_Handle(self._quarantines[file], entry_id))
        return len(self._handles)

    def get(self, entry_id: int) -> QuarantineRecord | None:
        """The entry behind a handle of this view's summaries (None for any other number)."""
        if not 1 <= entry_id <= len(self._handles):
            return None
        quarantine, own_id = self._handles[entry_id - 1]
        return quarantine.get(own_id)

    def _devices(
        self, reasons: list[str], key: DeviceKey | None, *, gateway: str | None = None
    ) -> dict[DeviceKey, _Merged]:
        merged: dict[DeviceKey, _Merged] = {}
        for file, quarantine in enumerate(self._quarantines):
            if gateway is None:
                summaries = quarantine.pending_by_device(reasons, key=key, limit=ALL)
            else:  # one gateway's, selected by SQL
                (reason,) = reasons
                pages = quarantine.pending_devices_per_gateway(reason, per_gateway=ALL, gateway=gateway)
                summaries = pages[gateway].items if gateway in pages else []
            for gateway_, device, n, first_ns, last_ns, newest, oldest in summaries:
                known = merged.get((gateway_, device))
                if known is None:
                    merged[(gateway_, device)] = _Merged(
                        gateway_, device, n, first_ns, last_ns, file, newest, file, oldest
                    )
                else:
                    known.join(file, n, first_ns, last_ns, newest, oldest)
        return merged

    def _device_summary(self, m: _Merged) -> DeviceSummary:
        newest, oldest = self._handle(m.newest_file, m.newest_id), self._handle(m.oldest_file, m.oldest_id)
        return DeviceSummary(m.gateway, m.name, m.messages, m.first_ns, m.last_ns, newest, oldest)

    def _topic_summary(self, m: _Merged) -> TopicSummary:
        return TopicSummary(
            m.name, m.messages, m.first_ns, m.last_ns, self._handle(m.newest_file, m.newest_id)
        )

    def pending_by_device(
        self, reasons: Iterable[str], *, key: DeviceKey | None = None, limit: int = 1000
    ) -> list[DeviceSummary]:
        """As :meth:`Quarantine.pending_by_device`, over every file."""
        merged = self._devices(list(reasons), key)
        return [self._device_summary(m) for m in sorted(merged.values(), key=_recent)[: max(0, limit)]]

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
        kept = [m for key, m in self._devices([reason], None, gateway=gateway).items() if key not in left_out]
        return self._paged(kept, per_gateway, self._device_summary)

    def pending_topics_per_gateway(
        self, reason: str, *, lead: str, per_gateway: int, gateway: str | None = None
    ) -> dict[str, GatewayPage]:
        """As :meth:`Quarantine.pending_topics_per_gateway`: ranked and counted after the merge."""
        merged: dict[str, _Merged] = {}
        for file, quarantine in enumerate(self._quarantines):
            for topic, n, first_ns, last_ns, newest in quarantine.pending_by_topic(reason, limit=ALL):
                known = merged.get(topic)
                if known is None:
                    merged[topic] = _Merged("", topic, n, first_ns, last_ns, file, newest, file, newest)
                else:
                    known.join(file, n, first_ns, last_ns, newest, newest)
        placed = []
        for m in merged.values():
            name = _gateway_of(m.name, lead)
            if name is not None and (gateway is None or name == gateway):
                m.gateway = name
                placed.append(m)
        return self._paged(placed, per_gateway, self._topic_summary)

    def pending_keys_among(self, reason: str, keys: Iterable[DeviceKey]) -> set[DeviceKey]:
        wanted = list(keys)
        return set().union(*(q.pending_keys_among(reason, wanted) for q in self._quarantines))

    def _paged(
        self, merged: list[_Merged], per_gateway: int, summary: Callable[[_Merged], Any]
    ) -> dict[str, GatewayPage]:
        """Per gateway: its ``per_gateway`` most recently heard (as summaries) and how many it has."""
        grouped: dict[str, list[_Merged]] = {}
        for m in merged:
            grouped.setdefault(m.gateway, []).append(m)
        return {
            name: GatewayPage(
                [summary(m) for m in heapq.nsmallest(max(0, per_gateway), items, key=_recent)], len(items)
            )
            for name, items in sorted(grouped.items())
        }


def _recent(m: _Merged) -> tuple[int, int]:
    """The most recently heard first (ties: the newest entry first, as the SQL ranks them)."""
    return (-m.last_ns, -m.newest_id)


def _gateway_of(topic: str, lead: str) -> str | None:
    """The topic's level after ``lead`` (topic prefix and ``lab/``) when a level follows it, as the SQL of
    :meth:`Quarantine.pending_topics_per_gateway` places it."""
    if not topic.startswith(lead):
        return None
    name, slash, _rest = topic[len(lead) :].partition("/")
    return name if name and slash else None


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
