"""Build SML 1.04 transport frames the way a meter sends them (for the sml tests and profile examples).

Written from the SML specification (BSI TR-03109-1 Anlage IV): type-length fields, the message list of
six (transaction id, group, abort-on-error, body choice, CRC16, end of message), and the transport
escape ``1b1b1b1b 01010101 … 1b1b1b1b 1a <padding> <CRC16/X-25>``.

    python -m tests.unit.sml_frames   # prints the hex of the frames used in device_profiles/sml.yaml
"""

from __future__ import annotations

from typing import NamedTuple

NONE = b"\x01"
START = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"
ESCAPE = b"\x1b\x1b\x1b\x1b"


def crc_x25(data: bytes) -> int:
    """CRC-16/X-25: reflected poly 0x1021, init and xorout 0xFFFF (check value 0x906E)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def crc_kermit(data: bytes) -> int:
    """CRC-16/KERMIT: reflected poly 0x1021, init 0, no xorout (check value 0x2189)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


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


SERVER_ID = bytes.fromhex("0a01454d480000b8ef27")  # EMH-style 10-byte server id

HOUSEHOLD = [  # a two-way eHZ: import/export registers with tariffs, signed power, phase values
    Entry("8181c78203ff", octets(b"EMH")),
    Entry("0100000009ff", octets(SERVER_ID)),
    Entry("0100010800ff", unsigned(123456789, 4), unit=30, scaler=-1),  # 12345678.9 Wh
    Entry("0100010801ff", unsigned(100000000, 4), unit=30, scaler=-1),
    Entry("0100010802ff", unsigned(23456789, 4), unit=30, scaler=-1),
    Entry("0100020800ff", unsigned(4567890, 4), unit=30, scaler=-1),
    Entry("0100100700ff", signed(-1234, 4), unit=27, scaler=0),  # exporting 1234 W
    Entry("0100240700ff", signed(-400, 4), unit=27, scaler=0),
    Entry("0100380700ff", signed(-500, 4), unit=27, scaler=0),
    Entry("01004c0700ff", signed(-334, 4), unit=27, scaler=0),
    Entry("0100200700ff", unsigned(2301, 2), unit=35, scaler=-1),
    Entry("01001f0700ff", unsigned(174, 2), unit=33, scaler=-2),
    Entry("01000e0700ff", unsigned(4998, 2), unit=44, scaler=-2),
]
BASIC = [  # a one-way eHZ that sends only the import register (Wh, scaler -1) and the power
    Entry("0100010800ff", unsigned(98765432, 5), unit=30, scaler=-1),
    Entry("0100100700ff", signed(523, 2), unit=27, scaler=0),
]


def household_frame() -> bytes:
    return transport(sml_file(SERVER_ID, HOUSEHOLD, sensor_time=sec_index(12345678)))


def basic_frame_with_time() -> bytes:
    return transport(sml_file(SERVER_ID, BASIC, sensor_time=timestamp(1_764_320_400)))


if __name__ == "__main__":
    for name, frame in (("household", household_frame()), ("basic", basic_frame_with_time())):
        print(name, frame.hex())
