"""Own SML 1.04 parser (BSI TR-03109-1 Anlage IV): transport frames, messages, the GetList.Res value list.

Written from the specification for the sml decoder, replacing smllib on its hot path (measured in
bench/sml_decode.py: ~150 µs per eHZ frame in smllib, most of it in building its objects). It reads what
the decoder uses and checks what smllib checked, so that the decoder's verdicts stay smllib's, which the
tests use as an oracle:

- the transport frame ``1b1b1b1b 01010101 … 1b1b1b1b 1a <padding> <CRC16>``: found, CRC-checked
  (X-25 little-endian or KERMIT big-endian), un-escaped (``1b1b1b1b`` doubled inside), padding cut;
- the messages: a list of six (transactionId, groupNo, abortOnError, body choice, crc16, endOfSmlMsg);
  Open.Res and Close.Res checked and skipped, GetList.Res read: its sensor time and its valList entries
  (objName, status, valTime, unit, scaler, value, valueSignature). The message CRC16 is not checked (the
  transport CRC covers it; smllib did not either);
- messages of other types are skipped (smllib did not know them and fell back to an OBIS scan, losing the
  sensor time); :func:`scan_entries` is that scan, for frames whose message structure is broken.

Hostile input is bounded: a list that claims more elements than bytes remain is refused before anything
is built, nesting is limited to :data:`MAX_DEPTH`, integers to 8 bytes (SML has Integer8 … Unsigned64).
Nothing but :class:`SmlError` leaves this module.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from typing import Literal, NamedTuple, TypeAlias

CrcName = Literal["x25", "kermit"]

START = b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01"
_ESCAPE = b"\x1b\x1b\x1b\x1b"
_END = b"\x1b\x1b\x1b\x1b\x1a"
MAX_DEPTH = 12  # the deepest real nesting: message, body, GetList.Res, valList, entry, value, time: 8
MAX_INT_BYTES = 8

OPEN_RESPONSE, CLOSE_RESPONSE, GET_LIST_RESPONSE = 0x0101, 0x0201, 0x0701


class SmlError(Exception):
    """The bytes are no SML this parser reads; the message says where and why."""


class CrcMismatch(SmlError):
    def __init__(self, sent: int, computed: int) -> None:
        super().__init__(f"transport CRC {sent:04X}, computed {computed:04X}")
        self.sent = sent
        self.computed = computed


class EndOfMessage:
    """``endOfSmlMsg`` (0x00) where it stands as a value."""

    def __repr__(self) -> str:
        return "EndOfSmlMsg"


EOM = EndOfMessage()
Value: TypeAlias = "bool | int | bytes | EndOfMessage | list[Value] | None"


class Timestamp(NamedTuple):
    """SML_Time as a timestamp (choice 2) or a local timestamp (choice 3): UTC seconds since 1970.

    A secIndex (choice 1: seconds since an arbitrary start) is read as the plain int it is.
    """

    seconds: int


Time: TypeAlias = "int | Timestamp | None"


class ListEntry(NamedTuple):
    """One SML_ListEntry of a GetList.Res valList."""

    obis: bytes  # objName, six bytes: A B C D E F
    status: int | None
    val_time: Time
    unit: int | None  # DLMS unit code
    scaler: int | None  # value × 10^scaler
    value: bool | int | bytes | Timestamp  # SML_Value; a time value (choice 1) read as a Timestamp
    signature: bytes | None


# --- transport -------------------------------------------------------------------------------------------

_REVERSED_BITS = bytes(int(f"{byte:08b}"[::-1], 2) for byte in range(256))


def _reflected_ccitt(data: bytes, init: int) -> int:
    """The reflected CRC-16/CCITT (X-25, KERMIT) by the C routine of the unreflected one: the bytes
    bit-reversed in, the result bit-reversed out (the values of :mod:`ingest.checksums`, ~100x faster)."""
    crc = binascii.crc_hqx(data.translate(_REVERSED_BITS), init)
    return _REVERSED_BITS[crc & 0xFF] << 8 | _REVERSED_BITS[crc >> 8]


def transport_crc(frame: bytes, crc: CrcName) -> int:
    """The CRC a frame (start sequence … padding count) ends with, its two last bytes read big-endian."""
    if crc == "kermit":
        return _reflected_ccitt(frame, 0)
    value = _reflected_ccitt(frame, 0xFFFF) ^ 0xFFFF
    return (value & 0xFF) << 8 | value >> 8  # X-25 is sent least significant byte first


def transport_frames(payload: bytes, crc: CrcName) -> Iterator[bytes]:
    """The message bytes of each complete transport frame in ``payload``, CRC-checked and un-escaped.

    Bytes before a start sequence (a read head that began mid-frame) and an incomplete frame at the end
    are skipped. A frame ends at the first ``1b1b1b1b 1a`` that is not an escaped ``1b1b1b1b`` followed
    by ``1a``; its last three bytes are the padding count and the CRC.
    """
    at = 0
    while (start := payload.find(START, at)) != -1:
        end = start - 1
        while (end := payload.find(_END, end + 1)) != -1:
            if end - 4 < start or payload[end - 4 : end] != _ESCAPE:
                break
        if end == -1 or end + 8 > len(payload):
            return
        frame = payload[start : end + 8]
        at = end + 8
        sent = frame[-2] << 8 | frame[-1]
        computed = transport_crc(frame[:-2], crc)
        if sent != computed:
            raise CrcMismatch(sent, computed)
        yield frame[8 : -(8 + frame[-3])].replace(_ESCAPE + _ESCAPE, _ESCAPE)


# --- type-length fields ----------------------------------------------------------------------------------


def _read_list(buf: bytes, pos: int, count: int, depth: int) -> tuple[list[Value], int]:
    """``count`` values from ``pos``: the list and the position after it."""
    size = len(buf)
    if count > size - pos:  # every value takes a byte at least: refused before anything is built
        raise SmlError(f"a list of {count} values at byte {pos} with {size - pos} bytes left")
    if depth > MAX_DEPTH:
        raise SmlError(f"lists nested deeper than {MAX_DEPTH} at byte {pos}")
    items: list[Value] = []
    append = items.append
    for _ in range(count):
        if pos >= size:
            raise SmlError(f"cut off at byte {pos}")
        tl = buf[pos]
        if tl == 0x01:
            append(None)
            pos += 1
            continue
        kind = tl & 0x70
        length = tl & 0x0F
        body = pos + 1
        if tl & 0x80:  # the length goes on over further TL bytes, four bits each
            more = tl
            while more & 0x80:
                if body >= size:
                    raise SmlError(f"type-length field cut off at byte {body}")
                more = buf[body]
                length = length << 4 | more & 0x0F
                body += 1
                if length > size:
                    raise SmlError(f"a length of {length} at byte {pos} in a {size}-byte frame")
        if kind == 0x70:
            sub, pos = _read_list(buf, body, length, depth + 1)
            append(sub)
            continue
        if tl == 0x00:
            append(EOM)
            pos = body
            continue
        if tl == 0x42:
            if body >= size:
                raise SmlError(f"boolean cut off at byte {pos}")
            append(buf[body] != 0)
            pos = body + 1
            continue
        end = pos + length  # the length counts the TL bytes too
        if end < body or end > size:
            raise SmlError(f"a value of {length} bytes at byte {pos} in a {size}-byte frame")
        if kind == 0x00:
            append(buf[body:end])
        elif kind == 0x60 or kind == 0x50:
            if end - body > MAX_INT_BYTES:
                raise SmlError(f"an integer of {end - body} bytes at byte {pos}")
            append(int.from_bytes(buf[body:end], "big", signed=kind == 0x50))
        else:
            raise SmlError(f"type-length byte {tl:02x} at byte {pos}")
        pos = end
    return items, pos


def read_value(buf: bytes, pos: int) -> tuple[Value, int]:
    """The value at ``pos`` and the position after it."""
    (value,), end = _read_list(buf, pos, 1, 0)
    return value, end


# --- messages --------------------------------------------------------------------------------------------


def _is_int(value: Value) -> bool:
    return isinstance(value, int)  # bool too, as smllib took it


def _optional_int(value: Value) -> bool:
    return value is None or isinstance(value, int)


def _optional_octets(value: Value) -> bool:
    return value is None or isinstance(value, bytes)


# datetime's range (years 1 … 9999), which smllib's times had to fit
_EARLIEST_S, _LATEST_S = -62_135_596_800, 253_402_300_799
_DAY_MINUTES = 24 * 60


def _time(value: Value) -> Time:
    """SML_Time: a choice of secIndex (1), timestamp (2), localTimestamp (3: timestamp, localOffset and
    seasonTimeOffset in minutes); a bare integer as some meters send it is read as a secIndex."""
    if value is None or isinstance(value, int):
        return value
    if not isinstance(value, list) or len(value) != 2:
        raise SmlError(f"SML_Time {str(value)[:40]}")
    tag, inner = value
    if tag == 1 and (inner is None or isinstance(inner, int)):
        return inner
    offset_s = 0
    if tag == 3 and isinstance(inner, list) and len(inner) == 3:
        inner, local_offset, season_offset = inner
        if not (isinstance(local_offset, int) and isinstance(season_offset, int)):
            raise SmlError("SML_TimestampLocal offsets are no integers")
        if abs(local_offset + season_offset) >= _DAY_MINUTES:
            raise SmlError("SML_TimestampLocal offset of a day or more")
        offset_s = (local_offset + season_offset) * 60
    elif tag != 2:
        raise SmlError(f"SML_Time choice {str(tag)[:20]}")
    if isinstance(inner, int) and _EARLIEST_S <= inner + offset_s <= _LATEST_S:  # local time in range too
        return Timestamp(int(inner))
    raise SmlError(f"SML timestamp {str(inner)[:40]}")


def list_entry(value: Value) -> ListEntry:
    """An SML_ListEntry from its list of seven."""
    if not isinstance(value, list) or len(value) != 7:
        raise SmlError(f"a list entry of {len(value) if isinstance(value, list) else 'no'} values, not 7")
    obis, status, val_time, unit, scaler, reading, signature = value
    if not isinstance(obis, bytes) or len(obis) != 6:
        raise SmlError(f"objName {str(obis)[:40]} is no OBIS code of six bytes")
    if not (
        (status is None or isinstance(status, int))
        and (unit is None or isinstance(unit, int))
        and (scaler is None or isinstance(scaler, int))
    ):
        raise SmlError(f"status, unit or scaler of {obis.hex()} is no integer")
    if not (signature is None or isinstance(signature, bytes)):
        raise SmlError(f"valueSignature of {obis.hex()} is no octet string")
    number: Value | Time = reading
    if isinstance(reading, list):  # SML_Value's list type: choice 1, a time
        if len(reading) != 2 or reading[0] != 1:
            raise SmlError(f"value of {obis.hex()}: {str(reading)[:40]}")
        number = _time(reading[1])  # a secIndex (or bare integer) stays an integer, as smllib read it
    if number is None or isinstance(number, EndOfMessage | list):
        raise SmlError(f"{obis.hex()} without a value")
    return ListEntry(obis, status, _time(val_time), unit, scaler, number, signature)


def _message_body(message: list[Value], at: int) -> tuple[int, Value]:
    """The body's tag and value of one message (a list of six); SmlError unless it is one."""
    transaction, group, abort, choice, crc16, end = message
    if end is not EOM:
        raise SmlError(f"message at byte {at} without endOfSmlMsg")
    if not (isinstance(transaction, bytes) and _is_int(group) and _is_int(abort) and _is_int(crc16)):
        raise SmlError(f"message at byte {at}: transactionId, groupNo, abortOnError or crc16 malformed")
    if not isinstance(choice, list) or len(choice) != 2:
        raise SmlError(f"message at byte {at}: no message body choice")
    tag, body = choice
    if not isinstance(tag, int):
        raise SmlError(f"message at byte {at}: message body tag {str(tag)[:20]}")
    return tag, body


def _check_open(body: Value, at: int) -> None:
    if not isinstance(body, list) or len(body) != 6:
        raise SmlError(f"SML_PublicOpen.Res at byte {at} is no list of 6")
    codepage, client, file_id, server, ref_time, version = body
    if not (_optional_octets(codepage) and _optional_octets(client) and _optional_int(version)):
        raise SmlError("SML_PublicOpen.Res: codepage, clientId or smlVersion malformed")
    if not (isinstance(file_id, bytes) and isinstance(server, bytes)):
        raise SmlError("SML_PublicOpen.Res without reqFileId or serverId")
    _time(ref_time)


def _general_message(frame: bytes, pos: int, entries: list[ListEntry]) -> tuple[int, Time]:
    """Read the message at ``pos`` (its 0x76) value by value: the position after it and its sensor time;
    the entries of a GetList.Res are appended to ``entries``."""
    message, end = _read_list(frame, pos + 1, 6, 1)
    tag, body = _message_body(message, pos)
    if tag == GET_LIST_RESPONSE:
        if not isinstance(body, list) or len(body) != 7:
            raise SmlError(f"SML_GetList.Res at byte {pos} is no list of 7")
        client, server, list_name, act_sensor_time, val_list, signature, gateway_time = body
        if not (isinstance(server, bytes) and isinstance(val_list, list)):
            raise SmlError("SML_GetList.Res without serverId or valList")
        if not (_optional_octets(client) and _optional_octets(list_name) and _optional_octets(signature)):
            raise SmlError("SML_GetList.Res: clientId, listName or listSignature malformed")
        entries.extend([list_entry(item) for item in val_list])
        _time(gateway_time)
        return end, _time(act_sensor_time)
    if tag == OPEN_RESPONSE:
        _check_open(body, pos)
    elif tag == CLOSE_RESPONSE and (
        not isinstance(body, list) or len(body) != 1 or not _optional_octets(body[0])
    ):
        raise SmlError(f"SML_PublicClose.Res at byte {pos} malformed")
    return end, None


# --- fast path: the shapes meters send, matched by regular expressions -------------------------------------
#
# Reading value by value costs ~0.25 µs a value in Python; an eHZ frame has 60 to 150 of them. The
# messages and list entries meters send have a few fixed shapes, which one regular expression (run in C)
# checks at once. Whatever does not match is read value by value (_general_message): both give the same.


def _alternatives(*tokens: str) -> str:
    return "(?:" + "|".join(tokens) + ")"


def _sized(tl_bytes: str, count: int) -> str:
    return tl_bytes + (f".{{{count}}}" if count else "")


_INT = _alternatives(*(_sized(f"[\\x{0x51 + n:02x}\\x{0x61 + n:02x}]", n) for n in range(MAX_INT_BYTES + 1)))
_OCTETS = _alternatives(*(_sized(f"\\x{n + 1:02x}", n) for n in range(1, 15)))
_NONE = "\\x01"
_OPT_INT = _alternatives(_NONE, _INT)
_OPT_OCTETS = _alternatives(_NONE, _OCTETS)
# secIndex or timestamp as a choice of an unsigned8 tag and an integer of at most four bytes (always
# within datetime's range), or none
_SHORT_INT = _alternatives(*(_sized(f"[\\x{0x51 + n:02x}\\x{0x61 + n:02x}]", n) for n in range(5)))
_TIME = _alternatives(_NONE, "\\x72\\x62[\\x01\\x02]" + _SHORT_INT)
_HEAD = "\\x76" + _OCTETS + _INT + _INT + "\\x72"  # transactionId, groupNo, abortOnError, the body choice
_TAIL = _INT + "\\x00"  # crc16, endOfSmlMsg


def _pattern(*parts: str) -> re.Pattern[bytes]:
    return re.compile("".join(parts).encode("ascii"), re.DOTALL)


_OPEN = _pattern(
    _HEAD, "\\x63\\x01\\x01\\x76", _OPT_OCTETS, _OPT_OCTETS, _OCTETS, _OCTETS, _NONE, _OPT_INT, _TAIL
)
_CLOSE = _pattern(_HEAD, "\\x63\\x02\\x01\\x71", _OPT_OCTETS, _TAIL)
_GET_LIST_HEAD = _pattern(
    _HEAD, "\\x63\\x07\\x01\\x77", _OPT_OCTETS, _OCTETS, _OPT_OCTETS, f"({_TIME})", "([\\x70-\\x7f])"
)
_GET_LIST_TAIL = _pattern(_OPT_OCTETS, _TIME, _TAIL)
_ENTRY = _pattern(
    "\\x77\\x07(.{6})",
    f"({_OPT_INT})",  # status
    f"({_TIME})",  # valTime
    f"({_OPT_INT})({_OPT_INT})",  # unit, scaler
    f"({_INT}|{_OCTETS}|\\x42.)",  # value
    f"({_OPT_OCTETS})",  # valueSignature
)


# the tokens of none and of the one-byte integers (units, scalers) as what they stand for
_SMALL: dict[bytes, int | None] = {b"\x01": None, b"\x51": 0, b"\x61": 0}
_SMALL.update({bytes([0x62, n]): n for n in range(256)})
_SMALL.update({bytes([0x52, n]): n - 256 * (n >> 7) for n in range(256)})


def _int(token: bytes) -> int | None:
    """An integer or none; ``token`` is one of the _OPT_INT alternatives."""
    if token in _SMALL:
        return _SMALL[token]
    return int.from_bytes(token[1:], "big", signed=token[0] < 0x60)


def _fast_time(token: bytes) -> Time:
    if token == b"\x01":
        return None
    seconds = int.from_bytes(token[4:], "big", signed=token[3] < 0x60)
    return seconds if token[2] == 1 else Timestamp(seconds)


def _fast_value(token: bytes) -> bool | int | bytes:
    tl = token[0]
    if tl >= 0x50:
        return int.from_bytes(token[1:], "big", signed=tl < 0x60)
    return token[1] != 0 if tl == 0x42 else token[1:]


_new_entry = tuple.__new__  # ListEntry(…) goes through a Python-level __new__: 0.3 µs an entry


def _fast_message(frame: bytes, pos: int, entries: list[ListEntry]) -> tuple[int, Time] | None:
    """As :func:`_general_message` for a message of the usual shape; None for any other."""
    if (found := _OPEN.match(frame, pos) or _CLOSE.match(frame, pos)) is not None:
        return found.end(), None
    if (head := _GET_LIST_HEAD.match(frame, pos)) is None:
        return None
    sensor_time, count = head.groups()
    pos = head.end()
    found_entries: list[ListEntry] = []
    match, small = _ENTRY.match, _SMALL  # the loop runs a dozen times a frame: names bound, calls inlined
    for _ in range(count[0] & 0x0F):
        if (entry := match(frame, pos)) is None:
            return None
        obis, status, val_time, unit, scaler, value, signature = entry.groups()
        fields = (
            obis,
            small[status] if status in small else _int(status),
            None if val_time == b"\x01" else _fast_time(val_time),
            small[unit] if unit in small else _int(unit),
            small[scaler] if scaler in small else _int(scaler),
            int.from_bytes(value[1:], "big", signed=value[0] < 0x60)
            if value[0] >= 0x50
            else _fast_value(value),
            None if signature == b"\x01" else signature[1:],
        )
        found_entries.append(_new_entry(ListEntry, fields))
        pos = entry.end()
    if (tail := _GET_LIST_TAIL.match(frame, pos)) is None:
        return None
    entries.extend(found_entries)
    return tail.end(), _fast_time(sensor_time)


def parse_messages(frame: bytes) -> tuple[list[ListEntry], Time]:
    """The valList entries of the frame's GetList.Res messages and the first sensor time among them."""
    entries: list[ListEntry] = []
    sensor_time: Time = None
    pos, size = 0, len(frame)
    while pos < size:
        if frame[pos] != 0x76:
            raise SmlError(f"no message (list of six) at byte {pos}: {frame[pos]:02x}")
        fast = _fast_message(frame, pos, entries)
        pos, time = _general_message(frame, pos, entries) if fast is None else fast
        # the first sensor time that is one (a secIndex of 0 is none), as the decoder always took it
        sensor_time = sensor_time or time
    return entries, sensor_time


def scan_entries(frame: bytes) -> list[ListEntry]:
    """The electricity list entries (``77 07 01 …``) wherever they stand, for frames whose messages do
    not parse; SmlError for such an entry that is malformed."""
    entries: list[ListEntry] = []
    pos = 0
    while (pos := frame.find(b"\x77\x07\x01", pos)) != -1:
        value, pos = read_value(frame, pos)
        entries.append(list_entry(value))
    return entries
