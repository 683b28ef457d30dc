"""Build SML 1.04 transport frames the way a meter sends them (simulated meters, sml tests, examples).

Written from the SML specification (BSI TR-03109-1 Anlage IV): type-length fields, the message list of
six (transaction id, group, abort-on-error, body choice, CRC16, end of message), and the transport
escape ``1b1b1b1b 01010101 … 1b1b1b1b 1a <padding> <CRC16/X-25>``.
"""

from __future__ import annotations

from typing import NamedTuple

# re-exported: the tests and examples import the CRCs with the builders
from ingest.checksums import crc_kermit as crc_kermit
from ingest.checksums import crc_x25 as crc_x25

NONE = b"\x01"
START = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"
ESCAPE = b"\x1b\x1b\x1b\x1b"


def octets(data: bytes) -> bytes:
    size = len(data) + 1
    if size <= 15:
        return bytes([size]) + data
    size += 1  # a second type-length byte
    return bytes([0x80 | (size >> 4), size & 0x0F]) + data


def unsigned(value: int, size: int) -> bytes:
    return bytes([0x60 | (size + 1)]) + value.to_bytes(size, "big")


def signed(value: int, size: int) -> bytes:
    return bytes([0x50 | (size + 1)]) + value.to_bytes(size, "big", signed=True)


def seq(*items: bytes) -> bytes:
    return bytes([0x70 | len(items)]) + b"".join(items)


class Entry(NamedTuple):
    obis: str  # "0100010800ff"
    value: bytes  # an encoded value: unsigned(…), signed(…), octets(…)
    unit: int | None = None
    scaler: int | None = None


def entry(item: Entry) -> bytes:
    return seq(
        octets(bytes.fromhex(item.obis)),
        NONE,  # status
        NONE,  # valTime
        NONE if item.unit is None else unsigned(item.unit, 1),
        NONE if item.scaler is None else signed(item.scaler, 1),
        item.value,
        NONE,  # valueSignature
    )


def message(transaction: bytes, tag: int, body: bytes) -> bytes:
    head = bytes([0x76]) + octets(transaction) + unsigned(0, 1) + unsigned(0, 1) + seq(unsigned(tag, 2), body)
    return head + unsigned(crc_x25(head), 2) + b"\x00"


def sml_file(server_id: bytes, entries: list[Entry], *, sensor_time: bytes = NONE) -> bytes:
    """OpenResponse, GetListResponse with the entries, CloseResponse."""
    open_response = seq(NONE, NONE, octets(b"\x00\x01\x02\x03"), octets(server_id), NONE, NONE)
    get_list = seq(
        NONE,
        octets(server_id),
        octets(bytes.fromhex("0100620affff")),
        sensor_time,
        seq(*(entry(item) for item in entries)),
        NONE,
        NONE,
    )
    return (
        message(b"\x11\x01", 0x0101, open_response)
        + message(b"\x11\x02", 0x0701, get_list)
        + message(b"\x11\x03", 0x0201, seq(NONE))
    )


def transport(body: bytes, *, kermit: bool = False) -> bytes:
    """The SML transport frame around ``body``: escaped, padded to 4 bytes, CRC16/X-25 (LSB first).

    ``kermit``: the CRC-16/KERMIT a few meters send instead, MSB first.
    """
    escaped = body.replace(ESCAPE, ESCAPE + ESCAPE)
    padding = -len(escaped) % 4
    frame = START + escaped + b"\x00" * padding + ESCAPE + b"\x1a" + bytes([padding])
    if kermit:
        return frame + crc_kermit(frame).to_bytes(2, "big")
    return frame + crc_x25(frame).to_bytes(2, "little")


def sec_index(seconds: int) -> bytes:
    return seq(unsigned(1, 1), unsigned(seconds, 4))


def timestamp(epoch_s: int) -> bytes:
    return seq(unsigned(2, 1), unsigned(epoch_s, 4))
