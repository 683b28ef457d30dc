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
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.canonical import canonical_unit, conversion_factor
from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.generic_json import FieldMap
from ingest.decoders.payloads import Points, json_object, number, per_phase
from ingest.readings import DecodeRejected, Reading
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


Plan = dict[str, tuple[str, str, float]]  # lower-case key -> (measurement, field, factor)


def _factor(mapping: FieldMap) -> float:
    if mapping.field in SPLIT_FIELDS and canonical_unit(mapping.measurement, mapping.field) is None:
        return mapping.scale * conversion_factor(mapping.unit or "W", "W")
    return mapping.factor


def _plan(*layers: dict[str, FieldMap]) -> Plan:
    plan: Plan = {}
    for layer in layers:
        for key, mapping in layer.items():
            plan[key.lower()] = (mapping.measurement, mapping.field, _factor(mapping))
    return plan


def _group(block: dict[str, Any], plan: Plan, name: str) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for key, raw in block.items():
        target = plan.get(key.lower())
        if target is None:
            continue
        measurement, field, factor = target
        values = per_phase(raw, key=f"{name}.{key}", factor=factor)
        if values is None:
            value = number(raw, key=f"{name}.{key}", factor=factor)
        else:  # an array where a scalar belongs: the total of its values
            present = [v for v in values if v is not None]
            value = sum(present) if present else None
        if value is not None:
            found.setdefault((measurement, field), value)  # the first of two aliases wins
    imported = found.pop(("electricity", "power_import_w"), None)
    exported = found.pop(("electricity", "power_export_w"), None)
    if (imported is not None or exported is not None) and ("electricity", "power_w") not in found:
        found[("electricity", "power_w")] = (imported or 0.0) - (exported or 0.0)
    return found


def build(options: SmlOptions, tz: str) -> DecodeFn:
    base = [DEFAULT_KEYS] if options.default_keys else []
    profile_plan = _plan(*base, options.keys)
    device_plans = {name: _plan(*base, options.keys, d.keys) for name, d in options.devices.items()}
    device_groups = {name: d.groups for name, d in options.devices.items() if d.groups is not None}

    def decode(message: DecodeInput) -> list[Reading]:
        document = json_object(message.payload)
        device = message.bindings.get("device", "")
        plan = device_plans.get(device, profile_plan)
        wanted = device_groups.get(device, options.groups)
        groups = [
            (name, block)
            for name, block in document.items()
            if isinstance(block, dict) and (wanted is None or name in wanted)
        ]
        if not groups:
            raise DecodeRejected("invalid_payload", "no JSON group (object) in the SENSOR message")
        mapped = [(n, b) for n, b in groups if any(k.lower() in plan for k in b)]
        points = Points()
        for name, block in mapped:
            tags = {"channel": name or "_"} if len(mapped) > 1 else {}
            for (measurement, field), value in _group(block, plan, name).items():
                points.add(measurement, field, value, tags)
        time_ns, source = device_time(document.get("Time"), received_ns=message.received_ns, tz=tz)
        names = ", ".join(repr(n) for n, _ in groups)
        return points.readings_or_reject(time_ns, source, detail=f"no mapped SML key in group(s) {names}")

    return decode


SPEC = DecoderSpec(name="tasmota-sml", options=SmlOptions, build=build)
