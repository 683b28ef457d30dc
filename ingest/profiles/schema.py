"""The device profile schema: what an operator writes in ``device_profiles/<id>.yaml``.

Strict: unknown keys are errors. The decoder-specific ``options`` are checked against the options model
of the named decoder by the loader, so their errors carry the ``options.…`` key path too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ingest.profiles.topics import TopicTemplate


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ExampleReading(Strict):
    measurement: str
    time: datetime | None = Field(None, description="expected time; None: the example's receive time")
    time_source: Literal["device", "received"] = "device"
    tags: dict[str, str] = Field(default_factory=dict, description="expected tags (a subset is enough)")
    fields: dict[str, float | bool | str]


class Example(Strict):
    """A real payload in the vendor's documented format and what it must decode to."""

    name: str
    topic: str
    payload: str | None = None
    payload_hex: str | None = Field(None, description="binary payloads as hex")
    received: datetime = Field(description="receive time used when decoding the example")
    readings: list[ExampleReading] = Field(default_factory=list)
    rejected: str | None = Field(None, description="expected rejection reason instead of readings")

    @model_validator(mode="after")
    def _one_payload_one_outcome(self) -> Self:
        if (self.payload is None) == (self.payload_hex is None):
            raise ValueError("give exactly one of payload and payload_hex")
        if bool(self.readings) == (self.rejected is not None):
            raise ValueError("give exactly one of readings and rejected")
        return self

    def payload_bytes(self) -> bytes:
        if self.payload_hex is not None:
            return bytes.fromhex("".join(self.payload_hex.split()))
        assert self.payload is not None
        return self.payload.encode()


class Profile(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    family: str = Field(min_length=1, description="device family shown to technicians")
    description: str = ""
    decoder: str = Field(description="name of the decoder in ingest.decoders")
    topics: list[str] = Field(min_length=1, description="topic templates, e.g. lab/{gateway}/{device}/state")
    topic_levels: dict[str, Literal["component"]] = Field(
        default_factory=dict,
        description="a bound name -> the shape its topic level must have (component: a Shelly Gen2 "
        "component key, switch:0 or sys); a topic whose level lacks it is not this profile's",
    )
    priority: int = Field(
        0, description="profiles whose topics overlap are tried from the highest priority down"
    )
    also_read_by: list[str] = Field(
        default_factory=list,
        description="profiles on the same topic that read what this one leaves of a message it decodes "
        "(a Tasmota SENSOR message with an ENERGY block and a meter script's group): their readings are "
        "added; a rejection other than no_readings rejects the message",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="decoder options")
    plausibility: dict[str, Range] = Field(
        default_factory=dict, description="'measurement.field' -> allowed range"
    )
    on_implausible: Literal["reject", "flag"] = Field(
        "reject", description="reject: quarantine the message; flag: keep it with field implausible=true"
    )
    examples: list[Example] = Field(default_factory=list)

    @field_validator("topics")
    @classmethod
    def _templates_compile(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            TopicTemplate(topic)
        return topics

    @model_validator(mode="after")
    def _shaped_names_are_bound(self) -> Self:
        for name in self.topic_levels:
            if not any(TopicTemplate(topic).names.count(name) for topic in self.topics):
                raise ValueError(f"topic_levels: {{{name}}} is bound by none of the topics")
            if any(TopicTemplate(topic).path == name for topic in self.topics):
                raise ValueError(f"topic_levels: {{{name}:path}} spans levels; a shape is for one level")
        return self

    @field_validator("plausibility")
    @classmethod
    def _keys_name_fields(cls, ranges: dict[str, Range]) -> dict[str, Range]:
        for key in ranges:
            if key.count(".") != 1:
                raise ValueError(f"key {key!r} must be 'measurement.field'")
        return ranges
