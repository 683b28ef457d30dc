"""The spool's on-disk format: record framing, segment scanning and the checkpoint codec.

Pure standard library, no state. :mod:`ingest.spool` builds the durable store on top of it.

All integers are little-endian. A segment file ``<first seq, 20 digits>.seg`` holds records back to back,
without a file header::

    record = header (20 bytes) + payload
    header = magic b"RLSP" | u32 payload length | u64 sequence number | u32 CRC32

The CRC32 (``zlib.crc32``) covers the payload *and* the first 16 header bytes, so a damaged length or sequence
number is caught as well as a damaged payload. Sequence numbers inside a segment are consecutive, starting at
the number in the file name; across segments they only increase.

The checkpoint file records which sequence numbers InfluxDB confirmed::

    b"RLSPCK1 " + 8 hex digits CRC32 of the JSON + b"\\n" + JSON
    JSON = {"next_seq": n, "floor": f, "confirmed": [[a, b], ...]}

meaning: every record below ``floor`` is confirmed, and so is every record in the inclusive ranges
``[a, b]``; no sequence number below ``next_seq`` will ever be used again.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

MAGIC = b"RLSP"
HEADER = struct.Struct("<4sIQI")
HEADER_SIZE = HEADER.size  # 20
MAX_PAYLOAD = 0xFFFF_FFFF
SEGMENT_SUFFIX = ".seg"
CHECKPOINT_MAGIC = b"RLSPCK1 "
_CHUNK = 1 << 20
Payload = bytes | bytearray | memoryview

# Why a scan stopped. The first two are a torn tail: a write that never completed, so never acknowledged.
TORN = frozenset({"short_header", "short_payload"})


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    stem = name.removesuffix(SEGMENT_SUFFIX)
    if stem == name or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


def _crc(prefix: bytes, payload: Payload) -> int:
    return zlib.crc32(payload, zlib.crc32(prefix)) & 0xFFFF_FFFF


def encode_header(seq: int, payload: Payload) -> bytes:
    prefix = HEADER.pack(MAGIC, len(payload), seq, 0)[:16]
    return prefix + struct.pack("<I", _crc(prefix, payload))


def decode_record(blob: bytes, *, seq: int) -> bytes | None:
    """The payload of one whole record read back from disk, or ``None`` if it is not that record intact."""
    if len(blob) < HEADER_SIZE:
        return None
    magic, length, found_seq, crc = HEADER.unpack_from(blob)
    payload = blob[HEADER_SIZE:]
    if magic != MAGIC or found_seq != seq or length != len(payload) or _crc(blob[:16], payload) != crc:
        return None
    return payload


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The good prefix of a segment file, and what follows it if it is not good."""

    offsets: list[int]  # offset of each good record; record i has sequence number first_seq + i
    lengths: list[int]  # payload length of each good record
    good_bytes: int  # the file is good up to here
    file_bytes: int
    reason: str | None  # why the scan stopped before the end of the file (None: the whole file is good)
    bad_records: int  # records in the dropped tail (the bad one plus any well-framed ones after it)


def _check(f: BinaryIO, pos: int, size: int, expected_seq: int | None) -> tuple[str | None, int, int]:
    """Check the record at ``pos``: (reason or None, payload length, its sequence number)."""
    f.seek(pos)
    header = f.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        return "short_header", 0, 0
    magic, length, seq, crc = HEADER.unpack(header)
    if magic != MAGIC:
        return "bad_magic", 0, seq
    if pos + HEADER_SIZE + length > size:
        return "short_payload", length, seq
    running = zlib.crc32(header[:16])
    left = length
    while left:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:
            return "short_payload", length, seq
        running = zlib.crc32(chunk, running)
        left -= len(chunk)
    if running & 0xFFFF_FFFF != crc:
        return "crc_mismatch", length, seq
    if expected_seq is not None and seq != expected_seq:
        return "bad_sequence", length, seq
    return None, length, seq


def scan_segment(f: BinaryIO, *, first_seq: int, size: int) -> ScanResult:
    """Walk the records of a segment file of ``size`` bytes, streaming (never the whole file in memory)."""
    offsets: list[int] = []
    lengths: list[int] = []
    pos = 0
    reason: str | None = None
    length = 0
    while pos < size:
        reason, length, _ = _check(f, pos, size, first_seq + len(offsets))
        if reason is not None:
            break
        offsets.append(pos)
        lengths.append(length)
        pos += HEADER_SIZE + length
    bad = 0
    if reason is not None:
        bad = 1
        # A record that is framed (its length fits) but damaged: count the intact records behind it.
        if reason in ("crc_mismatch", "bad_sequence"):
            after = pos + HEADER_SIZE + length
            while after < size:
                why, more, _ = _check(f, after, size, None)
                if why is not None:
                    break
                bad += 1
                after += HEADER_SIZE + more
    return ScanResult(offsets, lengths, pos, size, reason, bad)


def resync(f: BinaryIO, *, damaged_at: int, size: int, expected_seq: int) -> tuple[int, int] | None:
    """The first intact record after the damaged one at ``damaged_at``: (its offset, its seq), or ``None``.

    ``expected_seq`` is the number the damaged record should carry. A candidate must be a whole record whose
    CRC matches and whose number can follow: above ``expected_seq`` (the damaged record is lost) and at most
    one more per ``HEADER_SIZE`` bytes skipped, since every record, even an empty one, takes that many.
    ``None``: nothing intact follows (a torn or damaged tail).
    """
    pos = damaged_at + 1
    while pos + HEADER_SIZE <= size:
        f.seek(pos)
        window = f.read(min(_CHUNK, size - pos))
        hit = window.find(MAGIC)
        if hit < 0:
            pos += max(1, len(window) - len(MAGIC) + 1)
            continue
        pos += hit
        why, _, seq = _check(f, pos, size, None)
        if why is None and expected_seq < seq <= expected_seq + (pos - damaged_at) // HEADER_SIZE:
            return pos, seq
        pos += 1
    return None


def _ranges(seqs: Iterable[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for seq in sorted(seqs):
        if out and seq == out[-1][1] + 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


@dataclass(frozen=True, slots=True)
class Checkpoint:
    next_seq: int
    floor: int
    confirmed: frozenset[int]

    def is_confirmed(self, seq: int) -> bool:
        return seq < self.floor or seq in self.confirmed


def encode_checkpoint(*, next_seq: int, floor: int, confirmed: Iterable[int]) -> bytes:
    body = json.dumps(
        {"next_seq": next_seq, "floor": floor, "confirmed": _ranges(s for s in confirmed if s >= floor)},
        separators=(",", ":"),
    ).encode()
    return CHECKPOINT_MAGIC + b"%08x\n" % zlib.crc32(body) + body


def decode_checkpoint(blob: bytes) -> Checkpoint:
    """Parse a checkpoint; ``ValueError`` if it is damaged."""
    head, sep, body = blob.partition(b"\n")
    if not sep or not head.startswith(CHECKPOINT_MAGIC):
        raise ValueError("not a spool checkpoint")
    if int(head[len(CHECKPOINT_MAGIC) :], 16) != zlib.crc32(body):
        raise ValueError("checkpoint checksum mismatch")
    data = json.loads(body)
    next_seq, floor = int(data["next_seq"]), int(data["floor"])
    confirmed: set[int] = set()
    for first, last in data["confirmed"]:
        confirmed.update(range(int(first), int(last) + 1))
    if not 1 <= floor <= next_seq or any(s >= next_seq for s in confirmed):
        raise ValueError("checkpoint is inconsistent")
    return Checkpoint(next_seq, floor, frozenset(confirmed))
