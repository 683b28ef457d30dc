"""The decode stage's caches change nothing: fall-through order, tags and the bound on topics."""

from __future__ import annotations

import dataclasses
import gc
import json
import tracemalloc
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import decode
from ingest.decode import MessageDecoder
from ingest.decoders import DecodeInput
from ingest.profiles import load_profiles
from ingest.profiles.loader import CompiledProfile, ProfileSet, compile_profile
from ingest.readings import DecodeRejected, NotThisProfile, Reading

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


def _retained_bytes(feed: Any) -> int:
    """Memory still allocated after ``feed()`` returned (what caches keep)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        feed()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_long_topics_are_not_remembered() -> None:
    """A gateway publishing under 60 KB topics (MQTT allows 64 KB) cannot fill the route cache with them."""
    decoder = MessageDecoder(load_profiles(PROFILES))

    def feed() -> None:
        for n in range(100):
            decoder.decode(f"lab/gw-01/tele/{n:05d}{'x' * 60_000}/SENSOR", SML, 1)

    assert _retained_bytes(feed) < 500_000  # 100 cached routes of 60 KB would be 6 MB
    decoder.decode("lab/gw-01/tele/hh-001-sml/SENSOR", SML, 1)
    assert "lab/gw-01/tele/hh-001-sml/SENSOR" in decoder._routes  # usual topics still are


def test_crafted_sml_groups_are_not_remembered() -> None:
    """Groups of thousands of keys, each message other ones, leave nothing behind in the plan cache."""
    decoder = MessageDecoder(load_profiles(PROFILES))
    topic = "lab/gw-01/tele/hh-001-sml/SENSOR"

    def feed() -> None:
        for n in range(40):
            keys = ",".join(f'"k{n}_{i}":1' for i in range(4_000))
            decoder.decode(topic, f'{{"SML":{{"Power_curr":1,{keys}}}}}'.encode(), 1)

    assert _retained_bytes(feed) < 2_000_000  # the 40 key tuples alone would keep ~15 MB


def test_topics_outside_the_prefix_are_rejected_every_time(decoder: MessageDecoder) -> None:
    for _ in range(2):
        with pytest.raises(DecodeRejected) as caught:
            decoder.decode("lab/gw-01/tele/hh-001-sml/SENSOR", SML, 1)
        assert (caught.value.reason, caught.value.detail) == ("no_profile", "topic outside prefix 'p/'")
        with pytest.raises(DecodeRejected) as caught:
            decoder.decode("p/elsewhere", SML, 1)
        assert (caught.value.reason, caught.value.detail) == (
            "no_profile",
            "no device profile matches the topic",
        )
    assert "lab/gw-01/tele/hh-001-sml/SENSOR" not in decoder._routes
    [reading] = decoder.decode("p/lab/gw-01/tele/hh-001-sml/SENSOR", SML, 1)
    assert reading.tags["device"] == "hh-001-sml"
    assert decoder._routes["p/lab/gw-01/tele/hh-001-sml/SENSOR"][0] == "lab/gw-01/tele/hh-001-sml/SENSOR"


@cache
def _tasmota() -> CompiledProfile:
    return load_profiles(PROFILES).by_id["tasmota"]


def test_a_lone_candidate_that_declines_is_no_profile() -> None:
    alone = MessageDecoder(ProfileSet([_tasmota()]))
    with pytest.raises(DecodeRejected) as caught:
        alone.decode("lab/gw-01/tele/hh-001-sml/SENSOR", SML, 1)
    assert type(caught.value) is DecodeRejected  # not the NotThisProfile itself
    assert (caught.value.reason, caught.value.detail) == (
        "no_profile",
        "tasmota: SENSOR without ENERGY block or known sensor group",
    )


sensor_documents = st.dictionaries(
    st.sampled_from(["Time", "ENERGY", "SML", "BME280", "TempUnit", ""]),
    st.none()
    | st.integers()
    | st.text(max_size=3)
    | st.dictionaries(
        st.sampled_from(["Temperature", "Humidity", "Id", "Total", "Power", "Total_in", "DewPoint"]),
        st.none() | st.floats(allow_nan=False) | st.text(max_size=3),
        max_size=3,
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(document=sensor_documents, kind=st.sampled_from(["SENSOR", "STATE", "ENERGY"]))
def test_declines_only_where_decode_would(document: dict[str, Any], kind: str) -> None:
    """The tasmota check the decode stage asks first: a detail only where decode says NotThisProfile with
    it, the same rejection where decode rejects before (None leaves the decision to decode)."""
    tasmota = _tasmota()
    assert tasmota.declines is not None
    for payload in (json.dumps(document).encode(), b"{not json", b"[1]"):
        message = DecodeInput(f"lab/gw/tele/d/{kind}", payload, {"device": "d"}, 1)
        try:
            detail = tasmota.declines(message)
        except DecodeRejected as exc:
            with pytest.raises(DecodeRejected) as caught:
                tasmota.decode(message)
            assert (caught.value.reason, caught.value.detail) == (exc.reason, exc.detail)
            continue
        if detail is not None:
            with pytest.raises(NotThisProfile) as declined:
                tasmota.decode(message)
            assert declined.value.detail == detail


def test_profiles_tried_on_a_shared_topic_parse_the_payload_once(json_parses: list[bytes]) -> None:
    """tasmota declines, then tasmota-sml decodes; a third profile on the same topic whose template binds
    other names gets a DecodeInput of its own and still the one parse."""
    profiles = load_profiles(PROFILES)
    data = yaml.safe_load((PROFILES / "tasmota-sml.yaml").read_text(encoding="utf-8"))
    data.update(id="sml-other-names", priority=-1, topics=["lab/{site}/tele/{meter}/SENSOR"])
    other = compile_profile(data, source="test", tz="Europe/Berlin")
    decoder = MessageDecoder(ProfileSet([*profiles, other]))
    parsed = json_parses
    topic = "lab/gw-01/tele/hh-001-sml/SENSOR"
    [reading] = decoder.decode(topic, SML, 1)
    assert reading.tags["profile"] == "tasmota-sml"
    assert parsed == [SML]
    no_group = b'{"Time":"2025-11-28T10:00:00","SML":1}'
    with pytest.raises(DecodeRejected) as caught:  # tasmota-sml rejects: the third is never asked
        decoder.decode(topic, no_group, 1)
    assert (caught.value.reason, caught.value.profile) == ("invalid_payload", "tasmota-sml")
    assert parsed == [SML, no_group]
    seen: list[DecodeInput] = []

    def not_mine(message: DecodeInput) -> list[Reading]:
        seen.append(message)
        raise NotThisProfile("not mine")

    declining = dataclasses.replace(profiles.by_id["tasmota-sml"], decode=not_mine)
    decoder = MessageDecoder(ProfileSet([profiles.by_id["tasmota"], declining, other]))
    [reading] = decoder.decode(topic, SML, 1)  # the second declines too: the third's readings
    assert reading.tags == {"profile": "sml-other-names"}
    assert [m.bindings for m in seen] == [{"gateway": "gw-01", "device": "hh-001-sml"}]
    assert parsed == [SML, no_group, SML]


def test_groups_and_components_per_message_are_bounded() -> None:
    decoder = MessageDecoder(load_profiles(PROFILES))
    groups = {f"SHT3X-{n}": {"Temperature": 21.5} for n in range(65)}
    with pytest.raises(DecodeRejected) as caught:
        decoder.decode("lab/gw-01/tele/room-1/SENSOR", json.dumps(groups).encode(), 1)
    assert caught.value.reason == "too_complex"
    params = {"ts": 1764320400.5, **{f"switch:{n}": {"apower": 5.0} for n in range(65)}}
    document = {"method": "NotifyStatus", "params": params}
    with pytest.raises(DecodeRejected) as caught:
        decoder.decode("lab/gw-03/shelly-1/events/rpc", json.dumps(document).encode(), 1)
    assert caught.value.reason == "too_complex"


def test_shelly_known_state_keeps_little() -> None:
    """The last status per component is kept for the deltas: only short scalars of a bounded number."""
    decoder = MessageDecoder(load_profiles(PROFILES))

    def feed() -> None:
        for n in range(300):
            junk = {f"junk{i}": "x" * 200 for i in range(10)}
            params = {"ts": 1764320400.5, **{f"switch:{n}{c}": {"apower": 5.0, **junk} for c in range(60)}}
            document = json.dumps({"method": "NotifyFullStatus", "params": params}).encode()
            decoder.decode(f"lab/gw-03/shelly-{n % 3}/events/rpc", document, 1)

    assert _retained_bytes(feed) < 2_000_000  # every status kept whole: ~40 MB
