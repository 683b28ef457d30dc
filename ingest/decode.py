"""The decode stage: topic -> device profile -> canonical readings, with plausibility and base tags.

Pure: no I/O. Everything that goes wrong is a :class:`DecodeRejected` with a reason code.

The per-message work is kept to dictionary look-ups: a topic's candidates (profile, bindings, base tags)
are computed once and cached (a device's topics are stable), and the plausibility ranges are indexed
by measurement when the decoder is built.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.decoders import DecodeInput
from ingest.decoders.payloads import shared_parse
from ingest.profiles.loader import CompiledProfile, ProfileSet
from ingest.readings import DecodeRejected, NotThisProfile, Reading

BASE_TAGS = ("gateway", "device")
ROUTE_CACHE_SIZE = 65_536  # topics remembered; far above a lab's devices x topics, bounded for safety

Bounds = tuple[float | None, float | None]


@dataclass(frozen=True, slots=True)
class _Plausibility:
    ranges: dict[str, dict[str, Bounds]]  # measurement -> field -> (min, max)
    reject: bool  # on_implausible == "reject" (else the reading is marked)


@dataclass(frozen=True, slots=True)
class _Route:
    """One candidate of a topic, with everything derived from (profile, bindings) precomputed."""

    profile: CompiledProfile
    bindings: dict[str, str]
    base_tags: dict[str, str]  # gateway/device from the topic, profile id


class MessageDecoder:
    def __init__(self, profiles: ProfileSet, *, topic_prefix: str = "", max_payload_bytes: int = 256 * 1024):
        self.profiles = profiles
        self.topic_prefix = topic_prefix
        self.max_payload_bytes = max_payload_bytes
        self._plausibility: dict[str, _Plausibility] = {}
        for p in profiles:
            ranges: dict[str, dict[str, Bounds]] = {}
            for key, r in p.profile.plausibility.items():
                measurement, dot, name = key.partition(".")
                if not dot:
                    continue  # never matched a reading before either
                ranges.setdefault(measurement, {})[name] = (r.min, r.max)
            self._plausibility[p.id] = _Plausibility(ranges, p.profile.on_implausible == "reject")
        self._routes: dict[str, tuple[_Route, ...]] = {}

    def subscriptions(self) -> list[str]:
        return [self.topic_prefix + topic for topic in self.profiles.subscriptions()]

    def _candidates(self, topic: str) -> tuple[_Route, ...]:
        routes = self._routes.get(topic)
        if routes is None:
            routes = tuple(
                _Route(profile, bindings, self._base_tags(profile, bindings))
                for profile, bindings in self.profiles.candidates(topic)
            )
            if len(self._routes) >= ROUTE_CACHE_SIZE:
                self._routes.clear()  # a flood of new topics: start over rather than grow without bound
            self._routes[topic] = routes
        return routes

    @staticmethod
    def _base_tags(profile: CompiledProfile, bindings: dict[str, str]) -> dict[str, str]:
        base = {name: bindings[name] for name in BASE_TAGS if name in bindings}
        base["profile"] = profile.id
        return base

    def decode(self, topic: str, payload: bytes, received_ns: int) -> list[Reading]:
        if len(payload) > self.max_payload_bytes:
            raise DecodeRejected("oversized_payload", f"{len(payload)} bytes, limit {self.max_payload_bytes}")
        if self.topic_prefix:
            if not topic.startswith(self.topic_prefix):
                raise DecodeRejected("no_profile", f"topic outside prefix {self.topic_prefix!r}")
            topic = topic[len(self.topic_prefix) :]
        candidates = self._candidates(topic)
        if not candidates:
            raise DecodeRejected("no_profile", "no device profile matches the topic")
        if len(candidates) == 1:
            return self._decode_first(candidates, topic, payload, received_ns)
        with shared_parse(payload):  # the profiles tried one after another parse the payload once
            return self._decode_first(candidates, topic, payload, received_ns)

    def _decode_first(
        self, candidates: tuple[_Route, ...], topic: str, payload: bytes, received_ns: int
    ) -> list[Reading]:
        """The readings of the first candidate that does not say NotThisProfile (priority order)."""
        tried = []
        for route in candidates:
            try:
                return self._decode_route(route, topic, payload, received_ns)
            except NotThisProfile as exc:
                tried.append(f"{route.profile.id}: {exc.detail}")
        raise DecodeRejected("no_profile", "; ".join(tried))

    def decode_with(
        self,
        profile: CompiledProfile,
        topic: str,
        payload: bytes,
        received_ns: int,
        bindings: dict[str, str],
    ) -> list[Reading]:
        route = _Route(profile, bindings, self._base_tags(profile, bindings))
        return self._decode_route(route, topic, payload, received_ns)

    def _decode_route(self, route: _Route, topic: str, payload: bytes, received_ns: int) -> list[Reading]:
        profile = route.profile
        try:
            readings = profile.decode(DecodeInput(topic, payload, route.bindings, received_ns))
            plausibility = self._plausibility[profile.id]
            base = route.base_tags
            for reading in readings:
                if plausibility.ranges:
                    self._check_plausible(plausibility, reading)
                reading.tags = {**base, **reading.tags} if reading.tags else base.copy()
        except DecodeRejected as exc:
            exc.profile = profile.id
            raise
        return readings

    @staticmethod
    def _check_plausible(plausibility: _Plausibility, reading: Reading) -> None:
        bounds_of = plausibility.ranges.get(reading.measurement)
        if bounds_of is None:
            return
        implausible = False
        for name, value in reading.fields.items():
            bounds = bounds_of.get(name)
            if bounds is None or isinstance(value, bool | str):
                continue
            low, high = bounds
            if (low is not None and value < low) or (high is not None and value > high):
                if plausibility.reject:
                    detail = f"{reading.measurement}.{name}={value} outside [{low}, {high}]"
                    raise DecodeRejected("implausible_value", detail)
                implausible = True
        if implausible:  # set after the loop: "implausible" itself is never range-checked (a bool)
            reading.fields["implausible"] = True
