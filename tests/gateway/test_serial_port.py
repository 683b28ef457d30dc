"""The serial reader on real pseudo-terminals: socat pairs, meters writing real byte streams.

SML and DSMR streams with line noise, frames split across writes, a bad CRC and a frame cut short; the
port vanishing (socat stopped: its link disappears) and returning under the same path; a D0 mode C meter
emulator answering requests, checking the rate the reader set on its end after the option select and the
300 baud of every request, with an IR head's echo, a wrong BCC and a meter that is silent at first.
Every complete frame is emitted exactly once, every broken one counted, and each decodes with the
central profiles.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from ingest.decode import MessageDecoder
from ingest.gateway.config import Meter
from ingest.gateway.frames import Frame, MeterProtocol
from ingest.gateway.serial import PortStats, run_meter
from ingest.gateway.serial.d0 import D0Timing
from ingest.profiles.loader import load_profiles
from tests.gateway import meters

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
GATEWAY = "gw-test"
NOISE = b"\x00\x1b\x1b\xffnoise\r\n"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[meters.PtyPair]:
    with meters.PtyPair(tmp_path / "line", "meter") as line:
        yield line


@pytest.fixture(scope="module")
def decoder() -> MessageDecoder:
    return MessageDecoder(load_profiles(REPO / "device_profiles"))


def meter(protocol: MeterProtocol, line: meters.PtyPair, **options: float) -> Meter:
    return Meter.model_validate(
        {"device": f"m-{protocol}", "port": line.gateway_end, "protocol": protocol, **options}
    )


async def until(condition: Callable[[], bool], what: str, *, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def reading(
    device: Meter, emitted: list[Frame], stats: PortStats, **kwargs: D0Timing
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run_meter(device, gateway=GATEWAY, emit=emitted.append, stats=stats, **kwargs))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a reader that crashed raises here


def check_decodes(decoder: MessageDecoder, frames: list[Frame], imports_kwh: list[float]) -> None:
    for frame, import_kwh in zip(frames, imports_kwh, strict=True):
        readings = decoder.decode(frame.topic, frame.payload, frame.read_ns)
        assert readings[0].fields["energy_import_kwh"] == pytest.approx(import_kwh)


def test_sml_and_p1_streams(tmp_path: Path, decoder: MessageDecoder) -> None:
    """Noise, frames split across writes, a bad CRC and a cut frame on two meters read at once."""
    sml_ok = [meters.sml_frame(n) for n in range(6)]
    p1_ok = [meters.p1_telegram(n) for n in range(6)]
    streams = {
        "sml": NOISE + sml_ok[0] + NOISE + sml_ok[1] + flip_byte(meters.sml_frame(90)) + sml_ok[2]
        + meters.sml_frame(91)[:100] + sml_ok[3] + sml_ok[4] + NOISE + sml_ok[5],
        "dsmr": NOISE + p1_ok[0] + NOISE + p1_ok[1] + flip_byte(meters.p1_telegram(90)) + p1_ok[2]
        + meters.p1_telegram(91)[:100] + p1_ok[3] + p1_ok[4] + NOISE + p1_ok[5],
    }  # fmt: skip
    expected = {"sml": sml_ok, "dsmr": p1_ok}

    async def main() -> None:
        with (
            meters.PtyPair(tmp_path / "sml", "sml") as sml_line,
            meters.PtyPair(tmp_path / "p1", "p1") as p1_line,
        ):
            lines = {"sml": sml_line, "dsmr": p1_line}
            emitted: dict[str, list[Frame]] = {"sml": [], "dsmr": []}
            stats = {"sml": PortStats(), "dsmr": PortStats()}
            async with (
                reading(meter("sml", sml_line), emitted["sml"], stats["sml"]),
                reading(meter("dsmr", p1_line), emitted["dsmr"], stats["dsmr"]),
            ):
                await until(lambda: all(s.connected for s in stats.values()), "both ports open")
                fds = {name: line.open_meter_end() for name, line in lines.items()}
                try:
                    await asyncio.gather(
                        *(
                            asyncio.to_thread(
                                meters.write_in_pieces, fds[name], streams[name], [1, 7, 64, 3, 300]
                            )
                            for name in streams
                        )
                    )
                    await until(
                        lambda: all(len(emitted[n]) >= len(expected[n]) for n in streams), "all frames"
                    )
                finally:
                    for fd in fds.values():
                        os.close(fd)
            for name in streams:
                assert [f.payload for f in emitted[name]] == expected[name]
                assert {f.topic for f in emitted[name]} == {f"lab/{GATEWAY}/{name}/m-{name}"}
                reads = [f.read_ns for f in emitted[name]]
                assert reads == sorted(reads)
                assert stats[name].frames == len(expected[name])
                assert stats[name].broken == 2  # the bad CRC, the cut frame
                assert stats[name].discarded_bytes >= 3 * len(NOISE)
                assert stats[name].last_frame_ns == reads[-1]
                assert (stats[name].errors, stats[name].reconnects) == (0, 0)
            check_decodes(decoder, emitted["sml"], [meters.sml_import_kwh(n) for n in range(6)])
            check_decodes(decoder, emitted["dsmr"], [meters.p1_import_kwh(n) for n in range(6)])

    asyncio.run(main())


def flip_byte(frame: bytes) -> bytes:
    at = len(frame) // 2
    while frame[at] in b"\x1b\r\n!/" or frame[at] ^ 1 in b"\x1b\r\n!/":
        at += 1
    return frame[:at] + bytes([frame[at] ^ 1]) + frame[at + 1 :]


def test_port_vanishes_and_returns(pair: meters.PtyPair, decoder: MessageDecoder) -> None:
    """socat stopped mid-frame: the link is gone, the reader waits; socat again under the same path:
    the reader reopens and goes on. The cut frame is counted broken, no frame emitted twice."""
    frames = [meters.sml_frame(n) for n in range(6)]

    async def write(data: bytes) -> None:
        fd = pair.open_meter_end()
        try:
            await asyncio.to_thread(meters.write_in_pieces, fd, data, [50])
            await asyncio.to_thread(meters.wait_drained, pair, fd)
        finally:
            os.close(fd)

    async def main() -> None:
        emitted: list[Frame] = []
        stats = PortStats()
        async with reading(meter("sml", pair), emitted, stats) as task:
            await until(lambda: stats.connected, "port open")
            await write(b"".join(frames[:3]) + frames[3][:120])
            await until(lambda: len(emitted) == 3, "three frames")
            pair.stop()
            assert not pair.gateway_end.exists()
            await until(lambda: not stats.connected, "the reader notices the port is gone")
            await asyncio.sleep(0.3)  # a few reopen attempts against the missing path
            assert not task.done()
            pair.start()
            await until(lambda: stats.connected, "reopened", within_s=40)
            await write(b"".join(frames[4:]))
            await until(lambda: len(emitted) == 5, "frames after the return")
        assert [f.payload for f in emitted] == frames[:3] + frames[4:]
        assert stats.reconnects == 1
        assert stats.broken == 1  # frame 3, cut by the port vanishing
        assert stats.errors == 1  # the port lost
        check_decodes(decoder, emitted, [meters.sml_import_kwh(n) for n in (0, 1, 2, 4, 5)])

    asyncio.run(main())


def test_d0_mode_c_session(pair: meters.PtyPair, decoder: MessageDecoder) -> None:
    """A mode C meter offering 9600 baud, the reader allowing 4800: the option select asks for 4800 and
    the reader's end runs at 4800 when the data comes, at 300 for every request. The IR head echoes, the
    first request goes unanswered (an error, no crash), the second readout has a wrong BCC (broken)."""
    emulator = meters.D0Meter(pair, offer="5", bad_bcc=frozenset({1}), echo=True, silent_first=1).start()
    timing = D0Timing(answer_s=1.0, reaction_s=0.2, idle_s=1.0)

    async def main() -> tuple[list[Frame], PortStats]:
        emitted: list[Frame] = []
        stats = PortStats()
        device = meter("d0", pair, d0_max_baud=4800, d0_interval_s=1)
        async with reading(device, emitted, stats, d0_timing=timing):
            await until(lambda: len(emitted) == 3 or bool(emulator.errors), "three readouts", within_s=20)
        return emitted, stats

    try:
        emitted, stats = asyncio.run(main())
    finally:
        emulator.stop()
    assert emulator.errors == []
    seen = emulator.seen
    assert seen.sent_bad == [1]
    assert [f.payload for f in emitted] == [meters.d0_readout(n) for n in seen.sent[:3]]
    assert {f.topic for f in emitted} == {f"lab/{GATEWAY}/dsmr/m-d0"}
    assert set(seen.options) == {b"\x06040\r\n"}
    assert set(seen.data_bauds) == {4800}
    assert set(seen.request_bauds) == {300}
    assert stats.errors == 1  # the unanswered request
    assert stats.broken == 1, (stats, seen)  # the wrong BCC
    assert stats.frames == 3
    check_decodes(decoder, emitted, [meters.d0_import_kwh(n) for n in seen.sent[:3]])


def test_unusable_and_missing_ports(tmp_path: Path) -> None:
    """A path that is no terminal is an error (counted and logged once, retried with backoff); a path that
    does not exist yet is waited for and read once it appears."""
    not_a_tty = tmp_path / "file"
    not_a_tty.write_bytes(b"")
    later = meters.PtyPair(tmp_path / "later", "meter")

    async def main() -> None:
        file_stats, later_stats = PortStats(), PortStats()
        emitted: list[Frame] = []
        async with (
            reading(Meter(device="m-file", port=not_a_tty, protocol="sml"), [], file_stats) as file_task,
            reading(meter("sml", later), emitted, later_stats) as later_task,
        ):
            await asyncio.sleep(0.6)
            assert (file_stats.errors, file_stats.connected) == (1, False)
            assert (later_stats.errors, later_stats.connected) == (0, False)
            with later:
                await until(lambda: later_stats.connected, "the port appeared", within_s=40)
                fd = later.open_meter_end()
                try:
                    await asyncio.to_thread(os.write, fd, meters.sml_frame(1))
                    await until(lambda: len(emitted) == 1, "a frame")
                finally:
                    os.close(fd)
            assert not file_task.done()
            assert not later_task.done()
        assert later_stats.reconnects == 0
        assert [f.payload for f in emitted] == [meters.sml_frame(1)]

    asyncio.run(main())


def test_refused_emit_costs_that_frame_only(pair: meters.PtyPair) -> None:
    frames = [meters.sml_frame(n) for n in range(3)]
    emitted: list[Frame] = []

    def emit(frame: Frame) -> None:
        if frame.payload == frames[0]:
            raise OSError("outbox refused")
        emitted.append(frame)

    async def main() -> PortStats:
        stats = PortStats()
        task = asyncio.create_task(run_meter(meter("sml", pair), gateway=GATEWAY, emit=emit, stats=stats))
        try:
            await until(lambda: stats.connected, "port open")
            fd = pair.open_meter_end()
            try:
                await asyncio.to_thread(os.write, fd, b"".join(frames))
                await until(lambda: len(emitted) == 2, "the other frames")
            finally:
                os.close(fd)
            assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return stats

    stats = asyncio.run(main())
    assert [f.payload for f in emitted] == frames[1:]
    assert (stats.frames, stats.errors, stats.reconnects) == (3, 1, 0)


def test_d0_port_vanishes_and_returns(pair: meters.PtyPair, decoder: MessageDecoder) -> None:
    """The D0 head unplugged between readouts and plugged in again: the reader reopens at 300 baud and
    asks again."""
    timing = D0Timing(answer_s=0.5, reaction_s=0.2, idle_s=1.0)

    async def main() -> tuple[list[Frame], PortStats, list[meters.D0Meter]]:
        emitted: list[Frame] = []
        stats = PortStats()
        emulators = [meters.D0Meter(pair, offer="4").start()]
        device = meter("d0", pair, d0_max_baud=9600, d0_interval_s=1)
        async with reading(device, emitted, stats, d0_timing=timing):
            await until(lambda: len(emitted) == 1, "a readout")
            emulators[0].stop()
            pair.stop()
            await until(lambda: not stats.connected, "the reader notices the port is gone")
            pair.start()
            emulators.append(meters.D0Meter(pair, offer="4").start())
            await until(lambda: len(emitted) == 2, "a readout after the return", within_s=40)
            emulators[1].stop()
        return emitted, stats, emulators

    emitted, stats, emulators = asyncio.run(main())
    assert [e.errors for e in emulators] == [[], []]
    first, second = emulators
    assert [f.payload for f in emitted] == [meters.d0_readout(0, offer="4")] * 2
    assert second.seen.request_bauds[0] == 300
    assert set(first.seen.data_bauds + second.seen.data_bauds) == {4800}
    assert stats.reconnects == 1
    check_decodes(decoder, emitted, [meters.d0_import_kwh(0)] * 2)
