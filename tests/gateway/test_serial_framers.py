"""The serial framers, pure: SML transport, DSMR P1, the D0 readout block and option select.

Streams of real frames (the simulators' encoders) with line noise, split at every byte boundary and at
random ones, cut short, with bad checksums: every complete frame comes out once and unchanged, every
broken one is counted, noise is counted and never kept beyond the size bound. The frames decode with the
central decoder to the readings they were built from.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.checksums import bcc
from ingest.decode import MessageDecoder
from ingest.gateway.serial.d0 import BlockFramer, option_select
from ingest.gateway.serial.framing import FrameCounters
from ingest.gateway.serial.p1 import P1Framer
from ingest.gateway.serial.sml import START, SmlFramer
from ingest.profiles.loader import load_profiles
from tests.gateway import meters

REPO = Path(__file__).resolve().parents[2]
NOISE = b"\x00\xff\x1b\x1b\x01garbage\r\n\x1a"  # escape bytes but no start sequence
P1_NOISE = b"AT+OK\r\n\x00\xffxx!12\r\n"  # no '/', a '!' line outside a telegram


def sml_frames() -> list[bytes]:
    return [
        meters.sml_frame(1),
        meters.sml_frame(2, kermit=True),
        *(meters.sml_frame_with_escapes(3, offset) for offset in range(4)),
        meters.sml_frame(4),
    ]


def p1_frames() -> list[bytes]:
    return [meters.p1_telegram(1), meters.d0_push_telegram(2), meters.p1_telegram(3)]


def feed_all(framer: SmlFramer | P1Framer, pieces: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for piece in pieces:
        out += framer.feed(piece)
    return out


@pytest.mark.parametrize(
    ("make", "frames", "noise"),
    [(SmlFramer, sml_frames(), NOISE), (P1Framer, p1_frames(), P1_NOISE)],
    ids=["sml", "p1"],
)
def test_split_at_every_byte_boundary(
    make: type[SmlFramer] | type[P1Framer], frames: list[bytes], noise: bytes
) -> None:
    stream = b"".join(noise + frame for frame in frames) + noise
    for cut in range(len(stream) + 1):
        framer = make()
        assert feed_all(framer, [stream[:cut], stream[cut:]]) == frames, cut
        assert framer.counters.broken == 0
        assert framer.counters.discarded_bytes + len(framer._buf) == len(noise) * (len(frames) + 1)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.binary(max_size=40)), min_size=1, max_size=6),
    st.lists(st.integers(1, 64), min_size=1, max_size=20),
    st.sampled_from(["sml", "p1"]),
)
def test_noise_and_random_pieces(plan: list[tuple[int, bytes]], sizes: list[int], protocol: str) -> None:
    """Arbitrary noise between frames (no start sequence; for P1 no '/'), arbitrary read sizes."""
    pool = sml_frames() if protocol == "sml" else p1_frames()
    framer: SmlFramer | P1Framer = SmlFramer() if protocol == "sml" else P1Framer()
    frames = [pool[index % len(pool)] for index, _ in plan]
    noises = [without(noise, START[:5] if protocol == "sml" else b"/") for _, noise in plan]
    stream = b"".join(noise + frame for noise, frame in zip(noises, frames, strict=True))
    pieces, at, i = [], 0, 0
    while at < len(stream):
        pieces.append(stream[at : at + sizes[i % len(sizes)]])
        at, i = at + sizes[i % len(sizes)], i + 1
    assert feed_all(framer, pieces) == frames
    assert framer.counters.broken == 0
    assert framer.counters.discarded_bytes == sum(map(len, noises))


def without(data: bytes, needle: bytes) -> bytes:
    while needle in data:
        data = data.replace(needle, b"")
    return data


def flip(frame: bytes, at: int) -> bytes:
    """One bit of ``frame`` flipped at ``at`` (or the next byte where it makes no 1b or CR/LF)."""
    while frame[at] in (0x1B, 0x1A, 0x0D, 0x0A, 0x21, 0x2F) or frame[at] ^ 1 in (0x1B, 0x0A, 0x21, 0x2F):
        at += 1
    return frame[:at] + bytes([frame[at] ^ 1]) + frame[at + 1 :]


@pytest.mark.parametrize("protocol", ["sml", "p1"])
def test_bad_checksum_is_counted_and_its_neighbours_kept(protocol: str) -> None:
    frames = sml_frames() if protocol == "sml" else p1_frames()
    framer = SmlFramer() if protocol == "sml" else P1Framer()
    bad = flip(frames[0], len(frames[0]) // 2)
    assert feed_all(framer, [frames[2], bad, frames[2]]) == [frames[2], frames[2]]
    assert framer.counters.broken == 1
    assert framer.counters.discarded_bytes == len(bad)


def test_sml_frame_cut_short_at_every_length() -> None:
    """A frame cut off anywhere (a read head moved, a byte run lost) is broken; the next one comes out."""
    for cut_frame in (meters.sml_frame(1), meters.sml_frame_with_escapes(7, 1)):
        following = meters.sml_frame(2)
        for cut in range(1, len(cut_frame)):
            framer = SmlFramer()
            assert framer.feed(cut_frame[:cut] + following) == [following], cut
            assert framer.counters.broken == (1 if cut >= len(START) else 0), cut


def test_p1_telegram_cut_short_at_every_length() -> None:
    cut_frame, following = meters.p1_telegram(1), meters.p1_telegram(2)
    for cut in range(1, len(cut_frame)):
        framer = P1Framer()
        assert framer.feed(cut_frame[:cut] + following) == [following], cut
        # before its header line ends, a cut telegram is noise on the next header's line
        assert framer.counters.broken == (1 if b"\n" in cut_frame[:cut] else 0), cut
        assert framer.counters.discarded_bytes == cut


def test_p1_noise_with_a_slash_costs_no_telegram() -> None:
    telegram = meters.p1_telegram(5)
    framer = P1Framer()
    out = framer.feed(b"xx/yy" + telegram + b"ab/\r\n" + telegram + b"/" + telegram)
    assert out == [telegram] * 3
    # "/\r\n" began a telegram that the next header line cut short; a '/' on the header's own line is noise
    assert framer.counters.broken == 1
    assert framer.counters.discarded_bytes == len(b"xx/yy") + len(b"ab/\r\n") + 1


def test_p1_end_line_that_is_no_end_line_is_broken() -> None:
    telegram = meters.p1_telegram(5)
    body = telegram[: telegram.index(b"!")]
    framer = P1Framer()
    assert framer.feed(body + b"!12\r\n" + telegram) == [telegram]
    assert framer.counters.broken == 1


@pytest.mark.parametrize("make", [SmlFramer, P1Framer])
def test_noise_never_grows_the_buffer(make: type[SmlFramer] | type[P1Framer]) -> None:
    framer = make(max_frame=4096)
    junk = random.Random(7).randbytes(200_000).replace(START[:4], b"").replace(b"\n", b"")
    for at in range(0, len(junk), 1000):
        framer.feed(junk[at : at + 1000])
        assert len(framer._buf) <= 4096 + 1000
    begun = START if make is SmlFramer else b"/header\r\n"
    framer.feed(begun)
    for at in range(0, len(junk), 1000):
        framer.feed(junk[at : at + 1000])
        assert len(framer._buf) <= 4096 + 1000
    assert framer.counters.broken >= 1
    framer.reset()
    total = len(junk) * 2 + len(begun)
    assert framer.counters.discarded_bytes == total
    frame = sml_frames()[0] if make is SmlFramer else p1_frames()[0]
    assert framer.feed(frame) == [frame]


def test_reset_counts_a_frame_begun() -> None:
    framer = SmlFramer()
    frame = meters.sml_frame(1)
    assert framer.feed(frame[:50]) == []
    framer.reset()
    assert (framer.counters.broken, framer.counters.discarded_bytes) == (1, 50)
    assert framer.feed(frame[50:] + frame) == [frame]


def test_d0_block_framer() -> None:
    counters = FrameCounters()
    framer = BlockFramer(counters=counters)
    good, bad = meters.d0_block(1), meters.d0_block(2, bad_bcc=True)
    no_end = b"\x02" + b"1.8.0(1*kWh)\r\n\x03"
    no_end += bytes([bcc(no_end[1:])])
    stream = b"\x06050\r\n" + bad + good + no_end + good
    out = [block for at in range(len(stream)) for block in framer.feed(stream[at : at + 1])]
    assert out == [good, good]
    assert counters.broken == 2
    assert counters.discarded_bytes == 6 + len(bad) + len(no_end)


@pytest.mark.parametrize(
    ("offer", "max_baud", "ack", "baud"),
    [
        ("5", 9600, b"\x06050\r\n", 9600),
        ("5", 4800, b"\x06040\r\n", 4800),
        ("6", 5000, b"\x06040\r\n", 4800),
        ("3", 19200, b"\x06030\r\n", 2400),
        ("0", 9600, b"\x06000\r\n", 300),
        ("5", 100, b"\x06000\r\n", 300),
        ("E", 1200, None, 9600),  # mode B: the meter switches on its own
        ("x", 9600, None, None),  # mode A: no switch
    ],
)
def test_option_select(offer: str, max_baud: int, ack: bytes | None, baud: int | None) -> None:
    assert option_select(offer, max_baud) == (ack, baud)


def test_frames_decode_with_the_central_profiles() -> None:
    decoder = MessageDecoder(load_profiles(REPO / "device_profiles"))
    received = 1_764_320_400 * 10**9
    cases = [
        ("sml", meters.sml_frame(9), meters.sml_import_kwh(9)),
        ("dsmr", meters.p1_telegram(9), meters.p1_import_kwh(9)),
        ("dsmr", meters.d0_push_telegram(9), 1009.0),
        ("dsmr", meters.d0_readout(9), meters.d0_import_kwh(9)),
    ]
    for segment, frame, import_kwh in cases:
        framer = SmlFramer() if segment == "sml" else P1Framer()
        if frame.startswith(meters.IDENTIFICATION):
            emitted = frame  # the D0 session emits identification + block (tests/gateway/test_serial_port.py)
        else:
            (emitted,) = framer.feed(b"noise" + frame)
        readings = decoder.decode(f"lab/gw-test/{segment}/m1", emitted, received)
        assert readings[0].measurement == "electricity"
        assert readings[0].fields["energy_import_kwh"] == pytest.approx(import_kwh)


def test_random_stream_smoke() -> None:
    """os.urandom noise in bulk never raises and never yields a frame that fails its checksum."""
    sml, p1 = SmlFramer(), P1Framer()
    for _ in range(50):
        junk = os.urandom(2000)
        for frame in sml.feed(junk):
            assert SmlFramer().feed(frame) == [frame]
        for frame in p1.feed(junk):
            assert P1Framer().feed(frame) == [frame]


def test_sml_frames_back_to_back_whatever_their_crc() -> None:
    """3000 consecutive frames, 26 of them with a 1b byte in the CRC right before the next start."""
    frames = [meters.sml_frame(n) for n in range(3000)]
    assert any(0x1B in frame[-2:] for frame in frames)
    framer = SmlFramer()
    assert framer.feed(b"".join(frames)) == frames
    assert (framer.counters.broken, framer.counters.discarded_bytes) == (0, 0)
