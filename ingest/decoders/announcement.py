"""announcement: device announcements (Tasmota discovery, zigbee2mqtt bridge/devices, Shelly announce and
online) are recognised, not written: a valid one is rejected with the reason ``announcement`` so that it is
kept in the quarantine for the technicians' discovery list (why so: :mod:`ingest.discovery.announcements`);
one that is not in the vendor's format is rejected as any bad payload is."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.discovery.announcements import parse
from ingest.readings import DecodeRejected, Reading


class AnnouncementOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def build(_options: AnnouncementOptions, _tz: str) -> DecodeFn:
    def decode(message: DecodeInput) -> list[Reading]:
        gateway = message.bindings.get("gateway", "")
        rest = message.topic.split("/", 2)[2] if message.topic.count("/") >= 2 else message.topic
        announced = parse(rest, message.payload)
        names = ", ".join(repr(a.native_id) for a in announced[:5]) or "no device"
        more = f" and {len(announced) - 5} more" if len(announced) > 5 else ""
        rejected = DecodeRejected("announcement", f"announces {names}{more}")
        if len(announced) == 1:
            rejected.key = (gateway, announced[0].native_id)
        raise rejected

    return decode


SPEC = DecoderSpec("announcement", AnnouncementOptions, build)
