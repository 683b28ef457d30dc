"""Real meter frames for the gateway bench, built fast: a 24-hour backlog of 10 meters is 864,000 frames.

Seven eHZ meters send binary SML (secIndex sensor time, so the central decoder stamps their readings with
the gateway's read time), three EasyMeter Q3D send D0 push telegrams (no CRC, no time): the shapes of
``device_profiles/sml.yaml`` and ``dsmr.yaml``. Building an SML frame with ``simulators.smlframe`` costs
~0.5 ms (pure-Python CRCs); here one frame per meter is built once with it and the changing values
(import register, power, secIndex) are patched in, the two CRC-16/X-25 recomputed with ``binascii.crc_hqx``
on bit-reversed bytes (X-25 is the reflected CCITT CRC): a few microseconds per frame.
"""

from __future__ import annotations

import binascii
import random
from collections.abc import Iterator

from ingest.gateway.frames import Frame, meter_topic
from simulators import smlframe as sml

_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
_ENERGY, _POWER, _SECONDS = 0xA1B2C3D4E5, 0x3A6B5C4D, 0x5E6F7081  # sentinels, found in the template


def crc_x25(data: bytes | bytearray) -> int:
    crc = binascii.crc_hqx(data.translate(_REVERSED), 0xFFFF)
    return int(f"{crc:016b}"[::-1], 2) ^ 0xFFFF


class SmlMeter:
    """An eHZ: import register (0.1 Wh), signed power (W), secIndex; the frame patched per reading."""

    def __init__(self, number: int) -> None:
        server_id = bytes.fromhex("0a01454d48") + number.to_bytes(5, "big")
        entries = [
            sml.Entry("0100000009ff", sml.octets(server_id)),
            sml.Entry("0100010800ff", sml.unsigned(_ENERGY, 5), unit=30, scaler=-1),
            sml.Entry("0100100700ff", sml.signed(_POWER, 4), unit=27, scaler=0),
        ]
        body = sml.sml_file(server_id, entries, sensor_time=sml.sec_index(_SECONDS))
        second = body.index(b"\x76\x03\x11\x02")  # the GetListResponse message (transaction 11 02)
        third = body.index(b"\x76\x03\x11\x03")
        self._open, self._close = body[:second], body[third:]
        self._head = bytearray(body[second : third - 4])  # without its CRC (63 xx xx) and end of message
        self._at = {
            name: bytes(self._head).index(value.to_bytes(size, "big"))
            for name, value, size in (("energy", _ENERGY, 5), ("power", _POWER, 4), ("seconds", _SECONDS, 4))
        }

    def frame(self, energy_dwh: int, power_w: int, seconds: int) -> bytes:
        head, at = self._head, self._at
        head[at["energy"] : at["energy"] + 5] = energy_dwh.to_bytes(5, "big")
        head[at["power"] : at["power"] + 4] = power_w.to_bytes(4, "big", signed=True)
        head[at["seconds"] : at["seconds"] + 4] = seconds.to_bytes(4, "big")
        message = bytes(head) + b"\x63" + crc_x25(head).to_bytes(2, "big") + b"\x00"
        body = self._open + message + self._close
        if sml.ESCAPE in body:  # a value that looks like the escape sequence: the slow, general way
            return sml.transport(body)
        padding = -len(body) % 4
        frame = sml.START + body + b"\x00" * padding + sml.ESCAPE + b"\x1a" + bytes([padding])
        return frame + crc_x25(frame).to_bytes(2, "little")


def d0_telegram(serial: int, import_kwh: float, power_w: float) -> bytes:
    """An EasyMeter Q3D push telegram (D0, no CRC, no meter time)."""
    return (
        "/ESY5Q3DA1004 V3.04\r\n\r\n"
        f"1-0:0.0.0*255({serial:08d})\r\n"
        f"1-0:1.8.0*255({import_kwh:016.7f}*kWh)\r\n"
        "1-0:2.8.0*255(00000000.0000000*kWh)\r\n"
        f"1-0:1.7.255*255({power_w:09.2f}*W)\r\n"
        "1-0:96.5.5*255(82)\r\n"
        f"0-0:96.1.255*255(1ESY11{serial:08d})\r\n"
        "!\r\n"
    ).encode("ascii")


def backlog(gateway: str, *, meters: int, seconds: int, start_ns: int, seed: int = 1) -> Iterator[Frame]:
    """One frame per meter and second, in the order a gateway reads them (second by second)."""
    rng = random.Random(seed)
    sml_meters = [SmlMeter(n) for n in range(meters)]
    energy_dwh = [rng.randrange(10**8, 10**9) for _ in range(meters)]  # 0.1 Wh
    power = [rng.uniform(100, 3000) for _ in range(meters)]
    topics = [
        meter_topic(gateway, "sml" if n < meters * 7 // 10 else "d0", f"m{n:02d}") for n in range(meters)
    ]
    for second in range(seconds):
        read_ns = start_ns + second * 1_000_000_000
        for n in range(meters):
            power[n] = min(9000.0, max(50.0, power[n] + rng.uniform(-50, 50)))
            energy_dwh[n] += round(power[n] * 10 / 3600)
            if n < meters * 7 // 10:
                payload = sml_meters[n].frame(energy_dwh[n], round(power[n]), 1_000_000 + second)
            else:
                payload = d0_telegram(60_327_000 + n, energy_dwh[n] / 10_000, power[n])
            yield Frame(topics[n], payload, read_ns + n * 1000)
