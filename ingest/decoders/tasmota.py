"""tasmota: Tasmota telemetry of plugs and energy monitors, environment sensors and the device state.

``tele/<dev>/SENSOR``::

    {"Time":"2025-11-28T10:00:00","ENERGY":{"TotalStartTime":"2024-03-01T12:00:00","Total":123.456,
     "Yesterday":1.2,"Today":0.8,"Power":45,"ApparentPower":50,"ReactivePower":21,"Factor":0.90,
     "Voltage":231,"Current":0.195}}

Three-phase and multi-channel monitors send arrays (``"Power":[10,20,30]``); ``arrays: phases`` (default)
turns them into ``power_l1_w`` … with ``power_w`` their sum, ``arrays: channels`` into one point per
channel (tag ``channel``). Environment sensor groups
(``{"BME280":{"Temperature":21.3,…},"PressureUnit":"hPa","TempUnit":"C"}``) become ``environment`` points
tagged ``sensor``. A SENSOR message with neither is a meter-reader script's
(profile tasmota-sml): :class:`NotThisProfile`. A script's groups beside them are read by tasmota-sml
after this profile (``also_read_by``), its readings added to these.

``stat/<dev>/STATUS10``: the answer to the ``Status 10`` command, the SENSOR message wrapped in
``StatusSNS`` (``{"StatusSNS":{"Time":"…","ENERGY":{…}}}``), unwrapped and read as SENSOR.

``tele/<dev>/ENERGY``: the old (5.x) firmware's energy telemetry, the ENERGY block at the top level.

``tele/<dev>/STATE``: ``UptimeSec`` (old firmware: ``Uptime`` as ``"1T02:03:04"`` or in hours),
``Wifi.Signal`` (dBm) and ``Wifi.RSSI`` (a 0–100 % quality, not dBm) → ``device_health``.

``Time`` is the device's local time without zone (or with offset under SetOption52); 1970 before NTP
falls back to the receive time.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ingest.decoders import DeclineFn, DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.payloads import PHASES, Points, check_groups, message_object, number, per_phase
from ingest.readings import DecodeRejected, NotThisProfile, Reading
from ingest.timeparse import device_time

ArrayMode = Literal["phases", "channels"]

# ENERGY key -> (field for a scalar or a channel, per-phase field pattern or None, how arrays combine)
_ENERGY: dict[str, tuple[str, str | None, str]] = {
    "Total": ("energy_import_kwh", None, "sum"),
    "ExportActive": ("energy_export_kwh", None, "sum"),
    "Power": ("power_w", "power_{}_w", "sum"),
    "Voltage": ("voltage_l1_v", "voltage_{}_v", "none"),
    "Current": ("current_l1_a", "current_{}_a", "none"),
    "Factor": ("power_factor", None, "none"),
    "Frequency": ("frequency_hz", None, "first"),
}
_ENV_KEYS = {"Temperature", "Humidity", "Pressure", "CarbonDioxide", "Illuminance"}
_ENV_EXTRA = {"DewPoint", "SeaPressure", "Id", "eCO2", "TVOC", "Gas", "AbsHumidity", "VaporPressure"}
_ENV_ANY = _ENV_KEYS | _ENV_EXTRA
_PRESSURE_TO_HPA = {"hPa": 1.0, "mmHg": 1.333224, "inHg": 33.863886}
_UPTIME = re.compile(r"^\s*(\d{1,6})T(\d{1,2}):(\d{2}):(\d{2})\s*$")
STATUS_SENSORS = "/STATUS10"  # the end of a Status 10 answer's topic


class DeviceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arrays: ArrayMode = Field(description="what the index of an ENERGY array means for this device")


class TasmotaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    arrays: ArrayMode = Field("phases", description="phases: l1/l2/l3 fields; channels: tag channel")
    devices: dict[str, DeviceOptions] = Field(default_factory=dict, description="per-device overrides")


def _energy(block: dict[str, Any], points: Points, arrays: ArrayMode) -> None:
    for key, (field, phase_field, combine) in _ENERGY.items():
        raw = block.get(key)
        values = per_phase(raw, key=f"ENERGY.{key}")
        if values is None:
            points.add("electricity", field, number(raw, key=f"ENERGY.{key}"))
            continue
        present = [v for v in values if v is not None]
        if arrays == "channels":
            for index, value in enumerate(values):
                points.add("electricity", field, value, {"channel": str(index)})
            continue
        if combine == "sum" and present:
            points.add("electricity", field, sum(present))
        elif combine == "first" and present:
            points.add("electricity", field, present[0])
        if phase_field is not None:
            for phase, value in zip(PHASES, values, strict=False):
                points.add("electricity", phase_field.format(phase), value)


def is_sensor_group(keys: AbstractSet[str]) -> bool:
    """The keys of an environment sensor driver's group; a group with other keys is a script's
    (tasmota-sml)."""
    # a keys view's isdisjoint walks the smaller side (the five names), not every key of a script's group
    return not keys.isdisjoint(_ENV_KEYS) and keys <= _ENV_ANY


def _is_sensor_group(block: Any) -> bool:
    return isinstance(block, dict) and is_sensor_group(block.keys())


def _environment(document: dict[str, Any], points: Points) -> bool:
    """The environment sensor groups into ``points``; True when a meter script's group (an object
    that is neither ENERGY nor a sensor's) is left for tasmota-sml."""
    temp_unit = document.get("TempUnit", "C")
    press_factor = _PRESSURE_TO_HPA.get(str(document.get("PressureUnit", "hPa")))
    rest = False
    for group, block in document.items():
        if not _is_sensor_group(block):
            rest = rest or (type(block) is dict and group != "ENERGY")
            continue
        tags = {"sensor": group or "_"}
        temperature = number(block.get("Temperature"), key=f"{group}.Temperature")
        if temperature is not None and temp_unit == "F":
            temperature = (temperature - 32.0) * 5.0 / 9.0
        points.add("environment", "temperature_c", temperature, tags)
        humidity = number(block.get("Humidity"), key=f"{group}.Humidity")
        points.add("environment", "humidity_pct", humidity, tags)
        if press_factor is not None:
            pressure = number(block.get("Pressure"), key=f"{group}.Pressure", factor=press_factor)
            points.add("environment", "pressure_hpa", pressure, tags)
        points.add("environment", "co2_ppm", number(block.get("CarbonDioxide"), key="CarbonDioxide"), tags)
        points.add("environment", "illuminance_lx", number(block.get("Illuminance"), key="Illuminance"), tags)
    return rest


def _uptime_s(document: dict[str, Any]) -> float | None:
    if document.get("UptimeSec") is not None:
        return number(document["UptimeSec"], key="UptimeSec")
    raw = document.get("Uptime")
    if isinstance(raw, str):
        found = _UPTIME.match(raw)
        if found:
            days, hours, minutes, seconds = (int(part) for part in found.groups())
            return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return number(raw, key="Uptime", factor=3600.0)  # firmware before 5.x counted in hours
    return None


def _state(document: dict[str, Any], points: Points) -> None:
    wifi = document.get("Wifi")
    if isinstance(wifi, dict):
        points.add("device_health", "rssi_dbm", number(wifi.get("Signal"), key="Wifi.Signal"))
        points.add("device_health", "link_quality", number(wifi.get("RSSI"), key="Wifi.RSSI"))
    points.add("device_health", "uptime_s", _uptime_s(document))


_NOT_SENSOR = "SENSOR without ENERGY block or known sensor group"


def sensor_document(document: dict[str, Any], topic: str) -> dict[str, Any]:
    """The SENSOR-like document of a message: a Status 10 answer's ``StatusSNS``, else the message."""
    if not topic.endswith(STATUS_SENSORS):
        return document
    sensors = document.get("StatusSNS")
    if not isinstance(sensors, dict):
        raise DecodeRejected("invalid_payload", "STATUS10 without a StatusSNS object")
    return sensors


def _declined(document: dict[str, Any], kind: str) -> bool:
    """A SENSOR message without ENERGY block and sensor group: a meter-reader script's (tasmota-sml)."""
    if kind == "STATE" or kind == "ENERGY" or "ENERGY" in document:
        return False
    return not any(map(_is_sensor_group, document.values()))


def build_declines(_options: TasmotaOptions, _tz: str) -> DeclineFn:
    def declines(message: DecodeInput) -> str | None:
        kind = message.topic.rsplit("/", 1)[-1]
        document = sensor_document(message_object(message), message.topic)
        return _NOT_SENSOR if _declined(document, kind) else None

    return declines


def build(options: TasmotaOptions, tz: str) -> DecodeFn:
    def decode(message: DecodeInput) -> list[Reading]:
        kind = message.topic.rsplit("/", 1)[-1]
        document = sensor_document(message_object(message), message.topic)
        if _declined(document, kind):  # before any work: on a shared topic most are a script's (SML)
            raise NotThisProfile(_NOT_SENSOR)
        check_groups(document)
        device = message.bindings.get("device", "")
        arrays = options.devices[device].arrays if device in options.devices else options.arrays
        points = Points()
        if kind == "STATE":
            _state(document, points)
        elif kind == "ENERGY":
            _energy(document, points, arrays)
        else:
            energy = document.get("ENERGY")
            if energy is not None and not isinstance(energy, dict):
                raise DecodeRejected("invalid_payload", f"ENERGY is a {type(energy).__name__}")
            if energy is not None:
                _energy(energy, points, arrays)
            rest = _environment(document, points)
            if energy is None and not points:
                raise NotThisProfile(_NOT_SENSOR)
            message.rest = rest  # a meter script's group beside ours: tasmota-sml reads it (also_read_by)
        time_ns, source = device_time(document.get("Time"), received_ns=message.received_ns, tz=tz)
        return points.readings_or_reject(time_ns, source, detail=f"{kind}: no value the profile maps")

    return decode


SPEC = DecoderSpec(name="tasmota", options=TasmotaOptions, build=build, build_declines=build_declines)
