"""The local broker's forwarded topics follow the device profiles (review of issue 15, M4), and the
forwarder's client id is its gateway's own and unguessable (M3)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest.gateway.bundle import BundleSettings, gateway_config
from ingest.gateway.config import LOCAL_DEVICE_TOPICS, LocalBroker, forwarder_client_id
from ingest.gateway.frames import HEALTH_SUFFIX, PROFILE_SEGMENT
from ingest.gateway.local import LocalForwarder
from ingest.gateway.outbox import Outbox
from ingest.profiles.loader import load_profiles
from simulators.gateway_hosts import FORWARDED_TOPICS

PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"
PREFIX = "lab/{gateway}/"
#: what the gateway itself publishes (serial meters, health): never taken from a local device
OWN_FIRST_LEVELS = {HEALTH_SUFFIX, *PROFILE_SEGMENT.values()}


def native_filters(template: str) -> list[str]:
    """``lab/{gateway}/tele/{device}/SENSOR`` -> ``[tele/+/SENSOR]``; ``{x:path}`` as 1, 2 and 3 levels."""
    assert template.startswith(PREFIX), template
    rest = re.sub(r"\{[a-z_0-9]+\}", "+", template.removeprefix(PREFIX))
    if ":path}" not in rest:
        return [rest]
    return [re.sub(r"\{[a-z_0-9]+:path\}", "/".join(["+"] * levels), rest) for levels in (1, 2, 3)]


def test_every_local_device_profile_topic_is_forwarded_by_default() -> None:
    derived = {
        native
        for profile in load_profiles(PROFILES).profiles
        for template in profile.profile.topics
        for native in native_filters(template)
        if native.split("/")[0] not in OWN_FIRST_LEVELS
    }
    assert set(LOCAL_DEVICE_TOPICS) == derived
    assert len(LOCAL_DEVICE_TOPICS) == len(derived)  # no filter twice (a second copy of every message)
    assert LocalBroker().topics == list(LOCAL_DEVICE_TOPICS)
    assert tuple(FORWARDED_TOPICS) == LOCAL_DEVICE_TOPICS  # the demo forwards what a real gateway does


def test_the_forwarders_client_id_is_its_gateways_own_unguessable_and_kept(tmp_path: Path) -> None:
    """M3: any client that logs in with the forwarder's client id takes its session (and queue) over."""

    def client_id(gateway: str, outbox: Path) -> str:
        with Outbox(outbox, max_bytes=10_000_000) as box:
            return LocalForwarder(LocalBroker(), gateway=gateway, outbox=box).client_id()

    first = client_id("haus-a", tmp_path / "a")
    assert first.startswith(f"{forwarder_client_id('haus-a')}-")
    assert len(first) > len("reallabor-haus-a-forwarder-")
    assert client_id("haus-a", tmp_path / "a") == first  # kept with the outbox: a restart, a new bundle
    assert client_id("haus-a", tmp_path / "a2") != first  # not derived from the name alone
    assert client_id("haus-b", tmp_path / "b").startswith("reallabor-haus-b-forwarder-")
    settings = BundleSettings(brokers=["broker.example.org:8883"], ca_pem=None)
    local = gateway_config("haus-a", username="gw-haus-a", password="p", settings=settings).local_broker
    assert local is not None
    assert local.client_id is None
    with Outbox(tmp_path / "c", max_bytes=10_000_000) as box:
        fixed = LocalForwarder(LocalBroker(client_id="set-by-hand"), gateway="haus-a", outbox=box)
        assert fixed.client_id() == "set-by-hand"


def test_filters_may_overlap_or_lie_within_another_but_not_repeat() -> None:
    """Overlaps are forwarded once (test_local_overlap.py), so a filter within another is allowed now;
    the same filter twice would replace its own subscription (and its identifier): refused."""
    for topics in (
        [*LOCAL_DEVICE_TOPICS, "tele/#"],
        ["#", "zigbee2mqtt/+"],
        ["a/+/c", "a/b/c"],
        ["+/state", "zigbee2mqtt/+", "a/+", "+/b", "a/b/+"],
    ):
        assert LocalBroker(topics=topics).topics == topics
    with pytest.raises(ValidationError, match="listed twice") as refused:
        LocalBroker(topics=["tele/+/SENSOR", "x", "tele/+/SENSOR"])
    assert repr("tele/+/SENSOR") in str(refused.value)
