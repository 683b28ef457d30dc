"""zigbee2mqtt: ``zigbee2mqtt/<friendly name>`` device state JSON and ``zigbee2mqtt/bridge/state``.

Device messages carry the exposed values by their zigbee2mqtt names::

    {"battery":97,"humidity":48.2,"linkquality":134,"pressure":1013.4,"temperature":21.37,
     "voltage":3015,"last_seen":"2025-11-28T10:00:00+01:00"}

The built-in mapping covers the common exposes (temperature, humidity, pressure, co2, voc, voc_index,
formaldehyd, pm25, pm10, illuminance, battery, linkquality, power, energy, current); ``fields`` extends or
overrides it, ``devices.<friendly name>`` per device. ``voltage`` is the battery voltage in mV on battery
sensors but the mains voltage in V on metering plugs: it counts as mains when the message also has
``power``, ``energy`` or ``current``. ``last_seen`` (ISO with offset, or epoch ms with
``last_seen: epoch``) is the time; without it the receive time.

``bridge/state`` is ``{"state":"online"}`` (plain ``online`` from zigbee2mqtt before 1.29) → the field
``device_health.online`` (bool) of the device ``bridge_device``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.generic_json import FieldMap
from ingest.decoders.payloads import Points, message_object, number, parse_json, payload_text
from ingest.decoders.values import to_bool
from ingest.readings import DecodeRejected, FieldValue, Reading
from ingest.timeparse import device_time

Target = tuple[str, str, float, bool]  # measurement, field, factor, is_bool

DEFAULT_FIELDS: dict[str, Target] = {
    "temperature": ("environment", "temperature_c", 1.0, False),
    "humidity": ("environment", "humidity_pct", 1.0, False),
    "pressure": ("environment", "pressure_hpa", 1.0, False),
    "co2": ("environment", "co2_ppm", 1.0, False),
    "voc_index": ("environment", "voc_index", 1.0, False),
    "voc": ("environment", "voc_ppb", 1.0, False),
    "formaldehyd": ("environment", "formaldehyde_mgm3", 1.0, False),
    "pm25": ("environment", "pm25_ugm3", 1.0, False),
    "pm10": ("environment", "pm10_ugm3", 1.0, False),
    "illuminance": ("environment", "illuminance_lx", 1.0, False),
    "illuminance_lux": ("environment", "illuminance_lx", 1.0, False),
    "battery": ("device_health", "battery_pct", 1.0, False),
    "linkquality": ("device_health", "link_quality", 1.0, False),
    "power": ("electricity", "power_w", 1.0, False),
    "energy": ("electricity", "energy_import_kwh", 1.0, False),
    "current": ("electricity", "current_l1_a", 1.0, False),
}
_MAINS_VOLTAGE: Target = ("electricity", "voltage_l1_v", 1.0, False)
_BATTERY_VOLTAGE: Target = ("device_health", "battery_v", 0.001, False)  # mV
_METERING = ("power", "energy", "current")
_ONLINE = {"online": True, "offline": False}


def _target(mapping: FieldMap) -> Target:
    return (mapping.measurement, mapping.field, mapping.factor, mapping.is_bool)


class Z2mOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[str, FieldMap] = Field(default_factory=dict, description="key -> field, over the defaults")
    devices: dict[str, dict[str, FieldMap]] = Field(
        default_factory=dict, description="friendly name -> key -> field, over the profile's"
    )
    bridge_device: str = Field("zigbee2mqtt-bridge", min_length=1, description="device tag of the bridge")


def _bridge(payload: bytes, device: str, received_ns: int) -> list[Reading]:
    text = payload_text(payload)
    state: Any = text
    if text[:1] in ("{", '"'):
        document = parse_json(payload)
        state = document.get("state") if isinstance(document, dict) else document
    if not isinstance(state, str) or state.strip().lower() not in _ONLINE:
        raise DecodeRejected("invalid_value", f"bridge state {str(state)[:40]!r} is not online/offline")
    fields: dict[str, FieldValue] = {"online": _ONLINE[state.strip().lower()]}
    return [Reading("device_health", fields, received_ns, "received", {"device": device})]


def build(options: Z2mOptions, tz: str) -> DecodeFn:
    profile_plan = {**DEFAULT_FIELDS, **{k: _target(m) for k, m in options.fields.items()}}
    device_plans = {
        name: {**profile_plan, **{k: _target(m) for k, m in fields.items()}}
        for name, fields in options.devices.items()
    }

    def decode(message: DecodeInput) -> list[Reading]:
        if "device" not in message.bindings:  # bridge/state
            return _bridge(message.payload, options.bridge_device, message.received_ns)
        document = message_object(message)
        plan = device_plans.get(message.bindings["device"], profile_plan)
        if "voltage" not in plan:
            plan = {
                **plan,
                "voltage": _MAINS_VOLTAGE if any(k in document for k in _METERING) else _BATTERY_VOLTAGE,
            }
        points = Points()
        for key, raw in document.items():
            target = plan.get(key)
            if target is None or isinstance(raw, dict | list):
                continue
            measurement, field, factor, is_bool = target
            value = to_bool(raw, key=key) if is_bool else number(raw, key=key, factor=factor)
            points.add(measurement, field, value)
        time_ns, source = device_time(document.get("last_seen"), received_ns=message.received_ns, tz=tz)
        return points.readings_or_reject(time_ns, source, detail="no exposed value the profile maps")

    return decode


SPEC = DecoderSpec(name="zigbee2mqtt", options=Z2mOptions, build=build)
