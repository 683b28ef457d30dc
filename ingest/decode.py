"""The decode stage: topic -> device profile -> canonical readings, with plausibility and base tags.

Pure: no I/O. Everything that goes wrong is a :class:`DecodeRejected` with a reason code.
"""

from __future__ import annotations

from ingest.decoders import DecodeInput
from ingest.profiles.loader import CompiledProfile, ProfileSet
from ingest.readings import DecodeRejected, NotThisProfile, Reading

BASE_TAGS = ("gateway", "device")


class MessageDecoder:
    def __init__(self, profiles: ProfileSet, *, topic_prefix: str = "", max_payload_bytes: int = 256 * 1024):
        self.profiles = profiles
        self.topic_prefix = topic_prefix
        self.max_payload_bytes = max_payload_bytes
        self._ranges = {
            p.id: {tuple(key.split(".", 1)): (r.min, r.max) for key, r in p.profile.plausibility.items()}
            for p in profiles
        }

    def subscriptions(self) -> list[str]:
        return [self.topic_prefix + topic for topic in self.profiles.subscriptions()]

    def decode(self, topic: str, payload: bytes, received_ns: int) -> list[Reading]:
        if len(payload) > self.max_payload_bytes:
            raise DecodeRejected("oversized_payload", f"{len(payload)} bytes, limit {self.max_payload_bytes}")
        if self.topic_prefix:
            if not topic.startswith(self.topic_prefix):
                raise DecodeRejected("no_profile", f"topic outside prefix {self.topic_prefix!r}")
            topic = topic[len(self.topic_prefix) :]
        candidates = self.profiles.candidates(topic)
        if not candidates:
            raise DecodeRejected("no_profile", "no device profile matches the topic")
        tried = []
        for profile, bindings in candidates:
            try:
                return self.decode_with(profile, topic, payload, received_ns, bindings)
            except NotThisProfile as exc:
                tried.append(f"{profile.id}: {exc.detail}")
        raise DecodeRejected("no_profile", "; ".join(tried))

    def decode_with(
        self,
        profile: CompiledProfile,
        topic: str,
        payload: bytes,
        received_ns: int,
        bindings: dict[str, str],
    ) -> list[Reading]:
        try:
            readings = profile.decode(DecodeInput(topic, payload, bindings, received_ns))
            ranges = self._ranges[profile.id]
            base = {name: bindings[name] for name in BASE_TAGS if name in bindings}
            base["profile"] = profile.id
            for reading in readings:
                if ranges:
                    self._check_plausible(profile, reading, ranges)
                reading.tags = {**base, **reading.tags}
        except DecodeRejected as exc:
            exc.profile = profile.id
            raise
        return readings

    @staticmethod
    def _check_plausible(
        profile: CompiledProfile,
        reading: Reading,
        ranges: dict[tuple[str, ...], tuple[float | None, float | None]],
    ) -> None:
        for name, value in list(reading.fields.items()):
            bounds = ranges.get((reading.measurement, name))
            if bounds is None or isinstance(value, bool | str):
                continue
            low, high = bounds
            if (low is not None and value < low) or (high is not None and value > high):
                detail = f"{reading.measurement}.{name}={value} outside [{low}, {high}]"
                if profile.profile.on_implausible == "reject":
                    raise DecodeRejected("implausible_value", detail)
                reading.fields["implausible"] = True
