"""obis-json: OBIS-keyed JSON from meter gateways, and one OBIS value per topic.

Two shapes arrive:

* ``{"1.8.0": "12570070", "1-0:16.7.0*255": "523", "time": …}``: keys are OBIS codes in any common
  spelling (``1.8.0``, ``1-0:1.8.0``, ``1-0:1.8.0*255``, SML hex ``0100010800ff``); other keys are
  ignored. Values are numbers or numeric text (decimal comma too), optionally ``"12570.07*kWh"`` or
  ``{"value": …, "unit": …}``.
* ``…/obis/1-0:1.8.0/255/value`` with a plain value: the topic binds ``obis``. Import and export
  power registers (1.7.0/2.7.0, 21.7.0/22.7.0 …) cannot be netted one at a time: they become the
  fields ``power_import_w``/``power_export_w`` (per phase ``power_l1_import_w`` …) instead.

The unit of a value: the one it carries, else ``options.units`` for its code, else the unit meters
count in (Wh for energy registers, W, V, A, Hz). One code sent twice (a repeated key, or two spellings
such as ``1.8.0`` and ``1-0:1.8.0*255``) with different values (beyond a rounding, :data:`SAME_VALUE`) is
refused (``invalid_payload``): neither may silently win. Codes of different channels B (``1-1:1.8.0``,
``1-2:1.8.0``: two inputs of one device) are different quantities: a message with several channels gives
one reading per channel, tagged ``channel`` = B (one channel alone: untagged, as before). The payload is
read as every JSON profile reads it (``payloads``): bad UTF-8 is ``invalid_utf8``.

options:
  units: {"1.8.0": Wh, "16.7.0": W}
  time_key: time               # dotted JSON path of the device time, optional
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.obis_codes import (
    SPLIT_POWER,
    Obis,
    UnitsOption,
    base_unit,
    electricity_fields,
    obis_from_hex,
    parse_obis,
    target_unit,
    unit_factor,
    units_by_cde,
)
from ingest.decoders.payloads import message_object, message_repeats, payload_text
from ingest.decoders.values import lookup, to_number
from ingest.readings import DecodeRejected, FieldValue, NotThisProfile, Reading
from ingest.timeparse import TimeFormat, device_time

# Two values of one register agree when they differ by less than this fraction: "12345.6789*kWh" and
# "12345678.9*Wh" convert to floats one rounding apart.
SAME_VALUE = 1e-9


class ObisJsonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    units: UnitsOption = Field(
        default_factory=dict, description="OBIS code -> unit of values that carry none"
    )
    time_key: str | None = Field(None, description="dotted JSON path of the device timestamp")
    time_format: TimeFormat = "auto"


def _code(key: str) -> Obis | None:
    obis = parse_obis(key)
    if obis is None and len(key) == 12:
        obis = obis_from_hex(key)
    if obis is None or obis.medium != 1 or not obis.current or target_unit(obis.cde) is None:
        return None
    return obis


def _refuse(
    parsed: dict[str, Any], sent: dict[str, str], key: str, obis: Obis, held: float, value: float
) -> None:
    """invalid_payload naming the keys of two different values of one code (found again: the rare path)."""
    code = f"1-{obis.channel}:{obis.cde}"
    first = next(k for k in parsed if (c := _code(sent.get(k, k))) and (c.channel, c.cde) == obis[1:3])
    values = f"different values ({held!r}, {value!r})"
    if key in sent:  # a repeat of a key: the wording generic-json uses
        raise DecodeRejected("invalid_payload", f"duplicate key {sent[key][:40]!r} with {values} of {code}")
    raise DecodeRejected("invalid_payload", f"{first[:40]!r} and {key[:40]!r}: {values} of {code}")


def _value(raw: Any, *, key: str) -> tuple[float | None, str | None]:
    """A number and the unit it carries (``"12.5*kWh"``, ``{"value": 12.5, "unit": "kWh"}``)."""
    unit: Any = None
    if isinstance(raw, dict):
        raw, unit = raw.get("value"), raw.get("unit")
    elif isinstance(raw, str) and "*" in raw:
        raw, unit = raw.split("*", 1)
    if isinstance(raw, bool | list | dict):
        raise DecodeRejected("invalid_value", f"{key}: expected a number, got {type(raw).__name__}")
    if unit is not None and not isinstance(unit, str):
        raise DecodeRejected("invalid_value", f"{key}: unit {unit!r} is not text")
    return to_number(raw, key=key), (unit.strip() or None) if unit else None


def build(options: ObisJsonOptions, tz: str) -> DecodeFn:
    units = units_by_cde(options.units)
    time_key, time_format = options.time_key, options.time_format

    def convert(obis: Obis, raw: Any, key: str) -> float | None:
        number, unit = _value(raw, key=key)
        if number is None:
            return None
        unit = unit or units.get(obis.cde) or base_unit(obis.cde)
        try:
            return number * unit_factor(obis.cde, unit or "")
        except ValueError as exc:
            raise DecodeRejected("invalid_value", f"{key}: {exc}") from None

    def one_value(message: DecodeInput, code: str) -> list[Reading]:
        obis = parse_obis(code)
        if obis is None:
            raise NotThisProfile(f"topic level {code[:40]!r} is not an OBIS code")
        if _code(code) is None:
            raise DecodeRejected("no_readings", f"{code} is not a quantity this profile stores")
        text = payload_text(message.payload)
        raw: Any = message_object(message) if text.startswith("{") else text.strip('"')
        value = convert(obis, raw, code)
        if value is None:
            raise DecodeRejected("no_readings", f"{code}: no value")
        name = SPLIT_POWER.get(obis.cde)
        fields: dict[str, FieldValue] = {name: value} if name else electricity_fields({obis.cde: value})
        return [Reading("electricity", fields, message.received_ns, "received")]

    def document(message: DecodeInput) -> list[Reading]:
        parsed = message_object(message)
        repeats = message_repeats(message).get(id(parsed))
        sent = {name: key for key, names in repeats.items() for name in names} if repeats else {}
        channels: dict[int, dict[str, float]] = {}  # B -> C.D.E -> value
        for key, raw in parsed.items():
            obis = _code(sent.get(key, key))
            if obis is None or (value := convert(obis, raw, key)) is None:
                continue
            values = channels.setdefault(obis.channel, {})
            held = values.setdefault(obis.cde, value)
            if held != value and not math.isclose(held, value, rel_tol=SAME_VALUE):
                _refuse(parsed, sent, key, obis, held, value)  # no silent choice between two readings
        points = [
            (channel, fields)
            for channel, values in channels.items()
            if (fields := electricity_fields(values))
        ]
        if not points:
            raise DecodeRejected("no_readings", "no OBIS key with a value this profile stores")
        raw_time = lookup(parsed, time_key) if time_key else None
        time_ns, source = device_time(raw_time, received_ns=message.received_ns, tz=tz, fmt=time_format)
        if len(channels) == 1:
            return [Reading("electricity", points[0][1], time_ns, source)]
        return [Reading("electricity", f, time_ns, source, {"channel": str(b)}) for b, f in points]

    def decode(message: DecodeInput) -> list[Reading]:
        code = message.bindings.get("obis")
        return one_value(message, code) if code is not None else document(message)

    return decode


SPEC = DecoderSpec(name="obis-json", options=ObisJsonOptions, build=build)
