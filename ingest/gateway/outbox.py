"""The gateway's durable outbox: every frame read, kept on disk until the central broker acknowledged it.

Built on :class:`ingest.spool.Spool` (checksummed segments, checkpoint of confirmed records, recovery of a
torn tail). One spool record per frame::

    u64 read_ns | u16 topic length | topic (UTF-8) | payload          (little-endian, 10 bytes + data)

Durability, and what each kind of failure costs:

- :meth:`Outbox.put` writes the record into the segment file at once, without an fsync: it is in the
  page cache, so a crash or SIGKILL of the service loses nothing. A power cut loses what was written
  since the last group commit: :meth:`Outbox.commit` (run every ``commit_interval_s`` by :meth:`run`)
  fsyncs the segment, so at most that interval of readings (1 s by default). One fsync per interval
  instead of one per reading is what keeps an SD card alive.
- :meth:`Outbox.put_durable` returns only after an fsync: for the local-broker forwarder, which
  acknowledges its own broker's messages only then (they are not lost by a power cut at all).
- Acknowledgements from the central broker (:meth:`Outbox.confirm`) are collected in memory and written
  to the spool's checkpoint every ``ack_commit_s`` (30 s; sooner when 100,000 are waiting): after a crash
  at most that many acknowledged frames are sent again. Duplicates are harmless: the same frame with the
  same read time is the same point. A checkpoint costs two fsyncs (file, directory) and deleting a
  finished segment one more; doing it every second tripled the fsyncs per hour of a quiet gateway.

Bounded by ``max_bytes``: when a frame does not fit, the oldest segment's unsent records are dropped
(counted in ``dropped_full``, logged with count and time range) and the frame is written; the readers are
never blocked. Meters send cumulative counters, so losing old intermediate readings keeps the energy
right; only the power curve of the oldest period thins out.

Order of sending (:meth:`Outbox.take`): frames put since the uplink last took are *live* and go first,
then the backlog on disk, oldest first. The newest readings are not starved while hours of backlog drain.

A frame the broker refuses for good (PUBACK reason >= 0x80, e.g. "not authorized") is moved to a second,
small spool in ``refused/`` (:meth:`Outbox.refuse`): not deleted silently, not retried in a loop.
:meth:`Outbox.requeue_refused` puts them back into the outbox; the service does so at each start.

A full file system (ENOSPC, EDQUOT) before ``max_bytes`` is treated like ``max_bytes``: the acknowledged
records are deleted, else the oldest segment is dropped, and the frame written again; counted in
``dropped_full`` and ``dropped_disk``, logged once a minute with the counts. When none of our own frames
are left to drop, :meth:`put` drops the new frame (counted) instead of raising into the readers.
Dropping needs a little space itself (the spool's checkpoint is written before the segment is deleted):
the file ``disk-reserve`` (1 MiB, at most 1/64 of the file system) keeps it, released for the drop and set
aside again after it; with nothing of ours to drop, its space goes to the frames.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ingest.gateway.frames import Frame
from ingest.spool import Spool, SpoolError, SpoolFull
from ingest.spool_format import HEADER_SIZE

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<QH")
REFUSED_DIR = "refused"
_REFUSED = struct.Struct("<B")  # the broker's reason code before the record
SEGMENT_BYTES = 4 << 20  # drop-oldest granularity, and the index memory read at open
ACK_BATCH_MAX = 100_000  # acknowledged records kept in memory before a checkpoint is due anyway
LIVE_LIMIT = 2_000  # live frames kept in memory for the uplink; older ones are read back from disk
LIVE_BYTES = 8 << 20  # ... and at most this many payload bytes of them (large device messages)
BACKLOG_READ = 2_000  # records read from disk at a time
DISK_FULL_LOG_S = 60.0  # a full disk (ENOSPC) is logged at most once per this interval, with counts
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
RESERVE_FILE = "disk-reserve"  # space set aside so that dropping the oldest works on a full disk
RESERVE_BYTES = 1 << 20
DROPPED = 0  # what put() returns for a frame it had to drop (sequence numbers start at 1)


class OutboxError(Exception):
    """The outbox cannot store or read frames (a disk error); the message names the directory."""


class _DiskFull(OutboxError):
    """The file system is full (ENOSPC/EDQUOT) and dropping our own oldest frames freed nothing."""


def _is_disk_full(exc: SpoolError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OSError) and cause.errno in _DISK_FULL


def frame_bytes(frame: Frame) -> int:
    """What a frame costs in memory and on the wire, roughly: payload, topic and a PUBLISH's overhead."""
    return len(frame.payload) + len(frame.topic) + 40


MAX_TOPIC_BYTES = 65_535  # MQTT's limit for a topic name (a two-byte length)


def encode(frame: Frame) -> bytes:
    topic = frame.topic.encode()
    if len(topic) > MAX_TOPIC_BYTES:
        raise OutboxError(f"topic of {len(topic)} bytes: MQTT allows {MAX_TOPIC_BYTES}")
    return _HEAD.pack(frame.read_ns, len(topic)) + topic + frame.payload


def decode(record: bytes) -> Frame:
    read_ns, topic_length = _HEAD.unpack_from(record)
    end = _HEAD.size + topic_length
    return Frame(record[_HEAD.size : end].decode(), record[end:], read_ns)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int  # records not yet acknowledged by the central broker
    bytes: int  # segment bytes on disk (what max_bytes bounds)
    oldest_read_ns: int | None  # read time of the oldest unacknowledged record
    dropped_full: int  # records dropped because the outbox or its disk was full (oldest first)
    dropped_disk: int  # of those, dropped because the file system was full (ENOSPC) before max_bytes
    refused: int  # records the central broker refused, kept in refused/
    fsyncs: int  # fsync calls (segments, checkpoint, directory)
    bytes_written: int  # record bytes written (frames, refused records; not the checkpoint)


class Outbox:
    """Durable, bounded outbox of :class:`Frame` s under ``directory``; one process at a time.

    Synchronous methods are cheap (a ``write()``) and belong to the event loop's thread; the fsyncs run
    in a worker thread (:meth:`run`'s group commit, :meth:`put_durable`). ``on_put`` is called after
    every put (the uplink wakes up on it).
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        commit_interval_s: float = 1.0,
        ack_commit_s: float = 30.0,
        segment_bytes: int = SEGMENT_BYTES,
        live_limit: int = LIVE_LIMIT,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        self.directory = directory
        self.commit_interval_s = commit_interval_s
        self.ack_commit_s = ack_commit_s
        self._acks_committed = time.monotonic()
        segment_bytes = max(64 << 10, min(segment_bytes, max_bytes // 8))
        try:
            self._spool = Spool(directory, max_bytes=max_bytes, segment_bytes=segment_bytes)
            refused_bytes = max(1 << 20, max_bytes // 50)
            self._refused = Spool(directory / REFUSED_DIR, max_bytes=refused_bytes)
        except SpoolError as exc:
            if hasattr(self, "_spool"):
                self._spool.close()
            raise OutboxError(str(exc)) from exc
        self._live: collections.deque[tuple[int, Frame]] = collections.deque()
        self._live_limit = live_limit
        self._live_bytes = 0
        self._cursor = 0  # backlog records up to this sequence number were handed out
        self._ahead: set[int] = set()  # live records above the cursor already handed out
        self._acked: list[int] = []  # acknowledged, written to the checkpoint at the next commit
        self._acked_set: set[int] = set()
        self._ack_lock = threading.Lock()  # the commit runs in a thread
        self._dropped = 0
        self._dropped_disk = 0
        self._disk_logged_at: float | None = None  # monotonic time of the last disk-full warning
        self._disk_unlogged = 0  # frames dropped for the full disk since that warning
        self._bytes_written = 0
        self.on_put: Callable[[], None] | None = None
        self._reserve = directory / RESERVE_FILE
        self._reserve_bytes = reserve_bytes
        self._make_reserve()
        self._warn_if_disk_smaller(max_bytes)
        recovered = self._spool.recovery
        if recovered.pending:
            log.info("outbox %s: %d frames from before the restart to send", directory, recovered.pending)
        if self._refused.pending_count:
            log.warning(
                "outbox %s: %d frames the central broker refused are kept in %s (the service sends them "
                "again at its start)",
                directory,
                self._refused.pending_count,
                directory / REFUSED_DIR,
            )

    def _warn_if_disk_smaller(self, max_bytes: int) -> None:
        try:
            found = os.statvfs(self.directory)
        except OSError:
            return
        room = found.f_bavail * found.f_frsize + self._spool.size_bytes
        if room < max_bytes:
            log.warning(
                "outbox %s: max_bytes %d is more than its file system can hold (%d bytes free for it): when "
                "the disk fills up first, the oldest frames are dropped then (counted as dropped_disk)",
                self.directory,
                max_bytes,
                room,
            )

    # -- writing -------------------------------------------------------------------------------------

    def put(self, frame: Frame) -> int:
        """Store a frame (no fsync: the next group commit makes it power-cut safe); its sequence number.

        :data:`DROPPED` (0, never a sequence number) when the file system is full and none of our own
        frames are left to drop: the frame is dropped and counted (the readers and the health message
        never see the full disk as an error).
        """
        try:
            seq = self._append([encode(frame)], sync=False)[0]
        except _DiskFull:
            self._count_disk_drops(1)
            return DROPPED
        self._add_live(seq, frame)
        return seq

    async def put_durable(self, frames: Iterable[Frame]) -> list[int]:
        """Store frames and return once they are fsynced: safe from a power cut when this returns."""
        items = list(frames)
        if not items:
            return []
        seqs = self._append([encode(f) for f in items], sync=False)
        for seq, frame in zip(seqs, items, strict=True):
            self._add_live(seq, frame)
        await asyncio.to_thread(self._sync)
        return seqs

    def _append(self, records: list[bytes], *, sync: bool) -> list[int]:
        while True:
            try:
                seqs = self._spool.append_many(records, sync=sync)
            except SpoolFull:
                if not self._drop_oldest():
                    raise OutboxError(f"outbox {self.directory}: full, and nothing left to drop") from None
                continue
            except SpoolError as exc:
                if not _is_disk_full(exc):
                    raise OutboxError(str(exc)) from exc
                if not self._free_disk():  # the same policy as max_bytes: the oldest go, then try again
                    raise _DiskFull(f"outbox {self.directory}: the disk is full: {exc}") from exc
                continue
            self._bytes_written += sum(map(len, records)) + HEADER_SIZE * len(records)
            return seqs

    def _free_disk(self) -> bool:
        """The file system is full: delete what the broker acknowledged, else drop the oldest segment;
        with nothing of ours to drop, give the reserve's space to the frames (set aside after a drop)."""
        released = self._release_reserve()  # room for the checkpoint that deleting a segment writes
        try:
            before = self._spool.size_bytes
            self._commit_acks()
            freed = self._spool.size_bytes < before or self._drop_oldest(disk_full=True)
        except OutboxError:  # not even the checkpoint could be written
            freed = False
        if freed:
            self._make_reserve()
        return freed or released

    def _release_reserve(self) -> bool:
        try:
            self._reserve.unlink()
        except OSError:
            return False
        return True

    def _make_reserve(self) -> None:
        """Best effort, at most 1/64 of the file system: without the reserve, a full disk may leave the
        oldest segment undeletable (its checkpoint cannot be written), so new frames are dropped."""
        try:
            found = os.statvfs(self.directory)
        except OSError:
            return
        size = min(self._reserve_bytes, found.f_blocks * found.f_frsize // 64)
        if size < 4096:
            return
        try:
            fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError:
            with contextlib.suppress(OSError):
                self._reserve.unlink()
        finally:
            os.close(fd)

    def _count_disk_drops(self, count: int) -> None:
        self._dropped += count
        self._dropped_disk += count
        self._disk_unlogged += count
        now = time.monotonic()
        if self._disk_logged_at is not None and now - self._disk_logged_at < DISK_FULL_LOG_S:
            return
        free = "unknown"
        with contextlib.suppress(OSError):
            found = os.statvfs(self.directory)
            free = str(found.f_bavail * found.f_frsize)
        log.warning(
            "outbox %s: the disk is full (%s bytes free, outbox now %d bytes, max_bytes %d): dropped %d "
            "frames since the last such message, the oldest first (%d dropped for the disk so far)",
            self.directory,
            free,
            self._spool.size_bytes,
            self._spool.max_bytes,
            self._disk_unlogged,
            self._dropped_disk,
        )
        self._disk_logged_at = now
        self._disk_unlogged = 0

    def _add_live(self, seq: int, frame: Frame) -> None:
        live = self._live
        live.append((seq, frame))
        self._live_bytes += frame_bytes(frame)
        while len(live) > self._live_limit or (self._live_bytes > LIVE_BYTES and len(live) > 1):
            self._pop_live()  # still on disk: the backlog reader finds it
        if self.on_put is not None:
            self.on_put()

    def _pop_live(self) -> tuple[int, Frame]:
        seq, frame = self._live.popleft()
        self._live_bytes -= frame_bytes(frame)
        return seq, frame

    def _drop_oldest(self, *, disk_full: bool = False) -> bool:
        oldest = self._spool.oldest_pending()
        if not oldest:
            return False
        with self._ack_lock:
            seqs = [s for s in oldest if s not in self._acked_set]  # acknowledged ones are no loss
        span = self._time_range(seqs)
        try:
            self._spool.confirm_many(oldest)
        except SpoolError as exc:
            raise OutboxError(str(exc)) from exc
        while self._live and self._live[0][0] <= oldest[-1]:
            self._pop_live()
        if not seqs:
            return True
        if disk_full:
            self._count_disk_drops(len(seqs))
            return True
        self._dropped += len(seqs)
        log.warning(
            "outbox %s full (max_bytes %d): dropped the oldest %d frames, read %s (%d dropped so far)",
            self.directory,
            self._spool.max_bytes,
            len(seqs),
            span,
            self._dropped,
        )
        return True

    def _time_range(self, seqs: list[int]) -> str:
        if not seqs:
            return ""
        try:
            first, last = decode(self._spool.read(seqs[0])), decode(self._spool.read(seqs[-1]))
        except (SpoolError, KeyError, struct.error, UnicodeDecodeError) as exc:
            return f"(time range unreadable: {exc})"
        return f"{_iso(first.read_ns)} to {_iso(last.read_ns)}"

    # -- reading and confirming ------------------------------------------------------------------------

    def take(self, limit: int, *, max_bytes: int | None = None) -> list[tuple[int, Frame]]:
        """Up to ``limit`` frames not handed out before: live ones first, then the backlog, oldest first.

        ``max_bytes`` bounds their :func:`frame_bytes` (the first frame is taken even when it alone is
        larger). Each record is handed out once per process; the taker keeps it until :meth:`confirm` or
        :meth:`refuse` (after a restart, everything unconfirmed is backlog again).
        """
        budget = max_bytes if max_bytes is not None else 1 << 62
        out: list[tuple[int, Frame]] = []
        live = self._live
        while live and len(out) < limit:
            cost = frame_bytes(live[0][1])
            if out and cost > budget:
                return out
            seq, frame = self._pop_live()
            budget -= cost
            out.append((seq, frame))
            if seq == self._cursor + 1 and not self._ahead:
                self._cursor = seq  # no backlog behind it: nothing to read back from disk
            elif seq > self._cursor:
                self._ahead.add(seq)
        if len(out) < limit and (budget > 0 or not out):
            out += self._backlog(limit - len(out), budget, first=not out)
        return out

    def _backlog(self, limit: int, budget: int, *, first: bool) -> list[tuple[int, Frame]]:
        # the backlog is every unconfirmed record between the cursor and the oldest live one in memory
        end = self._live[0][0] if self._live else self._spool.next_seq
        out: list[tuple[int, Frame]] = []
        pending = self._spool.pending_count
        average = self._spool.pending_bytes // pending + 1 if pending else 1
        while len(out) < limit and self._cursor + 1 < end:
            count = min(BACKLOG_READ, limit - len(out), max(1, budget // average))  # read little more
            try:
                records = self._spool.pending(limit=count, after=self._cursor)
            except SpoolError as exc:
                raise OutboxError(str(exc)) from exc
            if not records:
                self._cursor = end - 1
                break
            for record in records:
                if record.seq >= end:
                    self._cursor = end - 1
                    break
                if record.seq not in self._ahead:
                    frame = decode(record.payload)
                    cost = frame_bytes(frame)
                    if cost > budget and (out or not first):
                        break
                    budget -= cost
                    out.append((record.seq, frame))
                self._cursor = record.seq
            else:
                continue
            break
        if self._ahead:
            self._ahead = {s for s in self._ahead if s > self._cursor}
        return out

    def confirm(self, seqs: Iterable[int]) -> None:
        """The central broker acknowledged these records; written to disk at the next commit."""
        with self._ack_lock:
            for seq in seqs:
                if seq not in self._acked_set:
                    self._acked_set.add(seq)
                    self._acked.append(seq)

    def refuse(self, seq: int, frame: Frame, reason: int) -> None:
        """The broker refused this record for good: keep it in ``refused/``, out of the sending queue."""
        record = _REFUSED.pack(reason) + encode(frame)
        try:
            self._refused.append_many([record], sync=False)
        except SpoolFull:
            log.error(
                "outbox %s: refused-frames store full, the refused frame on %s is dropped",
                self.directory,
                frame.topic,
            )
            self._dropped += 1
        except SpoolError as exc:
            if not _is_disk_full(exc):
                raise OutboxError(str(exc)) from exc
            log.error(
                "outbox %s: the disk is full, the refused frame on %s is dropped", self.directory, frame.topic
            )
            self._count_disk_drops(1)
        self._bytes_written += len(record) + 20
        self.confirm([seq])

    def requeue_refused(self) -> int:
        """Put the refused frames back into the outbox (once the account may publish); how many."""
        try:
            records = list(self._refused)
            for record in records:
                payload = record.payload[_REFUSED.size :]
                self._add_live(self._append([payload], sync=False)[0], decode(payload))
            self._sync()
            self._refused.confirm_many(r.seq for r in records)
        except SpoolError as exc:
            raise OutboxError(str(exc)) from exc
        return len(records)

    # -- group commit --------------------------------------------------------------------------------

    def commit(self) -> None:
        """fsync what was put, then record every acknowledged frame (blocking: run it in a thread)."""
        self._sync()
        self._commit_acks()

    def _group_commit(self) -> None:
        """The periodic commit: fsync what was put; the acknowledged ones only every ``ack_commit_s``."""
        self._sync()
        with self._ack_lock:
            waiting = len(self._acked)
        if waiting >= ACK_BATCH_MAX or time.monotonic() - self._acks_committed >= self.ack_commit_s:
            self._commit_acks()

    def _sync(self) -> None:
        try:
            self._spool.sync()
            self._refused.sync()
        except SpoolError as exc:
            raise OutboxError(str(exc)) from exc

    def _commit_acks(self) -> int:
        self._acks_committed = time.monotonic()
        with self._ack_lock:
            acked, self._acked = self._acked, []
        if not acked:
            return 0
        try:
            done = self._spool.confirm_many(acked)
        except SpoolError as exc:
            with self._ack_lock:
                self._acked = acked + self._acked
            raise OutboxError(str(exc)) from exc
        with self._ack_lock:
            self._acked_set.difference_update(acked)
        return done

    async def run(self) -> None:
        """Group commit every ``commit_interval_s`` until cancelled (then one last, full commit)."""
        try:
            while True:
                await asyncio.sleep(self.commit_interval_s)
                try:
                    await asyncio.to_thread(self._group_commit)
                except OutboxError as exc:
                    log.error("outbox commit failed: %s", exc)
        finally:
            with contextlib.suppress(OutboxError):
                self.commit()

    # -- state -------------------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        oldest = None
        with contextlib.suppress(
            SpoolError, struct.error
        ):  # may count what was acknowledged since the commit
            first = self._spool.pending(limit=1)
            oldest = decode(first[0].payload).read_ns if first else None
        with self._ack_lock:
            acked = len(self._acked)
        return OutboxStats(
            depth=self._spool.pending_count - acked,
            bytes=self._spool.size_bytes,
            oldest_read_ns=oldest,
            dropped_full=self._dropped,
            dropped_disk=self._dropped_disk,
            refused=self._refused.pending_count,
            fsyncs=self._spool.fsync_count + self._refused.fsync_count,
            bytes_written=self._bytes_written,
        )

    def refused_frames(self) -> list[tuple[int, Frame]]:
        """(reason code, frame) of every refused frame kept."""
        return [
            (_REFUSED.unpack_from(r.payload)[0], decode(r.payload[_REFUSED.size :])) for r in self._refused
        ]

    def close(self) -> None:
        with contextlib.suppress(OutboxError, SpoolError):
            self.commit()
        self._spool.close()
        self._refused.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))
