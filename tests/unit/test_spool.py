"""The durable spool against real files: replay, group commit, torn tails, corruption, bounds, confirms."""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.spool import (
    CHECKPOINT,
    RecordTooLarge,
    Spool,
    SpoolCorrupt,
    SpoolError,
    SpoolFull,
    SpoolLocked,
)
from ingest.spool_format import HEADER_SIZE, SEGMENT_SUFFIX

MB = 1 << 20


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SEGMENT_SUFFIX))


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in segments(directory))


def payloads_of(spool: Spool) -> list[bytes]:
    return [r.payload for r in spool.pending()]


def batch(i: int, size: int = 64) -> bytes:
    return (f"m,n={i} v={i}i {i}\n".encode() * size)[:size]


def test_append_and_replay_across_reopen(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        seqs = [spool.append(batch(i)) for i in range(5)]
        assert seqs == [1, 2, 3, 4, 5]
        assert spool.pending_count == 5
        assert spool.pending_bytes == 5 * 64
        assert spool.size_bytes == 5 * (HEADER_SIZE + 64) == disk_bytes(tmp_path)
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert spool.recovery.pending == 5
        assert spool.recovery.dropped == ()
        assert [r.seq for r in spool.pending()] == seqs
        assert payloads_of(spool) == [batch(i) for i in range(5)]
        assert spool.append(b"next") == 6


def test_exact_bytes_and_empty_payload(tmp_path: Path) -> None:
    odd = [b"", b"\x00", bytes(range(256)), b"\xff\xfe" * 1000]
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append_many(odd)
        spool.append(bytearray(b"ba"))
        spool.append(memoryview(b"mv"))
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert payloads_of(spool) == [*odd, b"ba", b"mv"]


def test_group_commit_is_one_fsync(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=64 * MB, segment_bytes=16 * MB) as spool:
        opened = spool.fsync_count
        spool.append(b"first")  # creates the segment: file + directory fsync
        assert spool.fsync_count - opened == 2
        before = spool.fsync_count
        seqs = spool.append_many([batch(i, 50_000) for i in range(100)])
        assert seqs == list(range(2, 102))
        assert spool.fsync_count - before == 1
        assert spool.append_many([]) == []
        assert spool.fsync_count - before == 1


def test_group_commit_across_rotation_syncs_both_segments(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB, segment_bytes=300) as spool:
        spool.append(b"x")
        before = spool.fsync_count
        spool.append_many([batch(i, 100) for i in range(4)])  # 2 x 120 bytes fit a segment of 300
        assert spool.segment_count == 2
        # the old segment before the switch, the new one, and the directory once for the new file
        assert spool.fsync_count - before == 3
    with Spool(tmp_path, max_bytes=MB, segment_bytes=300) as spool:
        assert payloads_of(spool) == [b"x", *(batch(i, 100) for i in range(4))]


def test_torn_tail_at_every_offset_of_the_last_record(tmp_path: Path) -> None:
    original = tmp_path / "original"
    with Spool(original, max_bytes=MB) as spool:
        spool.append_many([batch(1), batch(2), batch(3, 70)])
    (segment,) = segments(original)
    end = segment.stat().st_size
    start = end - (HEADER_SIZE + 70)
    for cut in range(start, end):
        directory = tmp_path / f"cut{cut}"
        shutil.copytree(original, directory)
        os.truncate(directory / segment.name, cut)
        with Spool(directory, max_bytes=MB) as spool:
            assert payloads_of(spool) == [batch(1), batch(2)], cut
            report = spool.recovery
            assert report.dropped_bytes == cut - start
            if cut > start:
                (drop,) = report.dropped
                assert drop.torn
                assert drop.reason == ("short_header" if cut - start < HEADER_SIZE else "short_payload")
                assert drop.records == 1
                assert (drop.kept_as is None) == (drop.reason == "short_header")
            assert (directory / segment.name).stat().st_size == start
            assert spool.append(b"after") == 3  # the torn record was never acknowledged: its number is free
        with Spool(directory, max_bytes=MB) as spool:
            assert payloads_of(spool) == [batch(1), batch(2), b"after"]
            assert spool.recovery.dropped == ()


def test_torn_tail_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append_many([batch(1), batch(2)])
    (segment,) = segments(tmp_path)
    os.truncate(segment, segment.stat().st_size - 5)
    with caplog.at_level(logging.WARNING, logger="ingest.spool"), Spool(tmp_path, max_bytes=MB):
        pass
    assert any(
        "short_payload" in r.getMessage() and "dropped 79 bytes" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (HEADER_SIZE + 10, "crc_mismatch"),  # a payload byte
        (10, "crc_mismatch"),  # the sequence number (covered by the CRC)
        (17, "crc_mismatch"),  # the CRC itself
        (4, "crc_mismatch"),  # the length, still inside the file (covered by the CRC)
        (6, "short_payload"),  # the length, now past the end of the file: not torn, intact records follow
        (0, "bad_magic"),
    ],
)
def test_corrupt_record_in_the_middle(tmp_path: Path, where: int, reason: str) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append_many([batch(i) for i in range(5)])
    (segment,) = segments(tmp_path)
    record = HEADER_SIZE + 64
    original = segment.read_bytes()
    damaged = bytearray(original)
    damaged[2 * record + where] ^= 0x40
    segment.write_bytes(damaged)
    with Spool(tmp_path, max_bytes=MB) as spool:
        # only the damaged record (seq 3) is lost; the resync keeps the two behind it
        assert [(r.seq, r.payload) for r in spool.pending()] == [(1, batch(0)), (2, batch(1))] + [
            (seq, batch(seq - 1)) for seq in (4, 5)
        ]
        (drop,) = spool.recovery.dropped
        assert (drop.reason, drop.offset, drop.nbytes, drop.records) == (reason, 2 * record, record, 1)
        assert not drop.torn
        assert drop.kept_as is not None  # kept for forensics: this record had been acknowledged
        assert (tmp_path / drop.kept_as).read_bytes() == bytes(damaged[2 * record : 3 * record])
        assert segment.stat().st_size == 2 * record
        assert spool.append(b"new") == 6


def test_corrupt_segment_does_not_touch_later_segments(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB, segment_bytes=200) as spool:
        spool.append_many([batch(i, 80) for i in range(6)])  # 2 records per segment
    _, second, _ = segments(tmp_path)
    data = bytearray(second.read_bytes())
    data[-1] ^= 1
    second.write_bytes(data)
    with Spool(tmp_path, max_bytes=MB, segment_bytes=200) as spool:
        assert [r.seq for r in spool.pending()] == [1, 2, 3, 5, 6]
        assert spool.recovery.dropped_records == 1
        spool.confirm_many([1, 2, 3, 5, 6])
        assert segments(tmp_path) == []


def test_empty_segment_file_is_removed(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append(b"a")
    (tmp_path / "00000000000000000002.seg").write_bytes(b"")
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert payloads_of(spool) == [b"a"]
        assert len(segments(tmp_path)) == 1


def test_full_spool_raises_and_confirm_frees_room(tmp_path: Path) -> None:
    record = HEADER_SIZE + 100
    with Spool(tmp_path, max_bytes=4 * record, segment_bytes=2 * record) as spool:
        spool.append_many([batch(i, 100) for i in range(4)])
        assert spool.size_bytes == 4 * record
        assert not spool.has_room(0)
        assert not spool.has_room(100)
        with pytest.raises(SpoolFull):
            spool.append(batch(9, 100))
        with pytest.raises(SpoolError):  # SpoolFull is a SpoolError
            spool.append(b"")
        assert spool.pending_count == 4
        assert spool.confirm(1)
        assert not spool.has_room(100)  # segment 1 still holds the unconfirmed record 2
        assert spool.confirm(2)
        assert spool.segment_count == 1
        assert spool.has_room(100)
        assert spool.has_room(200, records=2)
        assert not spool.has_room(201, records=2)
        assert spool.has_room(180, records=3)
        assert not spool.has_room(181, records=3)
        with pytest.raises(SpoolFull):  # all or nothing
            spool.append_many([batch(7, 100), batch(8, 100), batch(9, 100)])
        assert spool.pending_count == 2
        assert spool.size_bytes == 2 * record == disk_bytes(tmp_path)
        assert spool.append_many([batch(7, 100), batch(8, 100)]) == [5, 6]
        assert not spool.has_room(0)


def test_failed_write_is_rolled_back(tmp_path: Path) -> None:
    """A real write error (EFBIG past RLIMIT_FSIZE) leaves no partial record behind a good one."""
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append_many([batch(1, 1000), batch(2, 1000)])
        old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, (3000, old_limit[1]))
            with pytest.raises(SpoolError, match="append failed"):
                spool.append_many([batch(3, 500), batch(4, 1000)])  # the second one crosses the limit
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
            signal.signal(signal.SIGXFSZ, old_handler)
        assert spool.pending_count == 2
        assert spool.size_bytes == disk_bytes(tmp_path) == 2 * (HEADER_SIZE + 1000)
        assert spool.append(b"after") == 5  # a fresh segment; numbers are not reused
        assert spool.pending_seqs() == [1, 2, 5]
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert spool.recovery.dropped == ()
        assert payloads_of(spool) == [batch(1, 1000), batch(2, 1000), b"after"]


def test_record_larger_than_the_spool(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=1000) as spool:
        with pytest.raises(RecordTooLarge):
            spool.append(bytes(1000))
        with pytest.raises(ValueError, match="never fit"):
            spool.append(bytes(2000))
        assert spool.append(bytes(1000 - HEADER_SIZE)) == 1


def test_out_of_order_confirm(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB, segment_bytes=3 * (HEADER_SIZE + 64)) as spool:
        spool.append_many([batch(i) for i in range(6)])  # segments [1,2,3] [4,5,6]
        assert spool.segment_count == 2
        assert spool.confirm_many([5, 3, 1]) == 3
        assert [r.seq for r in spool.pending()] == [2, 4, 6]
        assert spool.pending_bytes == 3 * 64
        assert spool.confirm(6)
        assert spool.confirm(4)  # segment 2 complete before segment 1
        assert [p.name for p in segments(tmp_path)] == ["00000000000000000001.seg"]
        assert spool.confirm(2)
        assert segments(tmp_path) == []
        assert spool.size_bytes == 0
        assert spool.pending_count == 0


def test_confirm_is_idempotent_and_checks_numbers(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append_many([b"a", b"b"])
        assert spool.confirm(1)
        assert not spool.confirm(1)
        assert spool.confirm_many([1, 1, 2, 2]) == 1
        assert not spool.confirm(2)  # its segment is gone already
        with pytest.raises(ValueError, match="never appended"):
            spool.confirm(3)
        with pytest.raises(ValueError, match="never appended"):
            spool.confirm(0)


def test_rotation_and_deletion(tmp_path: Path) -> None:
    record = HEADER_SIZE + 64
    with Spool(tmp_path, max_bytes=MB, segment_bytes=2 * record) as spool:
        for i in range(5):
            spool.append(batch(i))
        assert [p.name for p in segments(tmp_path)] == [
            "00000000000000000001.seg",
            "00000000000000000003.seg",
            "00000000000000000005.seg",
        ]
        assert [p.stat().st_size for p in segments(tmp_path)] == [2 * record, 2 * record, record]
        spool.confirm_many([1, 2])
        assert len(segments(tmp_path)) == 2
        spool.confirm(5)  # the active segment: deleted, the next append opens a new one
        assert [p.name for p in segments(tmp_path)] == ["00000000000000000003.seg"]
        assert spool.append(b"x") == 6
        assert [p.name for p in segments(tmp_path)][-1] == "00000000000000000006.seg"
        assert spool.size_bytes == disk_bytes(tmp_path)


def test_big_record_gets_its_own_segment(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB, segment_bytes=100) as spool:
        spool.append_many([b"a", bytes(500), b"b"])
        assert spool.segment_count == 3
    with Spool(tmp_path, max_bytes=MB, segment_bytes=100) as spool:
        assert payloads_of(spool) == [b"a", bytes(500), b"b"]


def test_reopen_seals_the_last_segment(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append(b"a")
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append(b"b")
        assert spool.segment_count == 2
        assert payloads_of(spool) == [b"a", b"b"]


def test_confirmed_state_survives_reopen(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append_many([batch(i) for i in range(6)])
        spool.confirm_many([1, 2, 4])
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert [r.seq for r in spool.pending()] == [3, 5, 6]
        assert spool.pending_count == 3
        assert spool.pending_bytes == 3 * 64
        assert spool.recovery.records == 6
        assert spool.recovery.pending == 3
        spool.confirm_many([3, 5, 6])
        assert segments(tmp_path) == []
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert spool.pending() == []
        assert spool.append(b"z") == 7  # numbers are never reused, even with no segment left


def test_lost_unlink_is_completed_at_open(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB, segment_bytes=2 * (HEADER_SIZE + 64)) as spool:
        spool.append_many([batch(i) for i in range(4)])
        first = segments(tmp_path)[0]
        saved = first.read_bytes()
        spool.confirm_many([3, 1, 2])
        assert not first.exists()
    first.write_bytes(saved)  # power loss: the unlink did not reach the disk
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert [r.seq for r in spool.pending()] == [4]
        assert spool.recovery.removed_segments == 1
        assert not first.exists()


def test_damaged_checkpoint_replays_instead_of_losing(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append_many([b"a", b"b", b"c"])
        spool.confirm(2)
    checkpoint = tmp_path / CHECKPOINT
    checkpoint.write_bytes(checkpoint.read_bytes()[:-1] + b"!")
    with Spool(tmp_path, max_bytes=MB) as spool:
        assert spool.recovery.checkpoint_damaged
        assert payloads_of(spool) == [b"a", b"b", b"c"]  # writes are idempotent: replaying 2 is harmless
        assert spool.append(b"d") == 4


def test_second_process_is_locked_out(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=MB)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path, max_bytes=MB)
    spool.close()
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.append(b"x")
    Spool(tmp_path, max_bytes=MB).close()


def test_damage_after_open_is_detected_on_read(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB) as spool:
        spool.append_many([b"hello", b"world"])
        (segment,) = segments(tmp_path)
        data = bytearray(segment.read_bytes())
        data[HEADER_SIZE] ^= 1
        segment.write_bytes(data)
        with pytest.raises(SpoolCorrupt):
            spool.pending()
        assert spool.read(2) == b"world"
        with pytest.raises(KeyError):
            spool.read(3)


def test_pending_limit_after_and_iteration(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=MB, segment_bytes=200) as spool:
        spool.append_many([batch(i) for i in range(7)])
        spool.confirm(3)
        assert [r.seq for r in spool.pending(limit=3)] == [1, 2, 4]
        assert [r.seq for r in spool.pending(after=2, limit=2)] == [4, 5]
        assert [r.seq for r in spool.pending(after=6)] == [7]
        assert spool.pending(after=7) == []
        assert spool.pending_seqs() == [1, 2, 4, 5, 6, 7]
        seen = []
        for record in spool:  # confirming while iterating is fine
            seen.append(record.seq)
            spool.confirm(record.seq)
        assert seen == [1, 2, 4, 5, 6, 7]
        assert spool.pending_count == 0


def test_concurrent_appends_and_confirms(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=64 * MB, segment_bytes=4096)
    appended: list[int] = []
    errors: list[BaseException] = []

    def producer(k: int) -> None:
        try:
            for i in range(30):
                appended.extend(spool.append_many([batch(k * 100 + i), batch(k * 100 + i, 10)]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def consumer() -> None:
        try:
            done = 0
            while done < 240:
                records = spool.pending(limit=10)
                done += spool.confirm_many(r.seq for r in records)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=consumer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(appended) == list(range(1, 241))
    assert spool.pending_count == 0
    assert spool.size_bytes == disk_bytes(tmp_path) == 0
    spool.close()


# -- property test: random appends, confirms, reopens and torn writes against an in-memory model -------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.binary(max_size=120), min_size=1, max_size=4)),
        st.tuples(st.just("confirm"), st.lists(st.integers(0, 50), min_size=1, max_size=3)),
        st.tuples(st.just("reopen"), st.just([])),
        st.tuples(st.just("torn"), st.lists(st.integers(1, HEADER_SIZE + 40), min_size=1, max_size=1)),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_spool_matches_a_model(ops: list[tuple[str, list[bytes] | list[int]]]) -> None:
    options = {"max_bytes": 1500, "segment_bytes": 300}
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        spool = Spool(directory, **options)
        model: dict[int, bytes] = {}  # pending records
        last_seq = 0
        try:
            for op, args in ops:
                if op == "append":
                    items = [bytes(a) for a in args if isinstance(a, bytes)]
                    need = sum(HEADER_SIZE + len(p) for p in items)
                    if spool.has_room(sum(map(len, items)), records=len(items)):
                        seqs = spool.append_many(items)
                        assert seqs[0] > last_seq
                        assert seqs == list(range(seqs[0], seqs[0] + len(items)))
                        last_seq = seqs[-1]
                        model.update(zip(seqs, items, strict=True))
                    else:
                        with pytest.raises(SpoolFull):
                            spool.append_many(items)
                        assert spool.size_bytes + need > options["max_bytes"]
                elif op == "confirm" and model:
                    keys = sorted(model)
                    chosen = {keys[int(i) % len(keys)] for i in args}
                    assert spool.confirm_many(chosen) == len(chosen)
                    for seq in chosen:
                        del model[seq]
                elif op == "reopen":
                    spool.close()
                    spool = Spool(directory, **options)
                    assert spool.recovery.dropped == ()
                elif op == "torn" and segments(directory):  # a crash while writing the next record
                    spool.close()
                    tail = (b"RLSP" + bytes(200))[: int(args[0])]
                    with segments(directory)[-1].open("ab") as f:
                        f.write(tail)
                    spool = Spool(directory, **options)
                    assert spool.recovery.dropped_bytes == len(tail)
                assert {r.seq: r.payload for r in spool.pending()} == model
                assert spool.pending_count == len(model)
                assert spool.pending_bytes == sum(map(len, model.values()))
                assert spool.size_bytes == disk_bytes(directory) <= options["max_bytes"]
            spool.close()
            spool = Spool(directory, **options)
            assert {r.seq: r.payload for r in spool.pending()} == model
            spool.confirm_many(list(model))
            assert segments(directory) == []
        finally:
            spool.close()
