"""The decode stage: topic -> device profile -> canonical readings, with plausibility and base tags.

Pure: no I/O. Everything that goes wrong is a :class:`DecodeRejected` with a reason code.

The per-message work is kept to dictionary look-ups: a topic's candidates (profile, bindings, base tags)
are computed once and cached (a device's topics are stable), and the plausibility ranges are indexed
by measurement when the decoder is built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ingest.decoders import DeclineFn, DecodeFn, DecodeInput
from ingest.profiles.loader import CompiledProfile, ProfileSet
from ingest.readings import DecodeRejected, NotThisProfile, Reading

BASE_TAGS = ("gateway", "device")
ROUTE_CACHE_SIZE = 65_536  # topics remembered; far above a lab's devices x topics, bounded for safety
# Longer topics are routed afresh each time: MQTT allows 64 KB topics, and 65,536 of them would keep
# gigabytes in the cache.
ROUTE_CACHE_TOPIC_MAX = 512

Bounds = tuple[float | None, float | None]


_INF = float("inf")


@dataclass(frozen=True, slots=True)
class _Plausibility:
    ranges: dict[str, dict[str, Bounds]]  # measurement -> field -> (min, max)
    reject: bool  # on_implausible == "reject" (else the reading is marked)
    # measurement -> field -> (min or -inf, max or inf): one chained comparison passes a float in range
    open_ranges: dict[str, dict[str, tuple[float, float]]]


@dataclass(frozen=True, slots=True)
class _Route:
    """One candidate of a topic, with everything derived from (profile, bindings) precomputed."""

    profile: CompiledProfile
    bindings: dict[str, str]
    base_tags: dict[str, str]  # gateway/device from the topic, profile id
    decode: DecodeFn
    declines: DeclineFn | None
    plausibility: _Plausibility
    same_bindings: bool  # as the route before it: that route's DecodeInput serves this one too
    also: tuple[_Route, ...] = ()  # the profile's also_read_by among this topic's candidates


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
            open_ranges = {
                measurement: {
                    name: (-_INF if low is None else low, _INF if high is None else high)
                    for name, (low, high) in bounds.items()
                }
                for measurement, bounds in ranges.items()
            }
            self._plausibility[p.id] = _Plausibility(
                ranges, p.profile.on_implausible == "reject", open_ranges
            )
        # topic as received -> (topic without the prefix, its candidates): no prefix strip per message
        self._routes: dict[str, tuple[str, tuple[_Route, ...]]] = {}

    def subscriptions(self) -> list[str]:
        """Everything under each profile's root (``lab/#``), not only the topics a profile knows: a
        device on a topic no profile matches is quarantined as ``no_profile`` and seen, instead of
        never being received. A template that starts with a wildcard is subscribed as it is."""
        roots = []
        for topic in self.profiles.subscriptions():
            first = topic.split("/", 1)[0]
            roots.append(topic if first in ("+", "#") or "/" not in topic else f"{first}/#")
        return [self.topic_prefix + root for root in dict.fromkeys(roots)]

    def _candidates(self, topic: str) -> tuple[str, tuple[_Route, ...]]:
        """The topic without the prefix and its candidates, remembered per topic as received."""
        routed = self._routes.get(topic)
        if routed is None:
            prefix = self.topic_prefix
            if not topic.startswith(prefix):
                raise DecodeRejected("no_profile", f"topic outside prefix {prefix!r}")
            local = topic[len(prefix) :]
            found: list[_Route] = []
            for profile, bindings in self.profiles.candidates(local):
                same = bool(found) and found[-1].bindings == bindings
                found.append(self._route(profile, bindings, same_bindings=same))
            routed = (local, tuple(_with_also(found)))
            if len(topic) <= ROUTE_CACHE_TOPIC_MAX:
                if len(self._routes) >= ROUTE_CACHE_SIZE:
                    self._routes.clear()  # a flood of new topics: start over rather than grow without bound
                self._routes[topic] = routed
        return routed

    def _route(self, profile: CompiledProfile, bindings: dict[str, str], *, same_bindings: bool) -> _Route:
        base = {name: bindings[name] for name in BASE_TAGS if name in bindings}
        base["profile"] = profile.id
        plausibility = self._plausibility[profile.id]
        return _Route(profile, bindings, base, profile.decode, profile.declines, plausibility, same_bindings)

    def decode(self, topic: str, payload: bytes, received_ns: int) -> list[Reading]:
        """The readings of the first candidate that does not say NotThisProfile (priority order)."""
        if len(payload) > self.max_payload_bytes:
            raise DecodeRejected("oversized_payload", f"{len(payload)} bytes, limit {self.max_payload_bytes}")
        topic, candidates = self._routes.get(topic) or self._candidates(topic)
        declined: list[tuple[_Route, str]] = []
        message = None
        for route in candidates:
            if message is None:
                message = DecodeInput(topic, payload, route.bindings, received_ns)
            elif not route.same_bindings:  # other names bound; the payload's parse so far still serves
                message = DecodeInput(topic, payload, route.bindings, received_ns, message.parsed)
            try:
                if route.declines is not None:  # asked first: declining costs no exception then
                    detail = route.declines(message)
                    if detail is not None:
                        declined.append((route, detail))
                        continue
                readings = route.decode(message)
                self._finish(route, readings)
            except NotThisProfile as exc:
                declined.append((route, exc.detail))
                continue
            except DecodeRejected as exc:
                if exc.reason == "no_readings" and route.also and message.rest:
                    # nothing of ours mapped (an ENERGY block of counters only): the rest may still be
                    readings = self._also(route, message, [])
                    if readings:
                        return readings
                exc.profile = route.profile.id
                raise
            return self._also(route, message, readings) if route.also and message.rest else readings
        if not candidates:
            raise DecodeRejected("no_profile", "no device profile matches the topic")
        raise DecodeRejected("no_profile", "; ".join(f"{r.profile.id}: {detail}" for r, detail in declined))

    def decode_with(
        self,
        profile: CompiledProfile,
        topic: str,
        payload: bytes,
        received_ns: int,
        bindings: dict[str, str],
    ) -> list[Reading]:
        """``topic``'s payload decoded by ``profile``, chosen by the caller (with the names it binds).

        A topic that fits none of the profile's templates is refused (``topic_mismatch``): the decoder
        would otherwise guess the message kind from a topic it was never written for. An empty topic
        (only the profile given) is decoded with ``bindings`` as they are.
        """
        if topic and not any(template.match(topic) is not None for template in profile.templates):
            templates = ", ".join(template.template for template in profile.templates)
            rejected = DecodeRejected(
                "topic_mismatch", f"{topic[:200]!r} fits none of {profile.id}'s topics: {templates}"
            )
            rejected.profile = profile.id
            raise rejected
        route = self._route(profile, bindings, same_bindings=False)
        try:
            readings = route.decode(DecodeInput(topic, payload, bindings, received_ns))
            self._finish(route, readings)
        except DecodeRejected as exc:
            exc.profile = profile.id
            raise
        return readings

    def _also(self, route: _Route, message: DecodeInput, readings: list[Reading]) -> list[Reading]:
        """``readings`` with those of the profiles that read the rest of the message (also_read_by),
        asked when the decoder said it left some (``DecodeInput.rest``).

        One that has nothing to read there declines or finds no readings; any other rejection rejects
        the whole message, as its own would: a message is written whole or quarantined whole (replay then
        decodes both parts again, nothing is lost; a partial write would leave which part is missing to a
        log). The rejection's detail says so and names the group and value (e.g. ``SML.Total_in``).
        """
        for other in route.also:
            if other.bindings != message.bindings:
                message = DecodeInput(
                    message.topic, message.payload, other.bindings, message.received_ns, message.parsed
                )
            try:
                if other.declines is not None and other.declines(message) is not None:
                    continue
                more = other.decode(message)
                self._finish(other, more)
            except NotThisProfile:
                continue
            except DecodeRejected as exc:
                if exc.reason == "no_readings":
                    continue
                exc.profile = other.profile.id
                mine = f"{len(readings)} reading(s) of {route.profile.id}"
                exc.detail = (
                    f"{exc.detail} (read by {other.profile.id} beside {route.profile.id}; "
                    f"the message is quarantined whole, {mine} with it)"
                )
                raise
            readings.extend(more)
        return readings

    def _finish(self, route: _Route, readings: list[Reading]) -> None:
        """Plausibility and the route's base tags, in place."""
        plausibility = route.plausibility
        base = route.base_tags
        for reading in readings:
            bounds_of = plausibility.open_ranges.get(reading.measurement)
            if bounds_of is not None:
                for name, value in reading.fields.items():
                    bounds = bounds_of.get(name)
                    if bounds is not None and not (type(value) is float and bounds[0] <= value <= bounds[1]):
                        # not a float within its range: the full check decides
                        self._check_plausible(plausibility, reading)
                        break
            reading.tags = {**base, **reading.tags} if reading.tags else base.copy()

    @staticmethod
    def _check_plausible(plausibility: _Plausibility, reading: Reading) -> None:
        bounds_of = plausibility.ranges[reading.measurement]
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


def _with_also(routes: list[_Route]) -> list[_Route]:
    """``routes`` with each one's ``also``: its profile's also_read_by that are candidates here too."""
    by_id = {route.profile.id: route for route in routes}
    return [
        replace(route, also=tuple(by_id[i] for i in route.profile.profile.also_read_by if i in by_id))
        if route.profile.profile.also_read_by
        else route
        for route in routes
    ]
