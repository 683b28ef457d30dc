"""Bodies of the discovery routes: unregistered devices per gateway, and registering one of them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from ingest.api.schemas import Body, DevicePublic, Id
from ingest.registry.text import Key, NativeId, ShortText


class DiscoveredReading(BaseModel):
    measurement: str
    time: dt.datetime
    fields: dict[str, Any]
    tags: dict[str, str] = Field(default_factory=dict)


class DiscoveredDevicePublic(BaseModel):
    native_id: str
    profile: str | None = Field(
        description="the profile that decodes its messages, or the announcement's guess"
    )
    first_seen: dt.datetime
    last_seen: dt.datetime
    messages: int = Field(description="its quarantined messages and announcements, pending")
    topic: str = Field(description="topic of its newest data message (without the topic prefix)")
    values: list[DiscoveredReading] = Field(description="the readings of its newest message, not enriched")
    problem: str | None = Field(None, description="why its newest message does not decode, if it does not")
    announced: dict[str, str] = Field(description="model, firmware, address, mac, name when it announced")
    sources: list[str] = Field(description="unknown_device (its data messages), announcement")


class UnknownTopicPublic(BaseModel):
    topic: str
    messages: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    excerpt: str = Field(description="the newest payload's beginning")
    detail: str = Field(description="why no profile decodes it")


class HouseholdChoicePublic(BaseModel):
    id: int
    name: str
    building: str


class GatewayDiscoveryPublic(BaseModel):
    gateway: str
    gateway_id: int | None = Field(description="null: the gateway itself is not registered")
    gateway_active: bool
    building: str | None
    building_id: int | None
    households: list[HouseholdChoicePublic] = Field(description="its building's households (else all)")
    devices: list[DiscoveredDevicePublic] = Field(description="its most recently heard, per_gateway at most")
    unknown_topics: list[UnknownTopicPublic] = Field(
        description="topics no device profile decodes, the most recently heard, per_gateway at most"
    )
    devices_total: int = Field(description="how many unregistered devices report through it, listed or not")
    unknown_topics_total: int = Field(
        validation_alias="topics_total", description="how many topics no profile decodes, listed or not"
    )


class DiscoveryRegister(Body):
    gateway_id: Id
    native_id: NativeId = Field(description="the device id as it appears in the topic")
    profile_id: Key
    household_id: Id | None = Field(None, description="assign to this household ...")
    building_id: Id | None = Field(None, description="... or to this building's common area")
    meter_number: Key | None = None
    location: ShortText = ""


class DiscoveryRegistered(BaseModel):
    device: DevicePublic
    assigned_from: dt.datetime = Field(description="its first contact: the assignment covers every message")
    replay_within_s: float = Field(
        description="the ingester replays its quarantined messages at its next registry refresh, this soon"
    )
