"""What every source of the gateway produces: one message for the central broker, exactly as read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: MQTT 5 user property carrying when the gateway read the frame: decimal nanoseconds since the epoch
READ_NS_PROPERTY = "read_ns"

MeterProtocol = Literal["sml", "d0", "dsmr"]

#: the central device profile's topic segment per meter protocol (D0 readouts go to the dsmr decoder)
PROFILE_SEGMENT: dict[MeterProtocol, str] = {"sml": "sml", "d0": "dsmr", "dsmr": "dsmr"}

HEALTH_SUFFIX = "health"


@dataclass(frozen=True, slots=True)
class Frame:
    topic: str  # the full central topic, lab/<gateway>/...
    payload: bytes  # unchanged: SML binary, D0/P1 text, a device's JSON
    read_ns: int  # the gateway's clock when the frame was complete


def meter_topic(gateway: str, protocol: MeterProtocol, device: str) -> str:
    return f"lab/{gateway}/{PROFILE_SEGMENT[protocol]}/{device}"


def forwarded_topic(gateway: str, native_topic: str) -> str:
    """A local device's topic under the gateway's prefix: ``tele/x/SENSOR`` -> ``lab/<gw>/tele/x/SENSOR``."""
    return f"lab/{gateway}/{native_topic}"


def health_topic(gateway: str) -> str:
    return f"lab/{gateway}/{HEALTH_SUFFIX}"
