"""Recovery resynchronises after a damaged record: only it is lost, every intact record behind it is kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.spool import Spool
from ingest.spool_format import HEADER_SIZE, SEGMENT_SUFFIX, encode_header

MB = 1 << 20
SIZES = (0, 1, 5, 33, 2, 64, 20)  # varied, an empty record among them
PAYLOADS = tuple(bytes((i * 37 + j) % 256 for j in range(size)) for i, size in enumerate(SIZES))
STARTS = tuple(sum(HEADER_SIZE + s for s in SIZES[:i]) for i in range(len(SIZES) + 1))  # last: file size


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SEGMENT_SUFFIX))


def records_of(spool: Spool) -> list[tuple[int, bytes]]:
    return [(r.seq, r.payload) for r in spool.pending()]


def expected_without(*lost: int) -> list[tuple[int, bytes]]:
    return [(i + 1, p) for i, p in enumerate(PAYLOADS) if i not in lost]


def record_at(offset: int) -> int:
    return max(i for i, start in enumerate(STARTS[:-1]) if start <= offset)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("original")
    with Spool(directory, max_bytes=MB) as spool:
        assert spool.append_many(PAYLOADS) == list(range(1, len(PAYLOADS) + 1))
    (segment,) = segments(directory)
    assert segment.stat().st_size == STARTS[-1]
    return directory


def damage(original: Path, target: Path, *offsets: int) -> bytes:
    shutil.copytree(original, target)
    (segment,) = segments(target)
    data = bytearray(segment.read_bytes())
    for offset in offsets:
        data[offset] ^= 0xFF
    segment.write_bytes(data)
    return bytes(data)


@pytest.mark.parametrize("offset", range(STARTS[-1]))
def test_a_damaged_byte_anywhere_costs_only_its_record(original: Path, tmp_path: Path, offset: int) -> None:
    directory = tmp_path / "spool"
    damaged = damage(original, directory, offset)
    lost = record_at(offset)  # header (magic, length, seq, CRC) or payload: the record holding the byte
    survivors = expected_without(lost)
    with Spool(directory, max_bytes=MB) as spool:
        assert records_of(spool) == survivors
        (drop,) = spool.recovery.dropped
        assert (drop.offset, drop.nbytes, drop.records) == (STARTS[lost], HEADER_SIZE + SIZES[lost], 1)
        assert drop.kept_as is not None
        assert (directory / drop.kept_as).read_bytes() == damaged[STARTS[lost] : STARTS[lost + 1]]
        # a damaged last record looks like a torn write (nothing follows), any other does not
        assert drop.torn == (lost == len(SIZES) - 1 and drop.reason in ("short_header", "short_payload"))
    dropped_files = sorted(directory.glob("*.dropped"))
    assert len(dropped_files) == 1
    with Spool(directory, max_bytes=MB) as spool:  # a second open is stable: nothing more to drop
        assert spool.recovery.dropped == ()
        assert records_of(spool) == survivors
        assert spool.pending_count == len(survivors)
        assert spool.pending_bytes == sum(len(p) for _, p in survivors)
        if lost == len(SIZES) - 1:  # a cut tail, as before: its number is free again
            assert spool.next_seq == len(SIZES)
        else:
            assert not spool.confirm(lost + 1)  # the lost number is a gap: nothing to confirm
            assert spool.next_seq == len(SIZES) + 1
        keep_seq = survivors[-1][0]
        assert spool.confirm_many([seq for seq, _ in survivors[:-1]]) == len(survivors) - 1
        new_seq = spool.append(b"after")
    with Spool(directory, max_bytes=MB) as spool:
        assert spool.recovery.dropped == ()
        assert records_of(spool) == [(keep_seq, survivors[-1][1]), (new_seq, b"after")]
        assert spool.confirm_many([keep_seq, new_seq]) == 2
        assert segments(directory) == []
    assert sorted(directory.glob("*.dropped")) == dropped_files


@pytest.mark.parametrize(
    ("offsets", "lost"),
    [
        ((STARTS[1] + 2, STARTS[4] + 9), (1, 4)),  # two damaged records, apart
        ((STARTS[2] + 5, STARTS[3] + 25), (2, 3)),  # two damaged records, back to back
        ((STARTS[0], STARTS[6] + 1), (0, 6)),  # the first and the last
    ],
)
def test_several_damaged_records_in_one_segment(
    original: Path, tmp_path: Path, offsets: tuple[int, ...], lost: tuple[int, ...]
) -> None:
    directory = tmp_path / "spool"
    damage(original, directory, *offsets)
    with Spool(directory, max_bytes=MB) as spool:
        assert records_of(spool) == expected_without(*lost)
        assert spool.recovery.dropped_records == len(lost)
        assert spool.recovery.dropped_bytes == sum(HEADER_SIZE + SIZES[i] for i in lost)
    with Spool(directory, max_bytes=MB) as spool:
        assert spool.recovery.dropped == ()
        assert records_of(spool) == expected_without(*lost)


def test_a_crash_between_split_and_truncate_repeats_the_same_split(original: Path, tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    damaged = damage(original, directory, STARTS[2] + 3)
    with Spool(directory, max_bytes=MB) as spool:
        (drop,) = spool.recovery.dropped
        assert drop.resumed_in is not None
    (first, _) = segments(directory)
    first.write_bytes(damaged)  # as if the truncate of the damaged segment never reached the disk
    with Spool(directory, max_bytes=MB) as spool:
        assert records_of(spool) == expected_without(2)
        assert spool.recovery.dropped_records == 1
    assert len(segments(directory)) == 2


def test_an_embedded_record_with_an_implausible_number_is_not_taken(tmp_path: Path) -> None:
    # a payload that is itself a well-formed spool record (numbered far ahead) must not be resynced onto
    inner = encode_header(999, b"fake") + b"fake"
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append_many([b"a", inner, b"b"])
    (segment,) = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[HEADER_SIZE + 1 + 2] ^= 0xFF  # the second record's seq field
    segment.write_bytes(data)
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert records_of(spool) == [(1, b"a"), (3, b"b")]
        assert spool.next_seq == 4
