"""The canonical reading every device profile decodes into, and the rejection a decoder may raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldValue = float | int | bool | str
TimeSource = Literal["device", "received"]


@dataclass(slots=True)
class Reading:
    """One point: a measurement of the canonical schema with its tags, fields and time."""

    measurement: str
    fields: dict[str, FieldValue]
    time_ns: int
    time_source: TimeSource = "device"
    tags: dict[str, str] = field(default_factory=dict)


class DecodeRejected(Exception):
    """A payload that cannot become readings. The only exception a decoder raises.

    ``reason`` is a short code from :data:`REASONS`; ``detail`` says what exactly was wrong.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.profile: str | None = None  # set by the decode stage: the profile that rejected it
        # (gateway, native device id) when known: kept with the quarantine entry (unknown_device)
        self.key: tuple[str, str] | None = None


class NotThisProfile(DecodeRejected):
    """Raised by a decoder whose topic matched but whose payload is another profile's kind.

    The decode stage then tries the next matching profile (e.g. tasmota vs tasmota-sml on the same topic).
    """

    def __init__(self, detail: str) -> None:
        super().__init__("no_profile", detail)


# The vocabulary of rejection reasons (documented in docs/canonical-schema.md).
REASONS = {
    "no_profile": "no device profile matches the topic",
    "topic_mismatch": "the topic fits none of the templates of the profile asked for",
    "invalid_utf8": "the payload is not valid UTF-8 text",
    "invalid_json": "the payload is not parseable JSON",
    "invalid_payload": "the payload parses, but not into the structure the profile expects",
    "invalid_value": "a value is not a number (or bool) where one is expected",
    "implausible_value": "a value lies outside the profile's plausibility range",
    "no_readings": "the payload holds no field the profile maps",
    "oversized_payload": "the payload exceeds the configured size limit",
    "invalid_name": "a measurement, tag or field name holds a backslash or control character",
    "too_many_series": "the gateway has as many series as its budget (ingest.max_series_per_gateway)",
    "too_complex": "the payload exceeds the structure limits (JSON keys or nesting, elements, lines)",
    "crc_mismatch": "the payload's checksum does not match",
    "unknown_device": "the device (gateway + native id) is not in the registry",
    "announcement": "a device announcing itself (Tasmota discovery, zigbee2mqtt bridge/devices, Shelly "
    "announce/online): no reading; kept for the technicians' discovery list, not an error",
    "influx_rejected": "InfluxDB refused the point for good (e.g. a field type conflict)",
}
