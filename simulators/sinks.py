"""Where simulated messages go: an MQTT broker, the decode stage (no broker), or nowhere."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from ingest.decode import MessageDecoder
from ingest.profiles.loader import load_profiles
from ingest.readings import DecodeRejected, Reading
from simulators.engine import Message
from simulators.publisher import Publisher


class MqttSink:
    """QoS 1 through one :class:`Publisher` (bounded window), topics under ``prefix``."""

    def __init__(self, publisher: Publisher, *, prefix: str = "") -> None:
        self.publisher = publisher
        self.prefix = prefix

    def __call__(self, message: Message) -> None:
        self.publisher.publish(self.prefix + message.topic, message.payload)


class DecodeSink:
    """Straight into the ingester's decode stage: readings kept (optionally), rejections counted."""

    def __init__(self, profiles_dir: Path = Path("device_profiles"), *, keep: bool = False) -> None:
        self.decoder = MessageDecoder(load_profiles(profiles_dir))
        self.keep = keep
        self.readings: list[tuple[Message, list[Reading]]] = []
        self.rejected: list[tuple[Message, DecodeRejected]] = []
        self.accepted = 0
        self.reasons: Counter[str] = Counter()

    def __call__(self, message: Message) -> None:
        try:
            readings = self.decoder.decode(message.topic, message.payload, time.time_ns())
        except DecodeRejected as exc:
            self.reasons[exc.reason] += 1
            self.rejected.append((message, exc))
            return
        self.accepted += 1
        if self.keep:
            self.readings.append((message, readings))


class NullSink:
    """Counts and forgets (for measuring the generator alone)."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def __call__(self, message: Message) -> None:
        self.count += 1
        self.bytes += len(message.payload)
