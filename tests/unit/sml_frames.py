"""SML frames for the sml tests and profile examples (the builder lives in simulators/smlframe.py).

Written from the SML specification (BSI TR-03109-1 Anlage IV): type-length fields, the message list of
six (transaction id, group, abort-on-error, body choice, CRC16, end of message), and the transport
escape ``1b1b1b1b 01010101 … 1b1b1b1b 1a <padding> <CRC16/X-25>``.

    python -m tests.unit.sml_frames   # prints the hex of the frames used in device_profiles/sml.yaml
"""

from __future__ import annotations

from simulators.smlframe import (
    ESCAPE,
    NONE,
    START,
    Entry,
    crc_kermit,
    crc_x25,
    entry,
    message,
    octets,
    sec_index,
    seq,
    signed,
    sml_file,
    timestamp,
    transport,
    unsigned,
)

__all__ = [
    "ESCAPE",
    "NONE",
    "START",
    "Entry",
    "crc_kermit",
    "crc_x25",
    "entry",
    "message",
    "octets",
    "sec_index",
    "seq",
    "signed",
    "sml_file",
    "timestamp",
    "transport",
    "unsigned",
]

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
