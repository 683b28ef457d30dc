"""The gateway's outbox against real files: SIGKILL recovery, the full-disk policy, the sending order."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest.gateway.frames import Frame
from ingest.gateway.outbox import Outbox, decode, encode

READ_NS = 1_764_320_400_000_000_000  # 2025-11-28T09:00:00Z


def frame(n: int, *, size: int = 200) -> Frame:
    return Frame(f"lab/gw-t/sml/m{n % 10}", bytes([n % 251]) * size, READ_NS + n * 1_000_000_000)


def drain(outbox: Outbox, limit: int = 100_000) -> list[tuple[int, Frame]]:
    return outbox.take(limit)


def test_record_encoding_round_trips() -> None:
    f = Frame("lab/gw-ä/dsmr/p1", b"\x00\x1b\x1b binary \xff", 2**63 + 5)
    assert decode(encode(f)) == f
    assert len(encode(f)) == 10 + len(f.topic.encode()) + len(f.payload)


def test_put_take_confirm_commit_and_reopen(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o", max_bytes=10 << 20) as outbox:
        seqs = [outbox.put(frame(n)) for n in range(50)]
        taken = drain(outbox)
        assert [s for s, _ in taken] == seqs
        assert [f for _, f in taken] == [frame(n) for n in range(50)]
        assert drain(outbox) == []  # each record is handed out once
        outbox.confirm(seqs[:30])
        assert outbox.stats().depth == 20
        fsyncs = outbox.stats().fsyncs
        outbox.commit()
        stats = outbox.stats()
        assert stats.fsyncs > fsyncs  # the group commit: segment, checkpoint
        assert stats.depth == 20
        assert stats.oldest_read_ns == frame(30).read_ns
        assert stats.bytes_written == sum(len(encode(frame(n))) + 20 for n in range(50))
    with Outbox(tmp_path / "o", max_bytes=10 << 20) as outbox:
        assert [f for _, f in drain(outbox)] == [frame(n) for n in range(30, 50)]


def test_put_does_not_fsync_but_put_durable_does(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o", max_bytes=10 << 20) as outbox:
        outbox.put(frame(0))  # creates the segment (and fsyncs the directory for it)
        before = outbox.stats().fsyncs
        for n in range(1, 100):
            outbox.put(frame(n))
        assert outbox.stats().fsyncs == before
        asyncio.run(outbox.put_durable([frame(100), frame(101)]))
        assert outbox.stats().fsyncs == before + 1  # one fsync for the batch (the refused store has none)


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ingest.gateway.frames import Frame
    from ingest.gateway.outbox import Outbox

    outbox = Outbox(Path(sys.argv[1]), max_bytes=50 << 20, commit_interval_s=3600)
    n = 0
    while True:
        seq = outbox.put(Frame(f"lab/gw-k/sml/m{n % 10}", b"x" * (n % 300), n + 1))
        if n == 100:  # the first 100 acknowledged and committed
            outbox.confirm(range(seq - 100, seq))
            outbox.commit()
        print(n, flush=True)
        n += 1
    """
)


def test_everything_put_and_not_confirmed_survives_sigkill(tmp_path: Path) -> None:
    directory = tmp_path / "o"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        last = -1
        for line in child.stdout:  # every printed number was put (its write() returned) before the print
            last = int(line)
            if last >= 3000:
                break
        child.kill()  # SIGKILL: no commit, no close
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    with Outbox(directory, max_bytes=50 << 20) as outbox:
        recovered = [f.read_ns - 1 for _, f in drain(outbox)]
    # every frame put after the committed 100, in order, at least up to the last one seen printed (the
    # child went on putting until the kill reached it)
    assert len(recovered) >= last - 100 + 1
    assert recovered == list(range(100, 100 + len(recovered)))


def test_full_outbox_drops_the_oldest_segment_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ingest.gateway.outbox")
    count = 3000
    with Outbox(tmp_path / "o", max_bytes=256 << 10, segment_bytes=64 << 10) as outbox:
        for n in range(count):
            outbox.put(frame(n))  # never blocks, never raises
        stats = outbox.stats()
        assert stats.bytes <= 256 << 10
        assert stats.dropped_full > 0
        assert stats.dropped_full + stats.depth == count
        kept = [f for _, f in drain(outbox)]
        assert kept == [frame(n) for n in range(count - len(kept), count)]  # the newest, in order
    drops = [r.getMessage() for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert drops
    assert "2025-11-28T09:00:00Z to" in drops[0]
    assert sum(int(m.split("dropped the oldest ")[1].split()[0]) for m in drops) == stats.dropped_full


def test_acknowledged_records_are_not_counted_as_dropped(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o", max_bytes=256 << 10, segment_bytes=64 << 10) as outbox:
        for n in range(3000):
            seq = outbox.put(frame(n))
            outbox.confirm([s for s, _ in outbox.take(10)])  # a connected uplink acknowledging at once
            assert seq
        assert outbox.stats().dropped_full == 0


def test_live_frames_go_first_then_the_backlog_in_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o", max_bytes=10 << 20, live_limit=5) as outbox:
        for n in range(20):  # the uplink is away: 5 stay in memory, the rest is backlog on disk
            outbox.put(frame(n))
        first = [f.read_ns for _, f in outbox.take(8)]
        # the 5 newest in memory go first, then the backlog from its oldest
        assert first == [frame(n).read_ns for n in (15, 16, 17, 18, 19, 0, 1, 2)]
        outbox.put(frame(20))  # live during the drain: next in line, ahead of the backlog
        second = [f.read_ns for _, f in outbox.take(3)]
        assert second == [frame(n).read_ns for n in (20, 3, 4)]
        rest = [f.read_ns for _, f in outbox.take(100)]
        assert rest == [frame(n).read_ns for n in range(5, 15)]  # nothing handed out twice
        assert outbox.take(100) == []


def test_refused_frames_are_kept_apart_and_can_be_requeued(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o", max_bytes=10 << 20) as outbox:
        seqs = [outbox.put(frame(n)) for n in range(3)]
        taken = outbox.take(10)
        outbox.refuse(taken[1][0], taken[1][1], 0x87)
        outbox.confirm([seqs[0], seqs[2]])
        outbox.commit()
        assert outbox.stats().depth == 0
        assert outbox.stats().refused == 1
    with Outbox(tmp_path / "o", max_bytes=10 << 20) as outbox:
        assert outbox.take(10) == []
        assert outbox.refused_frames() == [(0x87, frame(1))]
        assert outbox.requeue_refused() == 1
        assert [f for _, f in outbox.take(10)] == [frame(1)]
        assert outbox.stats().refused == 0
