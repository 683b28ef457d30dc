"""sml: raw binary SML transport frames (SML 1.04, BSI TR-03109-1) of German eHZ/mME meters.

A frame is ``1b1b1b1b 01010101``, the SML messages (OpenResponse, GetListResponse with the value list,
CloseResponse), then ``1b1b1b1b 1a <padding> <CRC16>``. The transport CRC (X-25; ``kermit`` for the
few meters that use it) is checked. Each list entry names its OBIS code, unit (DLMS unit code) and
scaler: value × 10^scaler in the SML unit (Wh, W, V, A, Hz) is converted to the canonical unit.
Gateways that publish the frame as hex text are read too.

Own parser (:mod:`ingest.decoders.sml_parse`), not smllib (measured with bench/sml_decode.py: the
decoder took 113 µs per frame of the gateway bench's eHZ and 269 µs for the 13-entry example with
smllib, most of it building smllib's objects; 14 and 29 µs now; and smllib had to be bounded against
lists that claim millions of elements). smllib serves the tests as an oracle instead (same readings,
same reasons). Where a frame's messages do not parse, the list entries are scanned for, as smllib's
fallback did; message types other than Open/Close/GetList.Res are skipped (smllib fell back to that
scan for them, losing the sensor time).

options:
  crc: x25        # transport CRC: x25 (SML standard) or kermit
"""

from __future__ import annotations

import math
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.obis_codes import base_unit, electricity_fields, obis_from_hex, target_unit, unit_factor
from ingest.decoders.sml_parse import (
    START,
    CrcMismatch,
    CrcName,
    ListEntry,
    SmlError,
    Time,
    Timestamp,
    parse_messages,
    scan_entries,
    transport_frames,
)
from ingest.readings import DecodeRejected, Reading
from ingest.timeparse import device_time

# DLMS/COSEM unit codes (IEC 62056-62) of the quantities stored; 255 is "count" (no unit)
SML_UNITS = {27: "W", 30: "Wh", 33: "A", 35: "V", 44: "Hz", 255: "1"}
_HEX_START = START.hex().encode()


class SmlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    crc: CrcName = Field("x25", description="CRC of the SML transport frame")


def _binary(payload: bytes) -> bytes:
    """The payload, or the frame a gateway sent as hex text."""
    if START in payload:
        return payload
    text = b"".join(payload.split()).lower()
    if _HEX_START in text:
        start = text.index(_HEX_START)
        try:
            return bytes.fromhex(text[start : start + (len(text) - start) // 2 * 2].decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            raise DecodeRejected("invalid_payload", "SML hex text with non-hex characters") from None
    return payload


# A meter sends one frame per second or so and a gateway publishes each on its own; a few buffered ones
# together are fine. Hundreds in one message are no meter's (bench/poison.py).
MAX_FRAMES = 32


def _frames(payload: bytes, crc: CrcName) -> list[bytes]:
    frames: list[bytes] = []
    try:
        for frame in transport_frames(payload, crc):
            if len(frames) == MAX_FRAMES:
                raise DecodeRejected("too_complex", f"more than {MAX_FRAMES} SML frames in one message")
            frames.append(frame)
    except CrcMismatch as exc:
        raise DecodeRejected("crc_mismatch", str(exc)) from None
    if not frames:
        raise DecodeRejected("invalid_payload", "no complete SML frame (1b1b1b1b 01010101 … 1b1b1b1b 1a)")
    return frames


def _entries(frame: bytes) -> tuple[list[ListEntry], Time]:
    """The value list entries and the sensor time of one frame."""
    try:
        return parse_messages(frame)
    except SmlError:  # messages that do not parse: scan for the list entries
        try:
            return scan_entries(frame), None
        except SmlError as exc:
            raise DecodeRejected("invalid_payload", f"SML messages: {exc}") from None


@lru_cache(maxsize=1024)  # a meter sends the same dozen codes and units in every frame
def _register(obis: bytes, unit: int | None) -> tuple[str, float | None] | None:
    """(C.D.E, factor from ``unit`` into its canonical unit, None where it does not convert) of a current
    electricity register this profile stores; None for any other code."""
    parsed = obis_from_hex(obis.hex())
    target = None if parsed is None else target_unit(parsed.cde)
    if parsed is None or target is None or parsed.medium != 1 or not parsed.current:
        return None
    name = base_unit(parsed.cde) if unit is None else SML_UNITS.get(unit)
    try:
        return parsed.cde, None if name is None else unit_factor(parsed.cde, name)
    except ValueError:
        return parsed.cde, None


def _scaled(raw: int, scaler: int) -> float:
    """raw × 10^scaler, correctly rounded (as Decimal would: both operands exact, one IEEE operation)."""
    if -22 <= scaler <= 22 and -(2**53) < raw < 2**53:
        return float(raw * 10**scaler) if scaler >= 0 else raw / 10**-scaler
    return float(Decimal(raw).scaleb(scaler))


def _value(entry: ListEntry, cde: str, factor: float | None) -> float:
    raw = entry.value
    if type(raw) is not int:  # bool, octets, a time
        shown = raw.hex() if isinstance(raw, bytes) else raw
        raise DecodeRejected("invalid_value", f"{cde}: {str(shown)[:40]!r} is not a number")
    if factor is None:
        raise DecodeRejected(
            "invalid_value", f"{cde}: DLMS unit code {entry.unit} does not convert to {target_unit(cde)}"
        )
    scaler = entry.scaler or 0
    try:
        number = _scaled(raw, scaler) * factor
    except ArithmeticError as exc:
        raise DecodeRejected("invalid_value", f"{cde}: {exc}") from None
    if not math.isfinite(number):
        raise DecodeRejected("invalid_value", f"{cde}: {raw} × 10^{scaler} is not a finite number")
    return number


def _time(sensor_time: Time, received_ns: int) -> tuple[int, Literal["device", "received"]]:
    if isinstance(sensor_time, Timestamp):
        return device_time(sensor_time.seconds * 1_000_000_000, received_ns=received_ns, fmt="epoch_ns")
    # an int is a secIndex (seconds since an arbitrary start) or, from a few meters, epoch seconds
    return device_time(sensor_time, received_ns=received_ns)


def build(options: SmlOptions, tz: str) -> DecodeFn:  # noqa: ARG001  SML times are UTC
    crc = options.crc

    def decode(message: DecodeInput) -> list[Reading]:
        readings: list[Reading] = []
        for frame in _frames(_binary(message.payload), crc):
            entries, sensor_time = _entries(frame)
            values: dict[str, float] = {}
            for entry in entries:
                register = _register(entry.obis, entry.unit)
                if register is None:
                    continue
                cde, factor = register
                raw, scaler = entry.value, entry.scaler or 0
                if type(raw) is int and factor is not None and 0 <= -scaler <= 22 and -(2**53) < raw < 2**53:
                    values[cde] = raw / 10**-scaler * factor  # the usual case, as _value computes it
                else:
                    values[cde] = _value(entry, cde, factor)
            fields = electricity_fields(values)
            if fields:
                time_ns, source = _time(sensor_time, message.received_ns)
                readings.append(Reading("electricity", fields, time_ns, source))
        if not readings:
            raise DecodeRejected("no_readings", "no electricity register this profile stores")
        return readings

    return decode


SPEC = DecoderSpec(name="sml", options=SmlOptions, build=build)
