"""generic-json: a JSON object whose keys a profile maps to canonical fields, with units and scale.

The payload is read like every other JSON profile's (:func:`payloads.message_object`): strict UTF-8
(``invalid_utf8``), the structure limits of ``too_complex``. A mapped key sent twice with different values
is refused (``invalid_payload`` "duplicate key 'p' …"), neither value silently wins; to keep both, map the
repeat as ``p#2`` (``payloads.check_repeats``). Repeats of keys the profile does not map are ignored.

options:
  time_key: ts                 # dotted path of the device time (epoch s/ms/ns or ISO), optional
  fields:
    e_in_wh: {measurement: electricity, field: energy_import_kwh, unit: Wh}
    meter.power: {measurement: electricity, field: power_w, unit: kW, scale: 1}
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ingest.canonical import canonical_unit, conversion_factor
from ingest.decoders import DecodeFn, DecodeInput, DecoderSpec
from ingest.decoders.payloads import check_repeats, message_object, message_repeats, number
from ingest.decoders.values import lookup, to_bool
from ingest.readings import DecodeRejected, FieldValue, Reading
from ingest.timeparse import TimeFormat, device_time


class FieldMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    measurement: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    field: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    unit: str | None = Field(None, description="unit the device sends; converted to the canonical unit")
    scale: float = Field(1.0, description="multiplied in before the unit conversion")

    @model_validator(mode="after")
    def _unit_converts(self) -> Self:
        target = canonical_unit(self.measurement, self.field)
        if target is None or target == "bool":
            return self
        if self.unit is None:
            raise ValueError(
                f"unit is required for canonical field {self.measurement}.{self.field} ({target})"
            )
        conversion_factor(self.unit, target)  # raises ValueError naming the units
        return self

    @property
    def factor(self) -> float:
        target = canonical_unit(self.measurement, self.field)
        if target is None or target == "bool" or self.unit is None:
            return self.scale
        return self.scale * conversion_factor(self.unit, target)

    @property
    def is_bool(self) -> bool:
        return canonical_unit(self.measurement, self.field) == "bool"


class GenericJsonOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time_key: str | None = Field(None, description="dotted path of the device timestamp")
    time_format: TimeFormat = "auto"
    fields: dict[str, FieldMap] = Field(min_length=1, description="dotted JSON path -> canonical field")


def build(options: GenericJsonOptions, tz: str) -> DecodeFn:
    plan = [
        (path, mapping.measurement, mapping.field, mapping.factor, mapping.is_bool)
        for path, mapping in options.fields.items()
    ]
    time_key, time_format = options.time_key, options.time_format
    mapped = frozenset(options.fields)

    def decode(message: DecodeInput) -> list[Reading]:
        document = message_object(message)
        repeats = message_repeats(message)
        if repeats:  # a key sent twice: refused if it is a mapped one with two values
            check_repeats(document, repeats, mapped)
        by_measurement: dict[str, dict[str, FieldValue]] = {}
        for path, measurement, field, factor, is_bool in plan:
            raw = lookup(document, path)
            if raw is None:
                continue
            value: FieldValue | None = (
                to_bool(raw, key=path) if is_bool else number(raw, key=path, factor=factor)
            )
            if value is not None:
                by_measurement.setdefault(measurement, {})[field] = value
        if not by_measurement:
            raise DecodeRejected("no_readings", "none of the mapped keys holds a value")
        raw_time = lookup(document, time_key) if time_key else None
        time_ns, source = device_time(raw_time, received_ns=message.received_ns, tz=tz, fmt=time_format)
        return [
            Reading(measurement, fields, time_ns, source) for measurement, fields in by_measurement.items()
        ]

    return decode


SPEC = DecoderSpec(name="generic-json", options=GenericJsonOptions, build=build)
