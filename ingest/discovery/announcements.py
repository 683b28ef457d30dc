"""Device announcements: what a device says about itself when it connects (pure, no I/O).

Recognised under a gateway's prefix ``lab/<gateway>/``, in the vendors' documented formats:

``tasmota/discovery/<mac>/config``  Tasmota (retained, at every MQTT connect): ``{"t": topic, "md": module,
                                    "sw": version, "ip", "mac", "dn": device name, "hn": host name, …}``;
                                    the device's data topics are ``tele/<t>/…``, so ``t`` is its native id
``zigbee2mqtt/bridge/devices``      zigbee2mqtt (retained, at start and on changes): a list of devices
                                    ``{"friendly_name", "ieee_address", "type", "definition": {"model",
                                    "vendor", "description"}}`` (before 1.17: ``ieeeAddr``, ``model`` and
                                    ``vendor`` at the top); the coordinator is left out
``shellies/announce``               Shelly Gen1 (at connect, and on ``shellies/command`` ``announce``):
                                    ``{"id", "model", "mac", "ip", "fw_ver", "new_fw"}``; ``id`` is the
                                    ``<id>`` of its ``shellies/<id>/…`` topics
``<id>/online``                     Shelly Gen2 (its retained last will): ``true`` / ``false``

How they reach the technicians (the choice, and why): the ingester subscribes to these topics through the
``announcements`` profile (``device_profiles/announcements.yaml``), whose decoder rejects every valid one
with the reason ``announcement``. So an announcement is kept in the quarantine with its exact payload and
counted there like any other message (received = written + in spool + quarantined holds as it is), it is
logged at INFO rather than as a warning, and ``ingest.discovery.listing`` reads it from the same file as
the ``unknown_device`` and ``no_profile`` entries. A second MQTT client in the API process was the other
way: it would see retained announcements from before the ingester's first subscription, but it would miss
every announcement that is not retained (Shelly Gen1) while the API is down, needs the broker admin's
password in the API and a registry table of its own; the ingester's persistent session misses none.
What this leaves out: a retained announcement published before the ingester ever subscribed (the
ingester asks for no retained messages); the device repeats it at its next connect, and its data
messages list it meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest.decoders.payloads import parse_json, payload_text
from ingest.readings import DecodeRejected

MAX_ANNOUNCED = 500  # devices read from one zigbee2mqtt bridge/devices message
_TEXT_MAX = 120


@dataclass(frozen=True, slots=True)
class Announced:
    """One device as it announced itself."""

    native_id: str  # what its data topics call it (the profiles' {device})
    vendor: str  # tasmota | zigbee2mqtt | shelly-gen1 | shelly-gen2
    profile: str | None  # the device profile that decodes its data messages, as far as one can tell
    model: str = ""
    firmware: str = ""
    address: str = ""  # IP address
    mac: str = ""
    name: str = ""

    def details(self) -> dict[str, str]:
        values = {
            "model": self.model,
            "firmware": self.firmware,
            "address": self.address,
            "mac": self.mac,
            "name": self.name,
        }
        return {key: value for key, value in values.items() if value}


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return ""
    cleaned = "".join(c for c in value if c.isprintable())
    return cleaned[:_TEXT_MAX]


def _object(payload: bytes) -> dict[str, Any]:
    document = parse_json(payload)
    if not isinstance(document, dict):
        raise DecodeRejected("invalid_payload", f"expected a JSON object, got {type(document).__name__}")
    return document


def _tasmota(payload: bytes) -> list[Announced]:
    config = _object(payload)
    topic = _text(config.get("t"))
    if not topic:
        raise DecodeRejected("invalid_payload", "Tasmota discovery config without its topic 't'")
    return [
        Announced(
            native_id=topic,
            vendor="tasmota",
            profile="tasmota",
            model=_text(config.get("md")),
            firmware=_text(config.get("sw")),
            address=_text(config.get("ip")),
            mac=_text(config.get("mac")),
            name=_text(config.get("dn")) or _text(config.get("hn")),
        )
    ]


def _zigbee2mqtt(payload: bytes) -> list[Announced]:
    devices = parse_json(payload)
    if not isinstance(devices, list):
        raise DecodeRejected("invalid_payload", "zigbee2mqtt bridge/devices is not a list")
    found = []
    for device in devices[:MAX_ANNOUNCED]:
        if not isinstance(device, dict) or device.get("type") == "Coordinator":
            continue
        name = _text(device.get("friendly_name"))
        if not name:
            continue
        definition = device.get("definition")
        definition = definition if isinstance(definition, dict) else device
        model = " ".join(filter(None, (_text(definition.get("vendor")), _text(definition.get("model")))))
        found.append(
            Announced(
                native_id=name,
                vendor="zigbee2mqtt",
                profile="zigbee2mqtt",
                model=model,
                firmware=_text(device.get("software_build_id") or device.get("softwareBuildID")),
                mac=_text(device.get("ieee_address") or device.get("ieeeAddr")),
                name=_text(definition.get("description")),
            )
        )
    return found


def _shelly_gen1(payload: bytes) -> list[Announced]:
    announce = _object(payload)
    device_id = _text(announce.get("id"))
    if not device_id:
        raise DecodeRejected("invalid_payload", "Shelly announce without 'id'")
    return [
        Announced(
            native_id=device_id,
            vendor="shelly-gen1",
            profile="shelly-gen1",
            model=_text(announce.get("model")),
            firmware=_text(announce.get("fw_ver")),
            address=_text(announce.get("ip")),
            mac=_text(announce.get("mac")),
        )
    ]


def _shelly_gen2(device_id: str, payload: bytes) -> list[Announced]:
    state = payload_text(payload).strip().lower()
    if state not in ("true", "false"):
        raise DecodeRejected("invalid_payload", f"online state {state[:20]!r} is not true/false")
    return [Announced(native_id=device_id, vendor="shelly-gen2", profile="shelly-gen2")]


def parse(topic: str, payload: bytes) -> list[Announced]:
    """The devices an announcement on ``topic`` (after ``lab/<gateway>/``) names; [] when the topic is
    none. Raises DecodeRejected for an announcement topic whose payload is not in the vendor's format."""
    levels = topic.split("/")
    if len(levels) == 4 and levels[:2] == ["tasmota", "discovery"] and levels[3] == "config":
        return _tasmota(payload)
    if levels == ["zigbee2mqtt", "bridge", "devices"]:
        return _zigbee2mqtt(payload)
    if levels == ["shellies", "announce"]:
        return _shelly_gen1(payload)
    if len(levels) == 2 and levels[1] == "online" and levels[0]:
        return _shelly_gen2(levels[0], payload)
    return []


def gateway_and_rest(topic: str, prefix: str = "") -> tuple[str, str] | None:
    """(gateway, topic after ``lab/<gateway>/``) of a topic as received, or None outside ``lab/``."""
    if not topic.startswith(prefix):
        return None
    levels = topic[len(prefix) :].split("/", 2)
    if len(levels) < 3 or levels[0] != "lab" or not levels[1]:
        return None
    return levels[1], levels[2]
