"""shelly-gen1: Shelly Gen1 MQTT, one plain value per topic.

``shellies/<id>/emeter/<n>/<quantity>`` (Shelly EM, 3EM): ``power`` W, ``voltage`` V, ``current`` A,
``pf``, ``total`` and ``total_returned`` in Wh (→ kWh). ``shellies/<id>/relay/<n>/power`` W and
``relay/<n>/energy`` in watt-minutes (→ kWh; the counter restarts with the device).

What ``<n>`` means depends on the device: on a 3EM the emeters are the phases (``emeter/0/power`` →
``power_l1_w``; energy counters and power factor, which have no per-phase field, get the tag ``phase``);
on an EM, a plug or a relay they are independent channels (tag ``channel``). Devices whose id starts with
one of ``phase_devices`` count as three-phase, ``devices`` overrides per device.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.payloads import PHASES, Points, number, plain_value
from ingest.readings import DecodeRejected, Reading

ChannelMode = Literal["phases", "channels"]
WATT_MINUTE = 1.0 / 60_000.0  # Wmin -> kWh

# quantity -> (field on a channel, per-phase field pattern or None, factor)
_EMETER: dict[str, tuple[str, str | None, float]] = {
    "power": ("power_w", "power_{}_w", 1.0),
    "voltage": ("voltage_l1_v", "voltage_{}_v", 1.0),
    "current": ("current_l1_a", "current_{}_a", 1.0),
    "pf": ("power_factor", None, 1.0),
    "total": ("energy_import_kwh", None, 0.001),
    "total_returned": ("energy_export_kwh", None, 0.001),
}
_RELAY: dict[str, tuple[str, str | None, float]] = {
    "power": ("power_w", None, 1.0),
    "energy": ("energy_import_kwh", None, WATT_MINUTE),
}


class ShellyGen1Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phase_devices: list[str] = Field(
        default_factory=lambda: ["shellyem3-", "shelly3em-"],
        description="device id prefixes whose emeter channels are the phases L1-L3",
    )
    devices: dict[str, ChannelMode] = Field(default_factory=dict, description="per-device override")


def build(options: ShellyGen1Options, _tz: str) -> DecodeFn:
    prefixes = tuple(options.phase_devices)

    def mode(device: str) -> ChannelMode:
        if device in options.devices:
            return options.devices[device]
        return "phases" if device.startswith(prefixes) else "channels"

    def decode(message: DecodeInput) -> list[Reading]:
        levels = message.topic.split("/")
        quantity, channel = levels[-1], message.bindings.get("channel", "0")
        table = _RELAY if len(levels) >= 3 and levels[-3] == "relay" else _EMETER
        if quantity not in table:
            raise DecodeRejected("no_readings", f"quantity {quantity[:40]!r} is not mapped")
        field, phase_field, factor = table[quantity]
        text = plain_value(message.payload)
        value = number(text, key=quantity, factor=factor)
        if value is None:
            raise DecodeRejected("no_readings", f"{quantity}: empty value")
        points = Points()
        if table is _EMETER and mode(message.bindings.get("device", "")) == "phases":
            if not channel.isdigit() or int(channel) >= len(PHASES):
                raise DecodeRejected("invalid_payload", f"emeter {channel[:10]!r} is not a phase 0-2")
            phase = PHASES[int(channel)]
            if phase_field is not None:
                points.add("electricity", phase_field.format(phase), value)
            else:
                points.add("electricity", field, value, {"phase": phase})
        else:
            points.add("electricity", field, value, {"channel": channel})
        return points.readings(message.received_ns, "received")

    return decode


SPEC = DecoderSpec(name="shelly-gen1", options=ShellyGen1Options, build=build)
