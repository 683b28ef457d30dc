"""Durable spool of InfluxDB write batches: append, fsync, then acknowledge; delete only once confirmed.

Synchronous and pure standard library. Every public method is thread-safe (one lock per spool), so the
asyncio ingester calls it through ``asyncio.to_thread``. One process per spool directory (``flock``).

Exceptions::

    SpoolError          anything the spool refuses or cannot do; OSErrors are translated into it
    ├── SpoolFull       the record(s) would take the spool past ``max_bytes``: back-pressure, retry after
    │                   confirms free a segment
    ├── RecordTooLarge  one record larger than ``max_bytes`` itself: it can never fit (also a ValueError)
    ├── SpoolCorrupt    a record read back no longer matches its checksum (damage after recovery)
    └── SpoolLocked     another process has the spool directory open

Files in the directory (format in :mod:`ingest.spool_format`)::

    <first seq>.seg                     segments: records appended, never rewritten
    checkpoint                          confirmed sequence numbers, replaced atomically on every confirm
    <segment>.<offset>.<ns>.dropped     bytes cut out at recovery, kept for forensics (an operator
                                        deletes it; a torn write's record was never acknowledged, but a
                                        damaged record's was)
    LOCK                                flock()ed while a process has the spool open

Durability: ``append``/``append_many`` write every record, ``fsync`` the segment (once per call: group
commit) and the directory when a segment file was created, and only then return the sequence numbers.
``confirm`` writes the checkpoint (temp file, fsync, rename), unlinks segments whose records are all
confirmed, and fsyncs the directory. Segments are sealed at ``segment_bytes`` and on every open.

Recovery on open: each segment is scanned (streaming) up to the first torn or damaged record; every record
before it is kept. Then it resynchronises: the first whole record behind the damage whose CRC matches and
whose sequence number can follow (:func:`ingest.spool_format.resync`) starts a new segment file named after
its number, a byte-for-byte copy of the rest of the file (temp file, fsync, rename, fsync the directory),
which is recovered in turn, so further damage is skipped the same way. Only then is the damaged segment
truncated at the damage, so a crash in between repeats the same split on the next open (the copy is
identical). Splitting rather than keeping a skip list keeps every segment's numbers consecutive, so
``_Segment.index`` stays ``seq - first_seq``; the numbers of the lost records are a gap between two segments,
which ``confirm``/``read``/``pending`` already treat as never appended. Only the damaged bytes go to the
``.dropped`` file. When nothing intact follows, the tail is cut as before: a torn write (never acknowledged),
or a damaged last record. What was dropped is in :attr:`Spool.recovery` and logged. Records the checkpoint
marks confirmed are not replayed; fully confirmed segments left over are deleted.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ingest.security.files import PRIVATE_FILE, private_dir, private_file
from ingest.spool_format import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    TORN,
    Checkpoint,
    Payload,
    decode_checkpoint,
    decode_record,
    encode_checkpoint,
    encode_header,
    parse_segment_name,
    resync,
    scan_segment,
    segment_name,
)

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
LOCKFILE = "LOCK"


class SpoolError(Exception):
    """The spool refused an operation or could not perform it."""


class SpoolFull(SpoolError):
    """Appending would exceed ``max_bytes``. Stop consuming; room returns when confirms free a segment."""


class RecordTooLarge(SpoolError, ValueError):
    """A single record is larger than the whole spool may be."""


class SpoolCorrupt(SpoolError):
    """A record read back does not match its checksum."""


class SpoolLocked(SpoolError):
    """Another process has this spool directory open."""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Dropped:
    """Bytes cut out of a segment at recovery: a damaged record, or a torn or damaged tail."""

    segment: str
    offset: int  # the segment was truncated here
    nbytes: int
    records: int  # records lost: those whose numbers the resync skipped, else the bad record (and any
    # well-framed records behind it that the resync would not take)
    reason: str  # short_header | short_payload (torn write) | bad_magic | crc_mismatch | bad_sequence
    kept_as: str | None  # file holding the dropped bytes (all but a short header, which holds nothing)
    resumed_in: str | None = None  # the new segment holding the intact records behind the damage

    @property
    def torn(self) -> bool:
        return self.reason in TORN and self.resumed_in is None


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What opening the spool found."""

    segments: int  # live segments after recovery
    records: int  # records recovered (confirmed or not)
    pending: int  # of those, not yet confirmed: replayed
    removed_segments: int  # fully confirmed segments deleted at open
    dropped: tuple[Dropped, ...] = ()
    checkpoint_damaged: bool = False  # True: ignored it, so confirmed records in live segments are replayed

    @property
    def dropped_records(self) -> int:
        return sum(d.records for d in self.dropped)

    @property
    def dropped_bytes(self) -> int:
        return sum(d.nbytes for d in self.dropped)


def _index(values: Iterable[int] = ()) -> array.array[int]:
    # 8 bytes per record instead of a list's pointer and int object (~36): millions of small records
    # (the gateway's outbox) stay a few MB
    return array.array("Q", values)


@dataclass(eq=False, slots=True)
class _Segment:
    path: Path
    first_seq: int
    offsets: array.array[int] = field(default_factory=_index)
    lengths: array.array[int] = field(default_factory=_index)
    size: int = 0
    confirmed: int = 0

    def index(self, seq: int) -> int | None:
        i = seq - self.first_seq
        return i if 0 <= i < len(self.offsets) else None

    @property
    def done(self) -> bool:
        return self.confirmed == len(self.offsets)


def _default_segment_bytes(max_bytes: int) -> int:
    return min(64 << 20, max(1 << 20, max_bytes // 16))


class Spool:
    """Append-only, checksummed, bounded spool of batches under ``directory``.

    ``max_bytes`` bounds the bytes of all segment files (confirmed records count until their segment is
    deleted, so keep ``segment_bytes`` well below ``max_bytes``; the default is ``max_bytes/16`` clamped to
    1–64 MiB).
    """

    def __init__(self, directory: Path | str, *, max_bytes: int, segment_bytes: int | None = None) -> None:
        if max_bytes <= HEADER_SIZE:
            raise ValueError(f"max_bytes must exceed {HEADER_SIZE}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or _default_segment_bytes(max_bytes)
        if self.segment_bytes <= HEADER_SIZE:
            raise ValueError(f"segment_bytes must exceed {HEADER_SIZE}")
        self._lock = threading.RLock()
        self._segments: list[_Segment] = []
        self._confirmed: set[int] = set()  # confirmed sequence numbers still in live segments
        self._active: _Segment | None = None
        self._fd: int | None = None
        self._next_seq = 1
        self._size = 0
        self._pending_count = 0
        self._pending_bytes = 0
        self._fsyncs = 0
        self._unsynced = False  # appended with sync=False since the last fsync of the active segment
        self._closed = False
        try:
            private_dir(self.directory)
            self._lock_fd = os.open(
                self.directory / LOCKFILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE
            )
        except OSError as exc:
            raise SpoolError(f"cannot open spool directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            raise SpoolLocked(f"spool {self.directory} is in use by another process") from exc
        try:
            self.recovery = self._recover()
        except OSError as exc:
            self.close()
            raise SpoolError(f"spool {self.directory}: recovery failed: {exc}") from exc
        except BaseException:
            self.close()
            raise

    # -- public API -------------------------------------------------------------------------------------

    @property
    def size_bytes(self) -> int:
        """Bytes of all live segment files (what ``max_bytes`` bounds)."""
        return self._size

    @property
    def pending_count(self) -> int:
        return self._pending_count

    @property
    def pending_bytes(self) -> int:
        """Payload bytes of the unconfirmed records."""
        return self._pending_bytes

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    @property
    def fsync_count(self) -> int:
        """fsync calls so far (segments, directory, checkpoint): for benchmarks and tests."""
        return self._fsyncs

    def has_room(self, nbytes: int, *, records: int = 1) -> bool:
        """Whether ``records`` records of ``nbytes`` payload bytes in total would fit now."""
        return self._size + records * HEADER_SIZE + nbytes <= self.max_bytes

    def append(self, payload: Payload) -> int:
        """Write one record durably; its sequence number. ``SpoolFull`` when it does not fit."""
        return self.append_many([payload])[0]

    def append_many(self, payloads: Iterable[Payload], *, sync: bool = True) -> list[int]:
        """Write records durably with one fsync (group commit): all or none. Their sequence numbers.

        ``sync=False``: written (in the page cache: they survive the process, not a power cut) but not
        fsynced until :meth:`sync`; a segment that fills up is still fsynced when the next one starts.
        """
        items = list(payloads)
        need = 0
        for payload in items:
            if len(payload) > MAX_PAYLOAD or HEADER_SIZE + len(payload) > self.max_bytes:
                raise RecordTooLarge(f"a record of {len(payload)} bytes can never fit in {self.max_bytes}")
            need += HEADER_SIZE + len(payload)
        if not items:
            return []
        with self._lock:
            self._check_open()
            if self._size + need > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.directory} full: {self._size} + {need} bytes > max_bytes {self.max_bytes}"
                )
            return self._append_locked(items, sync=sync)

    def sync(self) -> bool:
        """fsync what ``append_many(sync=False)`` wrote; False when there was nothing to sync.

        The fsync runs outside the lock (on a duplicate of the segment's descriptor), so appends go on
        meanwhile; they are not covered by this call unless they were written before it.
        """
        with self._lock:
            if self._closed or not self._unsynced or self._fd is None:
                return False
            self._unsynced = False
            try:
                fd = os.dup(self._fd)
            except OSError as exc:
                self._unsynced = True
                raise SpoolError(f"spool {self.directory}: sync failed: {exc}") from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            with self._lock:
                self._unsynced = True
            raise SpoolError(f"spool {self.directory}: sync failed: {exc}") from exc
        finally:
            os.close(fd)
        with self._lock:
            self._fsyncs += 1
        return True

    def oldest_pending(self) -> list[int]:
        """The unconfirmed sequence numbers of the oldest segment that has any (confirming them all
        deletes that segment): what a caller that drops the oldest data when full gives up."""
        with self._lock:
            for seg in self._segments:
                if not seg.done:
                    first = seg.first_seq
                    return [s for s in range(first, first + len(seg.offsets)) if s not in self._confirmed]
            return []

    def confirm(self, seq: int) -> bool:
        """InfluxDB confirmed record ``seq``. False if it was confirmed (or deleted) already."""
        return self.confirm_many([seq]) == 1

    def confirm_many(self, seqs: Iterable[int]) -> int:
        """Confirm records in any order with one checkpoint write; how many were newly confirmed."""
        with self._lock:
            self._check_open()
            touched: dict[int, _Segment] = {}
            new = 0
            for seq in seqs:
                if not 1 <= seq < self._next_seq:
                    raise ValueError(f"sequence number {seq} was never appended")
                seg = self._find(seq)
                if seg is None or seq in self._confirmed:
                    continue
                i = seg.index(seq)
                if i is None:  # a gap left by a failed append
                    continue
                self._confirmed.add(seq)
                seg.confirmed += 1
                self._pending_count -= 1
                self._pending_bytes -= seg.lengths[i]
                touched[id(seg)] = seg
                new += 1
            if new:
                self._commit_confirms([seg for seg in touched.values() if seg.done])
            return new

    def read(self, seq: int) -> bytes:
        """The payload of record ``seq`` (confirmed or not) while it is in the spool; ``KeyError`` if not."""
        with self._lock:
            self._check_open()
            seg = self._find(seq)
            i = None if seg is None else seg.index(seq)
            if seg is None or i is None:
                raise KeyError(seq)
            with self._reader(seg) as fd:
                return self._read_at(fd, seg, i)

    def pending(self, *, limit: int | None = None, after: int = 0) -> list[SpoolRecord]:
        """Unconfirmed records with ``seq > after``, oldest first, at most ``limit`` (payloads loaded)."""
        out: list[SpoolRecord] = []
        with self._lock:
            self._check_open()
            for seg in self._segments:
                if seg.done or seg.first_seq + len(seg.offsets) <= after + 1:
                    continue
                with self._reader(seg) as fd:
                    for i in range(max(0, after + 1 - seg.first_seq), len(seg.offsets)):
                        seq = seg.first_seq + i
                        if seq in self._confirmed:
                            continue
                        if limit is not None and len(out) >= limit:
                            return out
                        out.append(SpoolRecord(seq, self._read_at(fd, seg, i)))
        return out

    def pending_seqs(self) -> list[int]:
        with self._lock:
            return [
                seg.first_seq + i
                for seg in self._segments
                for i in range(len(seg.offsets))
                if seg.first_seq + i not in self._confirmed
            ]

    def __iter__(self) -> Iterator[SpoolRecord]:
        """Unconfirmed records, oldest first, read one at a time (skips those confirmed meanwhile)."""
        for seq in self.pending_seqs():
            with self._lock:
                if seq in self._confirmed or self._find(seq) is None:
                    continue
                payload = self.read(seq)
            yield SpoolRecord(seq, payload)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._seal()
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending -----------------------------------------------------------------------------------

    def _append_locked(self, items: Sequence[Payload], *, sync: bool = True) -> list[int]:
        # (segment, its size and record count before this call) for every segment this call writes to
        touched: list[tuple[_Segment, int, int]] = []
        created = False
        seqs: list[int] = []
        try:
            for payload in items:
                record = HEADER_SIZE + len(payload)
                active = self._active
                if active is None or (active.offsets and active.size + record > self.segment_bytes):
                    if active is not None:
                        self._fsync(self._require_fd())  # records already written to it in this call
                    active = self._new_segment()
                    created = True
                if not touched or touched[-1][0] is not active:
                    touched.append((active, active.size, len(active.offsets)))
                seq = self._next_seq
                self._next_seq += 1
                _write_all(self._require_fd(), encode_header(seq, payload), payload)
                active.offsets.append(active.size)
                active.lengths.append(len(payload))
                active.size += record
                self._size += record
                self._pending_count += 1
                self._pending_bytes += len(payload)
                seqs.append(seq)
            if sync:
                self._fsync(self._require_fd())
            self._unsynced = not sync
            if created:
                self._fsync_dir()
        except OSError as exc:
            self._roll_back(touched)
            raise SpoolError(f"spool {self.directory}: append failed: {exc}") from exc
        return seqs

    def _new_segment(self) -> _Segment:
        self._seal()
        seg = _Segment(self.directory / segment_name(self._next_seq), self._next_seq)
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
        self._active = seg
        self._segments.append(seg)
        return seg

    def _roll_back(self, touched: list[tuple[_Segment, int, int]]) -> None:
        """Undo a failed append: cut its bytes off again and forget its records. Seals the segment."""
        for seg, size, count in reversed(touched):
            for i in range(count, len(seg.offsets)):
                self._pending_count -= 1
                self._pending_bytes -= seg.lengths[i]
            self._size -= seg.size - size
            del seg.offsets[count:], seg.lengths[count:]
            seg.size = size
            try:
                if count == 0:
                    if seg is self._active:
                        self._seal()
                    seg.path.unlink(missing_ok=True)
                    self._segments.remove(seg)
                else:
                    os.truncate(seg.path, size)
            except OSError as exc:  # the torn bytes stay at the tail of a sealed segment: recovery cuts them
                log.error("spool %s: cannot undo a failed append to %s: %s", self.directory, seg.path, exc)
        self._seal()  # sequence numbers are not reused; the next append starts a fresh segment

    def _seal(self) -> None:
        if self._fd is not None:
            if self._unsynced:  # appended with sync=False: a sealed segment is never written again
                with contextlib.suppress(OSError):
                    self._fsync(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._unsynced = False
        self._fd = None
        self._active = None

    # -- confirming ----------------------------------------------------------------------------------

    def _commit_confirms(self, done: list[_Segment]) -> None:
        try:
            self._write_checkpoint()  # still lists the done segments' records, in case an unlink is lost
            for seg in done:
                if seg is self._active:
                    self._unsynced = False  # deleted right away: no fsync for it
                    self._seal()
                seg.path.unlink(missing_ok=True)
                self._drop_segment(seg)
            self._fsync_dir()
        except OSError as exc:
            raise SpoolError(f"spool {self.directory}: confirm failed: {exc}") from exc

    def _drop_segment(self, seg: _Segment) -> None:
        self._segments.remove(seg)
        self._size -= seg.size
        self._confirmed.difference_update(range(seg.first_seq, seg.first_seq + len(seg.offsets)))

    def _floor(self) -> int:
        for seg in self._segments:
            if not seg.done:
                for i in range(len(seg.offsets)):
                    if seg.first_seq + i not in self._confirmed:
                        return seg.first_seq + i
        return self._next_seq

    def _write_checkpoint(self) -> None:
        blob = encode_checkpoint(next_seq=self._next_seq, floor=self._floor(), confirmed=self._confirmed)
        tmp = self.directory / (CHECKPOINT + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_FILE)
        try:
            _write_all(fd, blob, b"")
            self._fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / CHECKPOINT)

    # -- reading -------------------------------------------------------------------------------------

    def _find(self, seq: int) -> _Segment | None:
        i = bisect.bisect_right(self._segments, seq, key=lambda s: s.first_seq) - 1
        return self._segments[i] if i >= 0 else None

    @contextlib.contextmanager
    def _reader(self, seg: _Segment) -> Iterator[int]:
        try:
            fd = os.open(seg.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise SpoolError(f"spool {self.directory}: cannot read {seg.path.name}: {exc}") from exc
        try:
            yield fd
        finally:
            os.close(fd)

    def _read_at(self, fd: int, seg: _Segment, i: int) -> bytes:
        seq, size = seg.first_seq + i, HEADER_SIZE + seg.lengths[i]
        try:
            blob = os.pread(fd, size, seg.offsets[i])
        except OSError as exc:
            raise SpoolError(f"spool {self.directory}: cannot read record {seq}: {exc}") from exc
        payload = decode_record(blob, seq=seq)
        if payload is None:
            raise SpoolCorrupt(f"spool {self.directory}: record {seq} in {seg.path.name} is damaged")
        return payload

    # -- recovery ------------------------------------------------------------------------------------

    def _recover(self) -> RecoveryReport:
        checkpoint, damaged = self._load_checkpoint()
        dropped: list[Dropped] = []
        removed = 0
        last_seq = 0
        paths = sorted(self.directory.iterdir())
        while paths:
            path = paths.pop(0)
            first_seq = parse_segment_name(path.name)
            if first_seq is None:
                continue
            if first_seq <= last_seq:
                raise SpoolCorrupt(f"spool {self.directory}: segment {path.name} overlaps its predecessor")
            seg, drop = self._recover_segment(path, first_seq)
            if drop is not None:
                dropped.append(drop)
                split = None if drop.resumed_in is None else path.with_name(drop.resumed_in)
                if split is not None and split not in paths:  # else left by a crash in an earlier split
                    paths.insert(0, split)
            if not seg.offsets:
                path.unlink()
                continue
            last_seq = seg.first_seq + len(seg.offsets) - 1
            for i, length in enumerate(seg.lengths):
                if checkpoint is not None and checkpoint.is_confirmed(seg.first_seq + i):
                    self._confirmed.add(seg.first_seq + i)
                    seg.confirmed += 1
                else:
                    self._pending_count += 1
                    self._pending_bytes += length
            if seg.done:  # confirmed, but its unlink did not survive
                path.unlink()
                self._confirmed.difference_update(range(seg.first_seq, last_seq + 1))
                removed += 1
                continue
            self._segments.append(seg)
            self._size += seg.size
        self._next_seq = max(checkpoint.next_seq if checkpoint else 1, last_seq + 1)
        (self.directory / (CHECKPOINT + ".tmp")).unlink(missing_ok=True)
        self._fsync_dir()
        report = RecoveryReport(
            segments=len(self._segments),
            records=sum(len(s.offsets) for s in self._segments),
            pending=self._pending_count,
            removed_segments=removed,
            dropped=tuple(dropped),
            checkpoint_damaged=damaged,
        )
        log.info(
            "spool %s opened: %d pending records (%d bytes) in %d segments, %d bytes on disk",
            self.directory,
            self._pending_count,
            self._pending_bytes,
            len(self._segments),
            self._size,
        )
        return report

    def _load_checkpoint(self) -> tuple[Checkpoint | None, bool]:
        path = self.directory / CHECKPOINT
        try:
            return decode_checkpoint(path.read_bytes()), False
        except FileNotFoundError:
            return None, False
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("spool %s: ignoring damaged checkpoint (%s); replaying all records", path, exc)
            return None, True

    def _recover_segment(self, path: Path, first_seq: int) -> tuple[_Segment, Dropped | None]:
        with path.open("rb") as f:
            scan = scan_segment(f, first_seq=first_seq, size=os.fstat(f.fileno()).st_size)
            seg = _Segment(path, first_seq, _index(scan.offsets), _index(scan.lengths), scan.good_bytes)
            if scan.reason is None:
                return seg, None
            expected = first_seq + len(scan.offsets)
            found = resync(f, damaged_at=scan.good_bytes, size=scan.file_bytes, expected_seq=expected)
            end, records, resumed_in = scan.file_bytes, scan.bad_records, None
            if found is not None:
                end, resumed_seq = found
                records = resumed_seq - expected
                resumed_in = segment_name(resumed_seq)
            kept_as = None
            # A short payload is a torn write, or a damaged length field: keep the bytes.
            if scan.reason != "short_header" or found is not None:
                kept = path.with_name(f"{path.name}.{scan.good_bytes}.{time.time_ns()}.dropped")
                self._copy(f, scan.good_bytes, end, private_file(kept))
                kept_as = kept.name
            if resumed_in is not None:
                split = path.with_name(resumed_in)
                tmp = split.with_name(resumed_in + ".tmp")
                self._copy(f, end, scan.file_bytes, private_file(tmp))
                os.replace(tmp, split)
                self._fsync_dir()
        drop = Dropped(
            segment=path.name,
            offset=scan.good_bytes,
            nbytes=end - scan.good_bytes,
            records=records,
            reason=scan.reason,
            kept_as=kept_as,
            resumed_in=resumed_in,
        )
        with path.open("r+b") as f:
            f.truncate(scan.good_bytes)
            self._fsync(f.fileno())
        kept_note = f"; dropped bytes kept in {kept_as}" if kept_as else ""
        resumed_note = f"; the intact records behind them go on in {resumed_in}" if resumed_in else ""
        log.warning(
            "spool %s: %s at offset %d of %s: dropped %d bytes (%d records) after %d good records%s%s",
            self.directory,
            drop.reason,
            drop.offset,
            drop.segment,
            drop.nbytes,
            drop.records,
            len(seg.offsets),
            kept_note,
            resumed_note,
        )
        return seg, drop

    def _copy(self, f: BinaryIO, start: int, end: int, dest: Path) -> None:
        """Copy bytes ``[start, end)`` of ``f`` into a new file ``dest``, fsynced."""
        f.seek(start)
        left = end - start
        with dest.open("wb") as out:
            while left and (chunk := f.read(min(left, 1 << 20))):
                out.write(chunk)
                left -= len(chunk)
            out.flush()
            self._fsync(out.fileno())

    # -- helpers -------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self.directory} is closed")

    def _require_fd(self) -> int:
        assert self._fd is not None
        return self._fd

    def _fsync(self, fd: int) -> None:
        os.fsync(fd)
        self._fsyncs += 1

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, header: bytes, payload: Payload) -> None:
    views = [memoryview(header), memoryview(payload).cast("B")]
    while views:
        n = os.writev(fd, views)
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]
