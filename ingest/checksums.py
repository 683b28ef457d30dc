"""The checksums of the meter transports, shared by the decoders, the gateway's framers and the simulators.

CRC-16/X-25 and CRC-16/KERMIT guard SML transport frames, CRC-16/ARC guards DSMR 4+/e-MUCS telegrams, the
XOR block check character (BCC) guards IEC 62056-21 mode C readouts. Pure functions, no exceptions.

A top-level module with no imports, not part of :mod:`ingest.decoders`: importing that package loads
every decoder (smllib, pydantic models: ~6 MB), which the gateway on a Pi does not need.
"""

from __future__ import annotations


def reflected_table(poly: int) -> tuple[int, ...]:
    """Byte table of a reflected CRC-16 with the reversed polynomial ``poly`` (0x8408, 0xA001 …)."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CCITT = reflected_table(0x8408)
_ARC = reflected_table(0xA001)


def _reflected(data: bytes, crc: int, table: tuple[int, ...]) -> int:
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc_x25(data: bytes) -> int:
    """CRC-16/X-25: reflected poly 0x1021, init and xorout 0xFFFF (check value 0x906E)."""
    return _reflected(data, 0xFFFF, _CCITT) ^ 0xFFFF


def crc_kermit(data: bytes) -> int:
    """CRC-16/KERMIT: reflected poly 0x1021, init 0, no xorout (check value 0x2189)."""
    return _reflected(data, 0, _CCITT)


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC (poly 0x8005 reflected, init 0), the CRC of DSMR 4+ and e-MUCS telegrams (check 0xBB3D)."""
    return _reflected(data, 0, _ARC)


def bcc(data: bytes) -> int:
    """The block check character of IEC 62056-21: XOR of the bytes (after STX, through ETX)."""
    check = 0
    for byte in data:
        check ^= byte
    return check
