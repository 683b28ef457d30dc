"""tasmota-sml: ``tele/<dev>/SENSOR`` from Tasmota's Smart Meter Interface (SML/OBIS meter-reader scripts).

The script names the JSON group (``jsonPrefix``, even ``""``) and every key (the MQTT label of a meter
line), so keys are matched case-insensitively against a mapping: by default the names used in the
examples of Tasmota's SML documentation, extended or overridden per profile (``keys``) and per device
(``devices.<device>.keys``)::

    {"Time":"2025-11-28T10:00:00","SML":{"Total_in":12345.6789,"Total_out":42.1234,"Power_curr":-830}}

``power_w`` is signed: negative means export (as the meter's 16.7.0 reports it). Scripts that publish
import and export power as two positive values (``Power_in``/``Power_out``) map them to the pseudo fields
``power_import_w``/``power_export_w``; they become ``power_w = import - export``. Duplicate keys (two meter
lines with the same label) arrive as ``key``, ``key#2`` … and can be mapped one by one. When several
groups (meters) carry mapped keys, each becomes its own point tagged ``channel`` with the group name.

``stat/<dev>/STATUS10`` (the answer to ``Status 10``) holds the same groups wrapped in ``StatusSNS``.

A script's groups may share a message with Tasmota's own: an ``ENERGY`` block (a plug's or a power
monitor's energy chip) or environment sensor groups, which the tasmota profile reads. This decoder leaves
those to it and reads the others (``also_read_by`` in tasmota.yaml has it read them after tasmota), so
nothing is read twice; next to an ENERGY block, a script's meter is tagged ``channel`` (its group) even
alone, as it measures something else than the ENERGY block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.canonical import canonical_unit, conversion_factor
from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.generic_json import FieldMap
from ingest.decoders.payloads import check_groups, message_object, number, per_phase
from ingest.decoders.tasmota import is_sensor_group, sensor_document
from ingest.readings import DecodeRejected, FieldValue, Reading, TimeSource
from ingest.timeparse import device_time

SPLIT_FIELDS = ("power_import_w", "power_export_w")


def _e(field: str, unit: str) -> FieldMap:
    return FieldMap(measurement="electricity", field=field, unit=unit)


DEFAULT_KEYS: dict[str, FieldMap] = {
    **{key: _e("energy_import_kwh", "kWh") for key in ("Total_in", "E_in", "Total_consumed", "total_kwh")},
    **{key: _e("energy_export_kwh", "kWh") for key in ("Total_out", "E_out", "Total_delivered", "Supply")},
    **{key: _e("power_w", "W") for key in ("Power_curr", "Power_cur", "Power_total", "P", "curr_w")},
    **{key: _e("power_import_w", "W") for key in ("Power_in", "Power_import")},
    **{key: _e("power_export_w", "W") for key in ("Power_out", "Power_export")},
    **{key: _e("frequency_hz", "Hz") for key in ("Frequency", "Freq")},
}
for _n, _phase in enumerate(("l1", "l2", "l3"), start=1):
    for _key in (f"Power_p{_n}", f"Power_L{_n}", f"P_L{_n}", f"L{_n}"):
        DEFAULT_KEYS[_key] = _e(f"power_{_phase}_w", "W")
    for _key in (f"Volt_p{_n}", f"Voltage_L{_n}", f"volt_l{_n}"):
        DEFAULT_KEYS[_key] = _e(f"voltage_{_phase}_v", "V")
    for _key in (f"Amperage_p{_n}", f"Current_L{_n}", f"Curr_p{_n}", f"amp_p{_n}"):
        DEFAULT_KEYS[_key] = _e(f"current_{_phase}_a", "A")


class DeviceKeys(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: dict[str, FieldMap] = Field(default_factory=dict, description="key -> field, over the profile's")
    groups: list[str] | None = Field(None, description="read only these JSON groups")


class SmlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_keys: bool = Field(True, description="start from the names of Tasmota's SML doc examples")
    keys: dict[str, FieldMap] = Field(default_factory=dict, description="key -> field (case-insensitive)")
    groups: list[str] | None = Field(None, description="read only these JSON groups (default: all)")
    devices: dict[str, DeviceKeys] = Field(default_factory=dict, description="per-device overrides")


Target = tuple[str, str, float]  # (measurement, field, factor)
GROUP_CACHE_SIZE = 4_096  # distinct key sets of groups remembered per plan; starts over when full
# Only key sets of a meter's size are remembered (real groups have under 20 short keys): crafted groups of
# thousands of long keys would otherwise keep gigabytes alive in the cache (4,096 x a 256 KB payload).
CACHED_KEYS_MAX = 64
CACHED_TEXT_MAX = 2_048  # characters of all keys together
_IMPORT, _EXPORT, _POWER = (("electricity", f) for f in (*SPLIT_FIELDS, "power_w"))
_MAX_EXACT = 2**53  # integers up to this convert to float exactly and never overflow


def _factor(mapping: FieldMap) -> float:
    if mapping.field in SPLIT_FIELDS and canonical_unit(mapping.measurement, mapping.field) is None:
        return mapping.scale * conversion_factor(mapping.unit or "W", "W")
    return mapping.factor


@dataclass(frozen=True, slots=True)
class _Mapped:
    """What a plan makes of one key set of a group: the mapped keys in the group's order."""

    entries: tuple[tuple[str, tuple[str, str], float], ...]  # (key, (measurement, field), factor)
    split: bool  # power_import_w / power_export_w among the targets
    # the one measurement when every key has a target of its own in it and none is split: then a group
    # is one point whose fields are the keys' values as they come (no aliases, no import - export)
    direct: str | None


class Plan:
    """Lower-case key -> target, compiled per key set of a group.

    A meter's script sends the same keys in every message, so which keys a group maps (a case-insensitive
    look-up per key) is worked out once per distinct key tuple and reused.
    """

    __slots__ = ("_mapped", "targets")

    def __init__(self, *layers: dict[str, FieldMap]) -> None:
        self.targets: dict[str, Target] = {}
        for layer in layers:
            for key, mapping in layer.items():
                self.targets[key.lower()] = (mapping.measurement, mapping.field, _factor(mapping))
        self._mapped: dict[tuple[str, ...], _Mapped | None] = {}

    def mapped(self, keys: tuple[str, ...]) -> _Mapped | None:
        """The keys among ``keys`` this plan maps (None: none), in the group's order."""
        try:
            return self._mapped[keys]
        except KeyError:
            pass
        entries = []
        for key in keys if not is_sensor_group(frozenset(keys)) else ():  # tasmota's (also_read_by)
            target = self.targets.get(key.lower())
            if target is not None:
                measurement, field, factor = target
                entries.append((key, (measurement, field), factor))
        found = None
        if entries:
            targets = [target for _, target, _ in entries]
            split = _IMPORT in targets or _EXPORT in targets
            measurements = {measurement for measurement, _ in targets}
            direct = not split and len(measurements) == 1 and len(set(targets)) == len(targets)
            found = _Mapped(tuple(entries), split, measurements.pop() if direct else None)
        if len(keys) <= CACHED_KEYS_MAX and sum(map(len, keys)) <= CACHED_TEXT_MAX:
            if len(self._mapped) >= GROUP_CACHE_SIZE:
                self._mapped.clear()
            self._mapped[keys] = found
        return found


def _value(raw: Any, key: str, factor: float) -> float | None:
    """The canonical value of one key that is no plain number; an array gives the total of its values."""
    values = per_phase(raw, key=key, factor=factor)
    if values is None:
        return number(raw, key=key, factor=factor)
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _group(block: dict[str, Any], mapped: _Mapped, name: str) -> dict[tuple[str, str], float]:
    """(measurement, field) -> value of one group, in the group's order; the first of two aliases wins."""
    found: dict[tuple[str, str], float] = {}
    for key, target, factor in mapped.entries:
        raw = block[key]
        kind = type(raw)
        value: float | None
        if kind is float or (kind is int and -_MAX_EXACT <= raw <= _MAX_EXACT):
            value = float(raw) * factor  # number() without its text, null and range checks
            if not math.isfinite(value):
                value = _number(raw, f"{name}.{key}", factor)
        else:
            value = _value(raw, f"{name}.{key}", factor)
        if value is not None and target not in found:
            found[target] = value
    if mapped.split:
        imported = found.pop(_IMPORT, None)
        exported = found.pop(_EXPORT, None)
        if (imported is not None or exported is not None) and _POWER not in found:
            found[_POWER] = (imported or 0.0) - (exported or 0.0)
    return found


def _direct(block: dict[str, Any], mapped: _Mapped, name: str) -> dict[str, FieldValue]:
    """:func:`_group` for a ``direct`` plan, straight into the point's fields; rejects as it would."""
    fields: dict[str, FieldValue] = {}
    summed: list[tuple[str, float]] = []  # arrays' totals may be infinite: checked after every key was read
    for key, (_, field), factor in mapped.entries:
        raw = block[key]
        kind = type(raw)
        if kind is float or (kind is int and -_MAX_EXACT <= raw <= _MAX_EXACT):
            scaled = raw * factor  # as float(raw) * factor: such an int converts to float exactly
            # finite unless inf or nan (x - x is nan for both): cheaper than math.isfinite
            fields[field] = scaled if scaled - scaled == 0.0 else _number(raw, f"{name}.{key}", factor)
            continue
        value = _value(raw, f"{name}.{key}", factor)
        if value is not None:
            fields[field] = value
            summed.append((field, value))
    for field, value in summed:
        if not math.isfinite(value):
            raise DecodeRejected("invalid_value", f"{mapped.direct}.{field} is not finite")
    return fields


def _number(raw: float, key: str, factor: float) -> float:
    """number() of a plain number whose scaled value is not finite: raises its rejection."""
    value = number(raw, key=key, factor=factor)
    assert value is not None  # number() only passes a finite product
    return value


def _check_finite(found: dict[tuple[str, str], float]) -> None:
    for (measurement, field), value in found.items():
        if not math.isfinite(value):  # e.g. a sum of huge values
            raise DecodeRejected("invalid_value", f"{measurement}.{field} is not finite")


def _points(
    mapped: list[tuple[str, dict[str, Any], _Mapped]], time_ns: int, source: TimeSource, *, channels: bool
) -> list[Reading]:
    """The readings of groups that are no ``direct`` single point, tagged ``channel`` with ``channels``."""
    # (measurement, channel) -> fields, in first-seen order
    points: dict[tuple[str, str | None], dict[str, FieldValue]] = {}
    for name, block, keys in mapped:
        channel = (name or "_") if channels else None
        found = _group(block, keys, name)
        _check_finite(found)
        for (measurement, field), value in found.items():
            points.setdefault((measurement, channel), {})[field] = value
    return [
        Reading(measurement, fields, time_ns, source, {} if channel is None else {"channel": channel})
        for (measurement, channel), fields in points.items()
    ]


def build(options: SmlOptions, tz: str) -> DecodeFn:
    base = [DEFAULT_KEYS] if options.default_keys else []
    profile_plan = Plan(*base, options.keys)
    device_plans = {name: Plan(*base, options.keys, d.keys) for name, d in options.devices.items()}
    device_groups = {name: d.groups for name, d in options.devices.items() if d.groups is not None}

    def decode(message: DecodeInput) -> list[Reading]:
        document = sensor_document(message_object(message), message.topic)
        check_groups(document)
        device = message.bindings.get("device", "")
        plan = device_plans.get(device, profile_plan)
        wanted = device_groups.get(device, options.groups)
        groups: list[str] = []
        mapped: list[tuple[str, dict[str, Any], _Mapped]] = []  # the groups with a mapped key
        for name, block in document.items():
            if isinstance(block, dict) and (wanted is None or name in wanted):
                groups.append(name)
                if name == "ENERGY":  # tasmota's to read (also_read_by); so are sensor groups (Plan)
                    continue
                keys = plan.mapped(tuple(block))
                if keys is not None:
                    mapped.append((name, block, keys))
        if not groups:
            raise DecodeRejected("invalid_payload", "no JSON group (object) in the SENSOR message")
        time_ns, source = device_time(document.get("Time"), received_ns=message.received_ns, tz=tz)
        beside_energy = type(document.get("ENERGY")) is dict
        direct = mapped[0][2].direct if len(mapped) == 1 and not beside_energy else None
        if direct is not None:  # the usual message: one group, one point
            name, block, keys = mapped[0]
            fields = _direct(block, keys, name)
            readings = [Reading(direct, fields, time_ns, source)] if fields else []
        else:
            readings = _points(mapped, time_ns, source, channels=len(mapped) > 1 or beside_energy)
        if not readings:
            names = ", ".join(map(repr, groups))
            raise DecodeRejected("no_readings", f"no mapped SML key in group(s) {names}")
        return readings

    return decode


SPEC = DecoderSpec(name="tasmota-sml", options=SmlOptions, build=build)
