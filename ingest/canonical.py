"""The canonical schema: measurements, their fields and the unit each field is stored in.

Profiles may add fields to a measurement, never rename these. See docs/canonical-schema.md.
"""

from __future__ import annotations

CANONICAL: dict[str, dict[str, str]] = {
    "electricity": {
        "energy_import_kwh": "kWh",
        "energy_export_kwh": "kWh",
        "power_w": "W",
        "power_l1_w": "W",
        "power_l2_w": "W",
        "power_l3_w": "W",
        "voltage_l1_v": "V",
        "voltage_l2_v": "V",
        "voltage_l3_v": "V",
        "current_l1_a": "A",
        "current_l2_a": "A",
        "current_l3_a": "A",
        "frequency_hz": "Hz",
        "power_factor": "1",
    },
    "heat": {
        "energy_kwh": "kWh",
        "volume_m3": "m3",
        "power_kw": "kW",
        "flow_temp_c": "degC",
        "return_temp_c": "degC",
        "flow_m3h": "m3/h",
    },
    "gas": {"volume_m3": "m3"},
    "water": {"volume_m3": "m3"},
    "pv": {"energy_kwh": "kWh", "power_w": "W"},
    "ev_charger": {"energy_kwh": "kWh", "power_w": "W", "charging": "bool"},
    "environment": {
        "temperature_c": "degC",
        "humidity_pct": "%",
        "pressure_hpa": "hPa",
        "co2_ppm": "ppm",
        "voc_index": "1",
        "pm25_ugm3": "ug/m3",
        "pm10_ugm3": "ug/m3",
        "illuminance_lx": "lx",
        "noise_dba": "dBA",
    },
    "device_health": {
        "rssi_dbm": "dBm",
        "link_quality": "1",
        "battery_pct": "%",
        "battery_v": "V",
        "uptime_s": "s",
    },
}

# Factor that turns a value in the source unit into the canonical unit: canonical = source * factor.
_TO_BASE: dict[str, tuple[str, float]] = {
    "Wh": ("kWh", 0.001),
    "kWh": ("kWh", 1.0),
    "MWh": ("kWh", 1000.0),
    "W": ("W", 1.0),
    "kW": ("W", 1000.0),
    "V": ("V", 1.0),
    "mV": ("V", 0.001),
    "A": ("A", 1.0),
    "mA": ("A", 0.001),
    "Hz": ("Hz", 1.0),
    "m3": ("m3", 1.0),
    "l": ("m3", 0.001),
    "m3/h": ("m3/h", 1.0),
    "l/h": ("m3/h", 0.001),
    "degC": ("degC", 1.0),
    "%": ("%", 1.0),
    "hPa": ("hPa", 1.0),
    "Pa": ("hPa", 0.01),
    "ppm": ("ppm", 1.0),
    "ug/m3": ("ug/m3", 1.0),
    "lx": ("lx", 1.0),
    "dBA": ("dBA", 1.0),
    "dBm": ("dBm", 1.0),
    "s": ("s", 1.0),
    "min": ("s", 60.0),
    "h": ("s", 3600.0),
    "1": ("1", 1.0),
    "bool": ("bool", 1.0),
}
# kW is stored as kW in heat.power_kw; W as W in power_w: the base depends on the target unit.
_SPECIAL: dict[tuple[str, str], float] = {("W", "kW"): 0.001, ("kW", "kW"): 1.0, ("MW", "kW"): 1000.0}

UNITS = sorted(set(_TO_BASE) | {"MW"})


def canonical_unit(measurement: str, field: str) -> str | None:
    """The unit of a canonical field, or None when the field is not part of the canonical schema."""
    return CANONICAL.get(measurement, {}).get(field)


def conversion_factor(source_unit: str, target_unit: str) -> float:
    """Factor from ``source_unit`` to ``target_unit``; ValueError when they measure different things."""
    if (source_unit, target_unit) in _SPECIAL:
        return _SPECIAL[(source_unit, target_unit)]
    try:
        src_base, src_factor = _TO_BASE[source_unit]
        dst_base, dst_factor = _TO_BASE[target_unit]
    except KeyError as exc:
        raise ValueError(f"unknown unit {exc.args[0]!r}; known: {', '.join(UNITS)}") from None
    if src_base != dst_base:
        raise ValueError(f"cannot convert {source_unit} to {target_unit}")
    return src_factor / dst_factor
