"""shelly-gen2: Shelly Gen2/Gen3 RPC-style MQTT: ``<prefix>/status/<component>`` and ``<prefix>/events/rpc``.

``<prefix>`` is the device's ``topic_prefix`` (its device id unless set), which the user may give several
levels (``shellies/plus1pm``); the profile binds all of them as ``{device:path}``, so the device (and
the key of its known status) is the whole prefix.

``status/em:0`` (Pro 3EM, 3EM Gen3: ``a_act_power``, ``a_voltage``, ``a_current``, ``a_freq`` … per phase
a/b/c → l1/l2/l3, ``total_act_power``), ``status/emdata:0`` (``total_act``, ``total_act_ret`` in Wh → kWh),
``em1:N``/``em1data:N`` (Pro EM, EM Gen3: one channel each), ``switch:N``/``pm1:N`` (``apower``,
``aenergy.total`` in Wh …), ``wifi`` (rssi), ``sys`` (uptime), ``temperature:N``, ``humidity:N``,
``devicepower:N`` (battery). Channels carry the tag ``channel`` (the component id), sensors ``sensor``.

``events/rpc`` carries ``NotifyFullStatus`` (every component) and ``NotifyStatus`` (only the changed
attributes of the changed components). As the Shelly docs prescribe, the deltas are overlaid on the last
known status of that device's component (kept in memory, bounded); a component is reported only when the
delta changed one of its measured values. ``params.ts`` (epoch s) is the time; status topics carry none.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.payloads import Points, message_object, number
from ingest.readings import DecodeRejected, Reading
from ingest.timeparse import device_time

WH = 0.001  # Wh -> kWh
_COMPONENT = re.compile(r"([a-z0-9_]+)(?::([0-9]+))?\Z")  # \Z: "$" would pass "switch:0\n"
_PHASES = (("a", "l1"), ("b", "l2"), ("c", "l3"))

Field_ = tuple[str, str, float | None]  # measurement, field, value
Mapper = Callable[[dict[str, Any], str], list[Field_]]


def _n(status: dict[str, Any], key: str, name: str, factor: float = 1.0) -> float | None:
    return number(status.get(key), key=f"{name}.{key}", factor=factor)


def _nested(status: dict[str, Any], key: str, sub: str, name: str, factor: float = 1.0) -> float | None:
    block = status.get(key)
    return (
        number(block.get(sub), key=f"{name}.{key}.{sub}", factor=factor) if isinstance(block, dict) else None
    )


def _em(s: dict[str, Any], name: str) -> list[Field_]:
    fields: list[Field_] = [("electricity", "power_w", _n(s, "total_act_power", name))]
    for letter, phase in _PHASES:
        fields.append(("electricity", f"power_{phase}_w", _n(s, f"{letter}_act_power", name)))
        fields.append(("electricity", f"voltage_{phase}_v", _n(s, f"{letter}_voltage", name)))
        fields.append(("electricity", f"current_{phase}_a", _n(s, f"{letter}_current", name)))
    freq = next((f for f in (_n(s, f"{p}_freq", name) for p, _ in _PHASES) if f is not None), None)
    fields.append(("electricity", "frequency_hz", freq))
    return fields


def _emdata(s: dict[str, Any], name: str) -> list[Field_]:
    return [
        ("electricity", "energy_import_kwh", _n(s, "total_act", name, WH)),
        ("electricity", "energy_export_kwh", _n(s, "total_act_ret", name, WH)),
    ]


def _em1(s: dict[str, Any], name: str) -> list[Field_]:
    return [
        ("electricity", "power_w", _n(s, "act_power", name)),
        ("electricity", "voltage_l1_v", _n(s, "voltage", name)),
        ("electricity", "current_l1_a", _n(s, "current", name)),
        ("electricity", "power_factor", _n(s, "pf", name)),
        ("electricity", "frequency_hz", _n(s, "freq", name)),
    ]


def _em1data(s: dict[str, Any], name: str) -> list[Field_]:
    return [
        ("electricity", "energy_import_kwh", _n(s, "total_act_energy", name, WH)),
        ("electricity", "energy_export_kwh", _n(s, "total_act_ret_energy", name, WH)),
    ]


def _switch(s: dict[str, Any], name: str) -> list[Field_]:
    return [
        ("electricity", "power_w", _n(s, "apower", name)),
        ("electricity", "voltage_l1_v", _n(s, "voltage", name)),
        ("electricity", "current_l1_a", _n(s, "current", name)),
        ("electricity", "power_factor", _n(s, "pf", name)),
        ("electricity", "frequency_hz", _n(s, "freq", name)),
        ("electricity", "energy_import_kwh", _nested(s, "aenergy", "total", name, WH)),
        ("electricity", "energy_export_kwh", _nested(s, "ret_aenergy", "total", name, WH)),
    ]


# the attributes of each component type that hold energy counters (the ledger's input)
_COUNTERS: dict[str, tuple[str, ...]] = {
    "emdata": ("total_act", "total_act_ret"),
    "em1data": ("total_act_energy", "total_act_ret_energy"),
    "switch": ("aenergy", "ret_aenergy"),
    "pm1": ("aenergy", "ret_aenergy"),
}

_MAPPERS: dict[str, tuple[Mapper, str | None]] = {  # component type -> (mapper, tag for the id)
    "em": (_em, None),
    "emdata": (_emdata, None),
    "em1": (_em1, "channel"),
    "em1data": (_em1data, "channel"),
    "switch": (_switch, "channel"),
    "pm1": (_switch, "channel"),
    "wifi": (lambda s, n: [("device_health", "rssi_dbm", _n(s, "rssi", n))], None),
    "sys": (lambda s, n: [("device_health", "uptime_s", _n(s, "uptime", n))], None),
    "temperature": (lambda s, n: [("environment", "temperature_c", _n(s, "tC", n))], "sensor"),
    "humidity": (lambda s, n: [("environment", "humidity_pct", _n(s, "rh", n))], "sensor"),
    "devicepower": (
        lambda s, n: [
            ("device_health", "battery_pct", _nested(s, "battery", "percent", n)),
            ("device_health", "battery_v", _nested(s, "battery", "V", n)),
        ],
        None,
    ),
}


# Bounds: a message's components (a Shelly Pro has some 20), and what is remembered for the deltas. The
# mappers read short scalars, at most one level deep; only those are kept, so a crafted status cannot
# make the known state grow (a review kept 190 MB with 600 messages of thousands of components).
MAX_COMPONENTS = 64  # per message, and remembered per device
MAX_KEPT_VALUES = 32  # per component and per nested object
MAX_KEPT_TEXT = 32  # characters of a string value ("230.1": numbers as strings)
MAX_KNOWN_COMPONENTS = 20_000  # over all devices: beyond, the least recently heard devices are forgotten


def _scalar(value: Any) -> bool:
    return (
        value is None
        or type(value) in (bool, int, float)
        or (type(value) is str and len(value) <= MAX_KEPT_TEXT)
    )


def _kept(status: dict[str, Any]) -> dict[str, Any]:
    """What of a component's status is remembered for its next delta: short scalars, one level deep."""
    kept: dict[str, Any] = {}
    for key, value in status.items():
        if len(kept) == MAX_KEPT_VALUES:
            break
        if type(value) is dict:
            kept[key] = {k: v for k, v in list(value.items())[:MAX_KEPT_VALUES] if _scalar(v)}
        elif _scalar(value):
            kept[key] = value
    return kept


def _merge(known: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    merged = dict(known)
    for key, value in delta.items():
        old = merged.get(key)
        merged[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


class ShellyGen2Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_devices: int = Field(10_000, ge=1, description="devices whose last status is kept for the deltas")


def build(options: ShellyGen2Options, tz: str) -> DecodeFn:
    known: OrderedDict[tuple[str, str], dict[str, dict[str, Any]]] = OrderedDict()
    components = [0]  # remembered over all devices

    def _device_state(message: DecodeInput) -> dict[str, dict[str, Any]]:
        key = (message.bindings.get("gateway", ""), message.bindings.get("device", ""))
        state = known.pop(key, None) or {}
        known[key] = state  # most recently used last
        while len(known) > options.max_devices or (components[0] > MAX_KNOWN_COMPONENTS and len(known) > 1):
            components[0] -= len(known.popitem(last=False)[1])
        return state

    def _remember(state: dict[str, dict[str, Any]], updates: dict[str, dict[str, Any]]) -> None:
        components[0] -= len(state)
        for name, status in updates.items():
            state.pop(name, None)  # most recent last
            state[name] = _kept(status)
        while len(state) > MAX_COMPONENTS:
            del state[next(iter(state))]
        components[0] += len(state)

    def _report(points: Points, component: str, status: dict[str, Any]) -> None:
        kind, index = _parse(component)
        mapper, tag = _MAPPERS[kind]
        tags = {tag: index} if tag else {}
        for measurement, field, value in mapper(status, component):
            points.add(measurement, field, value, tags)

    def _components(params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [(c, s) for c, s in params.items() if isinstance(s, dict) and _parse(c)[0] in _MAPPERS]

    def decode(message: DecodeInput) -> list[Reading]:
        document = message_object(message)
        state = _device_state(message)
        points = Points()
        component = message.bindings.get("component")
        if component is not None:  # status/<component>: the full status of one component
            if _parse(component)[0] not in _MAPPERS:
                raise DecodeRejected("no_readings", f"component {component[:40]!r} holds no measurements")
            _report(points, component, document)
            _remember(state, {component: document})  # only a status whose values decoded is remembered
            return points.readings_or_reject(message.received_ns, "received", detail=f"{component}: empty")
        method, params = document.get("method"), document.get("params")
        if not isinstance(method, str) or not isinstance(params, dict):
            raise DecodeRejected("invalid_payload", "events/rpc without method and params object")
        updates: dict[str, dict[str, Any]] = {}
        found = _components(params)
        if len(found) > MAX_COMPONENTS:
            raise DecodeRejected(
                "too_complex", f"{len(found)} components in one {method[:40]}, limit {MAX_COMPONENTS}"
            )
        if method == "NotifyFullStatus":
            for name, status in found:
                updates[name] = status
                _report(points, name, status)
        elif method == "NotifyStatus":
            for name, delta in found:
                updates[name] = _merge(state.get(name, {}), delta)
                probe = Points()
                _report(probe, name, delta)
                if probe:  # the delta changed a measured value: report the overlaid status, but a
                    # counter only as the delta carries it (overlaid, it may be older than a delta that
                    # arrived before this one: out of order, the ledger would take the drop for a new meter)
                    counters = _COUNTERS.get(_parse(name)[0], ())
                    shown = {k: v for k, v in updates[name].items() if k in delta or k not in counters}
                    _report(points, name, shown)
        else:
            raise DecodeRejected("no_readings", f"{method[:40]} carries no status")
        _remember(state, updates)
        time_ns, source = device_time(params.get("ts"), received_ns=message.received_ns, tz=tz)
        return points.readings_or_reject(time_ns, source, detail=f"{method}: no measured component")

    return decode


def _parse(component: str) -> tuple[str, str]:
    found = _COMPONENT.match(component)
    if not found:
        return "", ""
    return found.group(1), found.group(2) or "0"


SPEC = DecoderSpec(name="shelly-gen2", options=ShellyGen2Options, build=build)
