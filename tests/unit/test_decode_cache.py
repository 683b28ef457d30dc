"""The decode stage's caches change nothing: fall-through order, tags and the bound on topics."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import decode
from ingest.decode import MessageDecoder
from ingest.profiles import load_profiles
from ingest.readings import DecodeRejected

PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"
SML = b'{"Time":"2025-11-28T10:00:00","SML":{"Total_in":12.5,"Power_curr":523}}'
ENERGY = b'{"Time":"2025-11-28T10:00:00","ENERGY":{"Total":1.5,"Power":45}}'


@pytest.fixture(scope="module")
def decoder() -> MessageDecoder:
    return MessageDecoder(load_profiles(PROFILES), topic_prefix="p/")


def test_same_topic_alternating_profiles(decoder: MessageDecoder) -> None:
    topic = "p/lab/gw-01/tele/hh-001-sml/SENSOR"
    for _ in range(3):  # cached candidates: priority order still decides, every message anew
        sml = decoder.decode(topic, bytes(SML), 1)
        energy = decoder.decode(topic, bytes(ENERGY), 1)
        assert sml[0].tags == {"gateway": "gw-01", "device": "hh-001-sml", "profile": "tasmota-sml"}
        assert energy[0].tags["profile"] == "tasmota"
        assert sml[0].tags is not energy[0].tags


def test_rejections_name_the_profile(decoder: MessageDecoder) -> None:
    topic = "p/lab/gw-01/tele/hh-001-sml/SENSOR"
    for _ in range(2):
        with pytest.raises(DecodeRejected) as caught:
            decoder.decode(topic, b"{not json", 1)
        assert (caught.value.reason, caught.value.profile) == ("invalid_json", "tasmota")


def test_route_cache_is_bounded(decoder: MessageDecoder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode, "ROUTE_CACHE_SIZE", 8)
    for n in range(20):
        readings = decoder.decode(f"p/lab/gw-01/tele/hh-{n:03d}-sml/SENSOR", SML, 1)
        assert readings[0].tags["device"] == f"hh-{n:03d}-sml"
    assert len(decoder._routes) <= 8
