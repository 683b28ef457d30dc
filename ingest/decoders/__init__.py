"""Decoders: pure functions from a payload to canonical readings (no I/O).

Every decoder is registered here with the pydantic model of its profile ``options``. A decoder raises
nothing but :class:`~ingest.readings.DecodeRejected`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from ingest.readings import Reading


@dataclass(frozen=True, slots=True)
class DecodeInput:
    """One message as a decoder sees it."""

    topic: str  # without the configured topic prefix
    payload: bytes
    bindings: Mapping[str, str]  # names bound by the profile's topic template
    received_ns: int


class DecodeFn(Protocol):
    def __call__(self, message: DecodeInput, /) -> list[Reading]: ...


@dataclass(frozen=True, slots=True)
class DecoderSpec:
    name: str
    options: type[BaseModel]
    build: Callable[[Any, str], DecodeFn]  # (validated options, time zone) -> decode function


def _registry() -> dict[str, DecoderSpec]:
    from ingest.decoders import generic_json

    specs = [generic_json.SPEC]
    return {spec.name: spec for spec in specs}


DECODERS: dict[str, DecoderSpec] = _registry()
