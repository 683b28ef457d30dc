"""ttn-v3: The Things Stack v3 uplink messages, ``v3/<application>@<tenant>/devices/<device>/up``.

The sensor values come from ``uplink_message.decoded_payload`` (the application's payload formatter);
``fields`` maps dotted paths in it to canonical fields, ``devices.<device id>`` per device::

    {"end_device_ids":{"device_id":"street-07", …},"received_at":"2025-11-28T09:00:01.512345678Z",
     "uplink_message":{"f_port":2,"f_cnt":1532,"frm_payload":"…","decoded_payload":{"temperature":8.4},
      "rx_metadata":[{"gateway_ids":{"gateway_id":"gw-a"},"rssi":-97,"channel_rssi":-97,"snr":6.25}],
      "received_at":"2025-11-28T09:00:01.498765432Z"}}

The time is ``uplink_message.received_at`` (the network server's, ns precision cut to µs), else the
top-level ``received_at``. ``device_health`` gets the best ``rssi`` of the receiving gateways and that
gateway's ``snr`` (field ``snr_db``). An uplink without ``decoded_payload`` (no payload formatter) or
without a mapped value is rejected: its raw ``frm_payload`` is kept in quarantine.

The CayenneLPP formatter names each value by its LPP type and channel, ``{"temperature_3": 27.2,
"relative_humidity_2": 81.5}``: a top-level key ``<mapped key>_<digits>`` is read as the mapped key with
the channel as the tag ``channel``. Types without a mapping (``analog_in``, ``digital_in``, ``gps``, …) are
left out like any unmapped key.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.generic_json import FieldMap
from ingest.decoders.payloads import Points, message_object, number
from ingest.decoders.values import lookup, to_bool
from ingest.readings import DecodeRejected, FieldValue, Reading
from ingest.timeparse import device_time

Target = tuple[str, str, float, bool]

_LPP_KEY = re.compile(r"(?P<name>[a-z][a-z0-9_]*?)_(?P<channel>[0-9]{1,3})")


class TtnOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[str, FieldMap] = Field(min_length=1, description="path in decoded_payload -> field")
    devices: dict[str, dict[str, FieldMap]] = Field(
        default_factory=dict, description="device id -> path -> field, over the profile's"
    )
    radio_health: bool = Field(True, description="device_health from the gateways' rssi and snr")


def _target(mapping: FieldMap) -> Target:
    return (mapping.measurement, mapping.field, mapping.factor, mapping.is_bool)


def _radio(uplink: dict[str, Any], points: Points) -> None:
    best: tuple[float, float | None] | None = None
    metadata = uplink.get("rx_metadata")
    for index, gateway in enumerate(metadata if isinstance(metadata, list) else []):
        if not isinstance(gateway, dict):
            continue
        raw = gateway.get("rssi", gateway.get("channel_rssi"))
        rssi = number(raw, key=f"rx_metadata.{index}.rssi")
        if rssi is not None and (best is None or rssi > best[0]):
            best = (rssi, number(gateway.get("snr"), key=f"rx_metadata.{index}.snr"))
    if best is not None:
        points.add("device_health", "rssi_dbm", best[0])
        points.add("device_health", "snr_db", best[1])


def _value(raw: Any, target: Target, key: str) -> FieldValue | None:
    is_bool, factor = target[3], target[2]
    return to_bool(raw, key=key) if is_bool else number(raw, key=key, factor=factor)


def _lpp_channels(decoded: dict[str, Any], plan: dict[str, Target], points: Points) -> None:
    """CayenneLPP keys, ``temperature_3``: the mapped type ``temperature`` on the tag ``channel=3``."""
    for key, raw in decoded.items():
        match = _LPP_KEY.fullmatch(key) if key not in plan else None
        target = plan.get(match["name"]) if match else None
        if match is None or target is None or isinstance(raw, dict):
            continue
        channel = str(int(match["channel"]))
        points.add(target[0], target[1], _value(raw, target, key), tags={"channel": channel})


def build(options: TtnOptions, tz: str) -> DecodeFn:
    profile_plan = {path: _target(m) for path, m in options.fields.items()}
    device_plans = {
        device: {**profile_plan, **{path: _target(m) for path, m in fields.items()}}
        for device, fields in options.devices.items()
    }

    def decode(message: DecodeInput) -> list[Reading]:
        document = message_object(message)
        uplink = document.get("uplink_message")
        if not isinstance(uplink, dict):
            raise DecodeRejected("invalid_payload", "no uplink_message object")
        decoded = uplink.get("decoded_payload")
        if not isinstance(decoded, dict):
            raise DecodeRejected("no_readings", "no decoded_payload (is a payload formatter set?)")
        plan = device_plans.get(message.bindings.get("device", ""), profile_plan)
        points = Points()
        for path, target in plan.items():
            raw = lookup(decoded, path)
            if not isinstance(raw, dict):
                points.add(target[0], target[1], _value(raw, target, path))
        _lpp_channels(decoded, plan, points)
        if not points:
            raise DecodeRejected("no_readings", "decoded_payload holds no mapped value")
        if options.radio_health:
            _radio(uplink, points)
        raw_time = uplink.get("received_at") or document.get("received_at")
        time_ns, source = device_time(raw_time, received_ns=message.received_ns, tz=tz, fmt="iso")
        return points.readings(time_ns, source)

    return decode


SPEC = DecoderSpec(name="ttn-v3", options=TtnOptions, build=build)
