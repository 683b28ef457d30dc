"""Decoders: pure functions from a payload to canonical readings (no I/O).

Every decoder is registered here with the pydantic model of its profile ``options``. A decoder raises
nothing but :class:`~ingest.readings.DecodeRejected`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from ingest.readings import Reading

# The keys a JSON payload repeated within one object: id(object) -> key -> the names its repeats got
# (``key#2`` …; payloads.parse_json). Empty for nearly every message.
Repeats = dict[int, dict[str, list[str]]]


@dataclass(slots=True)
class DecodeInput:
    """One message as a decoder sees it (read-only by convention: not frozen, which would make every
    message's construction cost four ``object.__setattr__`` calls)."""

    topic: str  # without the configured topic prefix
    payload: bytes
    bindings: Mapping[str, str]  # names bound by the profile's topic template
    received_ns: int
    # (document, repeats) once a decoder parsed the payload as JSON (payloads.message_object): the decode
    # stage hands the same parse to every profile it tries on a shared topic, so the payload is parsed once
    parsed: tuple[Any, Repeats] | None = field(default=None, repr=False, compare=False)
    # set by a decoder that read only its part of the message and left the rest to the profiles its
    # profile names in also_read_by (tasmota: a meter script's group beside ENERGY); False: nothing left
    rest: bool = field(default=False, repr=False, compare=False)


class DecodeFn(Protocol):
    def __call__(self, message: DecodeInput, /) -> list[Reading]: ...


class DeclineFn(Protocol):
    """A cheap look at a message before decoding it: the detail of the NotThisProfile the decode function
    would raise, or None (then the decode function runs). Raises what the decode function would raise
    before it could decline (e.g. invalid_json). Spares the decode stage an exception per message on a
    topic several profiles share."""

    def __call__(self, message: DecodeInput, /) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DecoderSpec:
    name: str
    options: type[BaseModel]
    build: Callable[[Any, str], DecodeFn]  # (validated options, time zone) -> decode function
    build_declines: Callable[[Any, str], DeclineFn] | None = None  # the same for its DeclineFn, if any


def _registry() -> dict[str, DecoderSpec]:
    from ingest.decoders import (
        announcement,
        dsmr,
        esphome,
        gateway_health,
        generic_json,
        obis,
        shelly_gen1,
        shelly_gen2,
        sml,
        tasmota,
        tasmota_sml,
        ttn,
        zigbee2mqtt,
    )

    specs = [generic_json.SPEC]
    specs += [tasmota.SPEC, tasmota_sml.SPEC, shelly_gen2.SPEC, shelly_gen1.SPEC, zigbee2mqtt.SPEC]
    specs += [esphome.SPEC, ttn.SPEC]
    specs += [sml.SPEC, dsmr.SPEC, obis.SPEC]
    specs += [announcement.SPEC, gateway_health.SPEC]
    return {spec.name: spec for spec in specs}


DECODERS: dict[str, DecoderSpec] = _registry()
