"""gateway-health: the health message of a gateway service (``lab/<gateway>/health``, JSON).

The gateway (:mod:`ingest.gateway.health`) sends nested JSON; this decoder flattens it into one point of
the measurement ``gateway_health`` for the gateway and one per serial port (tag ``port``: the meter's
device name), so operators can chart outbox depth, clock offset and serial errors. Counters are the
gateway process's own since its start (they restart at 0 with it). A key the gateway could not read
(CPU temperature in a VM, clock state without an NTP daemon) is absent, never a made-up 0.

options:
  device: gateway     # the device tag of the gateway's own points (they pass enrichment unregistered)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.payloads import message_object
from ingest.decoders.values import lookup, to_bool, to_number
from ingest.readings import DecodeRejected, FieldValue, Reading
from ingest.timeparse import device_time

MEASUREMENT = "gateway_health"
Kind = Literal["number", "bool", "text"]

#: dotted key in the health JSON -> (field, kind)
GATEWAY_FIELDS: dict[str, tuple[str, Kind]] = {
    "uptime_s": ("uptime_s", "number"),
    "version": ("version", "text"),
    "task_restarts": ("task_restarts", "number"),
    "disk_free_bytes": ("disk_free_bytes", "number"),
    "cpu_temp_c": ("cpu_temp_c", "number"),
    "outbox.depth": ("outbox_depth", "number"),
    "outbox.bytes": ("outbox_bytes", "number"),
    "outbox.oldest_age_s": ("outbox_oldest_age_s", "number"),
    "outbox.dropped_full": ("outbox_dropped_full", "number"),
    "outbox.dropped_disk": ("outbox_dropped_disk", "number"),
    "outbox.fsyncs": ("outbox_fsyncs", "number"),
    "outbox.bytes_written": ("outbox_bytes_written", "number"),
    "clock.synced": ("clock_synced", "bool"),
    "clock.offset_s": ("clock_offset_s", "number"),
    "clock.error_s": ("clock_error_s", "number"),
    "uplink.connected": ("uplink_connected", "bool"),
    "uplink.reconnects": ("uplink_reconnects", "number"),
    "uplink.published": ("uplink_published", "number"),
    "uplink.acked": ("uplink_acked", "number"),
    "uplink.refused": ("uplink_refused", "number"),
    "uplink.in_flight": ("uplink_in_flight", "number"),
    "local_broker.connected": ("local_connected", "bool"),
    "local_broker.forwarded": ("local_forwarded", "number"),
    "local_broker.skipped": ("local_skipped", "number"),
}

#: key of one entry under "ports" -> (field, kind)
PORT_FIELDS: dict[str, tuple[str, Kind]] = {
    "connected": ("connected", "bool"),
    "frames": ("frames", "number"),
    "broken": ("broken", "number"),
    "discarded_bytes": ("discarded_bytes", "number"),
    "reconnects": ("reconnects", "number"),
    "errors": ("errors", "number"),
    "last_frame_age_s": ("last_frame_age_s", "number"),
}
MAX_PORTS = 64  # bounds the work one message may cost (a gateway has a handful of serial ports)


class GatewayHealthOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str = Field("gateway", min_length=1, description="device tag of the gateway's own points")


def _fields(document: dict[str, Any], plan: dict[str, tuple[str, Kind]]) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {}
    for path, (field, kind) in plan.items():
        raw = lookup(document, path)
        if raw is None:
            continue
        value: FieldValue | None
        if kind == "bool":
            value = to_bool(raw, key=path)
        elif kind == "text":
            value = str(raw)[:64]
        else:
            value = to_number(raw, key=path)
        if value is not None:
            fields[field] = value
    return fields


def build(options: GatewayHealthOptions, tz: str) -> DecodeFn:
    device = options.device

    def decode(message: DecodeInput) -> list[Reading]:
        document = message_object(message)
        time_ns, source = device_time(document.get("time"), received_ns=message.received_ns, tz=tz)
        readings: list[Reading] = []
        fields = _fields(document, GATEWAY_FIELDS)
        if fields:
            readings.append(Reading(MEASUREMENT, fields, time_ns, source, {"device": device}))
        ports = document.get("ports") or {}
        if not isinstance(ports, dict):
            raise DecodeRejected("invalid_payload", f"ports: expected an object, got {type(ports).__name__}")
        if len(ports) > MAX_PORTS:
            raise DecodeRejected("too_complex", f"{len(ports)} ports, at most {MAX_PORTS}")
        for port, values in ports.items():
            if not isinstance(values, dict):
                raise DecodeRejected("invalid_payload", f"ports.{port}: expected an object")
            port_fields = _fields(values, PORT_FIELDS)
            if port_fields:
                tags = {"device": device, "port": str(port)}
                readings.append(Reading(MEASUREMENT, port_fields, time_ns, source, tags))
        if not readings:
            raise DecodeRejected("no_readings", "the health message holds no known key")
        return readings

    return decode


SPEC = DecoderSpec(name="gateway-health", options=GatewayHealthOptions, build=build)
