"""esphome: ESPHome's MQTT sensor states, ``<node>/sensor/<object id>/state`` with a plain value ("21.50").

ESPHome names the topic after the sensor's object id (its name in lower case, spaces as ``_``), which the
node's author chose. A sensor maps by, in order: ``devices.<node>.<object id>``, ``sensors.<object id>``
(over a built-in set of usual names), then the longest known name that ends the object id after an ``_``
(``living_room_temperature`` → ``temperature``). A sensor without state publishes ``nan``: rejected as
``no_readings``. Points carry the tag ``sensor`` (the object id), so two temperature sensors on one node
stay two series. There is no device time: points carry the receive time.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.generic_json import FieldMap
from ingest.decoders.payloads import Points, number, plain_value
from ingest.decoders.values import to_bool
from ingest.readings import DecodeRejected, FieldValue, Reading

Target = tuple[str, str, float, bool]  # measurement, field, factor, is_bool


def _t(measurement: str, field: str, factor: float = 1.0) -> Target:
    return (measurement, field, factor, False)


DEFAULT_SENSORS: dict[str, Target] = {
    "temperature": _t("environment", "temperature_c"),
    "humidity": _t("environment", "humidity_pct"),
    "pressure": _t("environment", "pressure_hpa"),
    "co2": _t("environment", "co2_ppm"),
    "illuminance": _t("environment", "illuminance_lx"),
    "pm_2_5": _t("environment", "pm25_ugm3"),
    "pm25": _t("environment", "pm25_ugm3"),
    "pm_10_0": _t("environment", "pm10_ugm3"),
    "pm10": _t("environment", "pm10_ugm3"),
    "voc_index": _t("environment", "voc_index"),
    "wifi_signal": _t("device_health", "rssi_dbm"),
    "uptime": _t("device_health", "uptime_s"),
    "battery_level": _t("device_health", "battery_pct"),
    "battery_voltage": _t("device_health", "battery_v"),
    "power": _t("electricity", "power_w"),
    "voltage": _t("electricity", "voltage_l1_v"),
    "current": _t("electricity", "current_l1_a"),
}


def _target(mapping: FieldMap) -> Target:
    return (mapping.measurement, mapping.field, mapping.factor, mapping.is_bool)


class EsphomeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_sensors: bool = Field(True, description="start from the built-in usual sensor names")
    sensors: dict[str, FieldMap] = Field(default_factory=dict, description="object id -> field")
    devices: dict[str, dict[str, FieldMap]] = Field(
        default_factory=dict, description="node -> object id -> field, before the profile's"
    )
    suffix_match: bool = Field(True, description="map 'kitchen_temperature' by its known ending")


def _find(sensor: str, plans: list[dict[str, Target]], *, suffix: bool) -> Target | None:
    for plan in plans:
        if sensor in plan:
            return plan[sensor]
    if suffix:
        for plan in plans:
            endings = [name for name in plan if sensor.endswith("_" + name)]
            if endings:
                return plan[max(endings, key=len)]
    return None


def build(options: EsphomeOptions, _tz: str) -> DecodeFn:
    profile_plan = {**(DEFAULT_SENSORS if options.default_sensors else {})}
    profile_plan.update({name: _target(m) for name, m in options.sensors.items()})
    device_plans = {
        node: {name: _target(m) for name, m in sensors.items()} for node, sensors in options.devices.items()
    }

    def decode(message: DecodeInput) -> list[Reading]:
        sensor = message.bindings.get("sensor", "")
        plans = [device_plans.get(message.bindings.get("device", ""), {}), profile_plan]
        target = _find(sensor, plans, suffix=options.suffix_match)
        if target is None:
            raise DecodeRejected("no_readings", f"sensor {sensor[:60]!r} is not mapped")
        text = plain_value(message.payload)
        if text.lower() in ("nan", "-nan", "unknown", "unavailable"):
            raise DecodeRejected("no_readings", f"sensor {sensor[:60]!r} has no state ({text})")
        measurement, field, factor, is_bool = target
        value: FieldValue | None = (
            to_bool(text, key=sensor) if is_bool else number(text, key=sensor, factor=factor)
        )
        points = Points()
        points.add(measurement, field, value, {"sensor": sensor})
        return points.readings_or_reject(message.received_ns, "received", detail=f"{sensor}: empty value")

    return decode


SPEC = DecoderSpec(name="esphome", options=EsphomeOptions, build=build)
