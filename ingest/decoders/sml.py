"""sml: raw binary SML transport frames (SML 1.04, BSI TR-03109-1) of German eHZ/mME meters, via smllib.

A frame is ``1b1b1b1b 01010101``, the SML messages (OpenResponse, GetListResponse with the value list,
CloseResponse), then ``1b1b1b1b 1a <padding> <CRC16>``. The transport CRC (X-25; ``kermit`` for the
few meters that use it) is checked. Each list entry names its OBIS code, unit (DLMS unit code) and
scaler: value × 10^scaler in the SML unit (Wh, W, V, A, Hz) is converted to the canonical unit.
Gateways that publish the frame as hex text are read too.

Everything smllib raises is translated here; nothing of smllib leaves this module.

options:
  crc: x25        # transport CRC: x25 (SML standard) or kermit
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from smllib.builder.default_context import create_context
from smllib.errors import CrcError
from smllib.reader import SmlStreamReader
from smllib.sml.list_entry import SmlListEntry
from smllib.sml.response_get_list import SmlGetListResponse
from smllib.sml_frame import SmlFrame
from smllib.sml_frame_snippet import SmlFrameSnippet

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.obis_codes import base_unit, electricity_fields, obis_from_hex, target_unit, unit_factor
from ingest.readings import DecodeRejected, Reading
from ingest.timeparse import device_time

# DLMS/COSEM unit codes (IEC 62056-62) of the quantities stored; 255 is "count" (no unit)
SML_UNITS = {27: "W", 30: "Wh", 33: "A", 35: "V", 44: "Hz", 255: "1"}
_START = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"
_HEX_START = b"1b1b1b1b01010101"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CONTEXT = create_context()
CrcName = Literal["x25", "kermit"]


class _BoundedFrame(SmlFrame):
    """An SML frame whose lists cannot claim more elements than the frame has bytes.

    smllib builds a list of the claimed length before reading its elements, and a list's length may go on
    over any number of TL bytes (4 bits each): six bytes inserted into a frame made it build 16 million
    elements (0.3 s of CPU and a few hundred MB); a few more would exhaust memory.
    """

    def get_value(self, pos: int | None = None) -> SmlFrameSnippet:
        at = self.next_pos if pos is None else pos
        if at < self.buf_len and self.buffer[at] & 0xF0 == 0xF0:  # a list with a multi-byte length
            size, tl = 0, 0x80
            while tl & 0x80 and at < self.buf_len:
                tl = self.buffer[at]
                size = size << 4 | tl & 0x0F
                at += 1
                if size > self.buf_len:  # every element takes at least one byte
                    raise ValueError(f"SML list of {size} elements in a {self.buf_len}-byte frame")
        return super().get_value(pos)


class SmlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    crc: CrcName = Field("x25", description="CRC of the SML transport frame")


def _binary(payload: bytes) -> bytes:
    """The payload, or the frame a gateway sent as hex text."""
    if _START in payload:
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
# together are fine. Hundreds in one message are no meter's: each costs ~0.15 ms (bench/poison.py).
MAX_FRAMES = 32


def _frames(payload: bytes, crc: CrcName) -> list[SmlFrame]:
    reader = SmlStreamReader(build_ctx=_CONTEXT, crc=crc)
    reader.add(payload)
    frames: list[SmlFrame] = []
    try:
        while (frame := reader.get_frame()) is not None:
            if len(frames) == MAX_FRAMES:
                raise DecodeRejected("too_complex", f"more than {MAX_FRAMES} SML frames in one message")
            frames.append(_BoundedFrame(frame.bytes, _CONTEXT, frame.msg_ctx))
    except DecodeRejected:
        raise
    except CrcError as exc:
        detail = f"transport CRC {exc.crc_msg:04X}, computed {exc.crc_calc:04X}"
        raise DecodeRejected("crc_mismatch", detail) from None
    except Exception as exc:  # smllib raises IndexError, ValueError … on broken frames
        raise DecodeRejected("invalid_payload", f"SML transport: {type(exc).__name__}") from None
    if not frames:
        raise DecodeRejected("invalid_payload", "no complete SML frame (1b1b1b1b 01010101 … 1b1b1b1b 1a)")
    return frames


def _entries(frame: SmlFrame) -> tuple[list[SmlListEntry], object]:
    """The value list entries and the sensor time of one frame."""
    try:
        messages = frame.parse_frame()
    except Exception:  # message types smllib does not know: fall back to a scan for OBIS entries
        try:
            return frame.get_obis(), None
        except Exception as exc:
            raise DecodeRejected("invalid_payload", f"SML messages: {type(exc).__name__}") from None
    entries: list[SmlListEntry] = []
    sensor_time: object = None
    for message in messages:
        body = message.message_body
        if isinstance(body, SmlGetListResponse):
            entries.extend(body.val_list or ())
            sensor_time = sensor_time or body.act_sensor_time
    return entries, sensor_time


def _value(entry: SmlListEntry, cde: str, target: str) -> float:
    raw = entry.value
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise DecodeRejected("invalid_value", f"{cde}: {str(raw)[:40]!r} is not a number")
    unit = base_unit(cde) if entry.unit is None else SML_UNITS.get(entry.unit)
    if unit is None:
        raise DecodeRejected(
            "invalid_value", f"{cde}: DLMS unit code {entry.unit} does not convert to {target}"
        )
    try:
        factor = unit_factor(cde, unit)
        scaler = entry.scaler or 0
        number = float(Decimal(raw).scaleb(scaler)) * factor
    except (ValueError, ArithmeticError) as exc:
        raise DecodeRejected("invalid_value", f"{cde}: {exc}") from None
    if not math.isfinite(number):
        raise DecodeRejected("invalid_value", f"{cde}: {raw} × 10^{scaler} is not a finite number")
    return number


def _time(sensor_time: object, received_ns: int) -> tuple[int, Literal["device", "received"]]:
    if isinstance(sensor_time, datetime):
        moment = sensor_time if sensor_time.tzinfo else sensor_time.replace(tzinfo=UTC)
        return device_time(
            (moment - _EPOCH) // timedelta(microseconds=1) * 1000, received_ns=received_ns, fmt="epoch_ns"
        )
    # an int is a secIndex (seconds since an arbitrary start) or, from a few meters, epoch seconds
    return device_time(sensor_time if isinstance(sensor_time, int) else None, received_ns=received_ns)


def build(options: SmlOptions, tz: str) -> DecodeFn:  # noqa: ARG001  SML times are UTC
    crc = options.crc

    def decode(message: DecodeInput) -> list[Reading]:
        readings: list[Reading] = []
        for frame in _frames(_binary(message.payload), crc):
            entries, sensor_time = _entries(frame)
            values: dict[str, float] = {}
            for entry in entries:
                obis = obis_from_hex(str(entry.obis))
                target = None if obis is None else target_unit(obis.cde)
                if obis is None or target is None or obis.medium != 1 or not obis.current:
                    continue
                values[obis.cde] = _value(entry, obis.cde, target)
            fields = electricity_fields(values)
            if fields:
                time_ns, source = _time(sensor_time, message.received_ns)
                readings.append(Reading("electricity", fields, time_ns, source))
        if not readings:
            raise DecodeRejected("no_readings", "no electricity register this profile stores")
        return readings

    return decode


SPEC = DecoderSpec(name="sml", options=SmlOptions, build=build)
