"""The local broker's forwarded topics follow the device profiles (review of issue 15, M4), and the
forwarder's session id is its gateway's own (M3)."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.gateway.bundle import BundleSettings, gateway_config
from ingest.gateway.config import LOCAL_DEVICE_TOPICS, LocalBroker, forwarder_client_id
from ingest.gateway.frames import HEALTH_SUFFIX, PROFILE_SEGMENT
from ingest.profiles.loader import load_profiles
from simulators.gateway_hosts import FORWARDED_TOPICS

PROFILES = Path(__file__).resolve().parents[2] / "device_profiles"
PREFIX = "lab/{gateway}/"
#: what the gateway itself publishes (serial meters, health): never taken from a local device
OWN_FIRST_LEVELS = {HEALTH_SUFFIX, *PROFILE_SEGMENT.values()}


def native_filter(template: str) -> str:
    """``lab/{gateway}/tele/{device}/SENSOR`` -> ``tele/+/SENSOR``."""
    assert template.startswith(PREFIX), template
    return re.sub(r"\{[^}]+\}", "+", template.removeprefix(PREFIX))


def test_every_local_device_profile_topic_is_forwarded_by_default() -> None:
    derived = {
        native_filter(template)
        for profile in load_profiles(PROFILES).profiles
        for template in profile.profile.topics
        if native_filter(template).split("/")[0] not in OWN_FIRST_LEVELS
    }
    assert set(LOCAL_DEVICE_TOPICS) == derived
    assert len(LOCAL_DEVICE_TOPICS) == len(derived)  # no filter twice (a second copy of every message)
    assert LocalBroker().topics == list(LOCAL_DEVICE_TOPICS)
    assert tuple(FORWARDED_TOPICS) == LOCAL_DEVICE_TOPICS  # the demo forwards what a real gateway does


def test_the_forwarders_session_is_its_gateways_own() -> None:
    assert forwarder_client_id("haus-a") != forwarder_client_id("haus-b")
    settings = BundleSettings(brokers=["broker.example.org:8883"], ca_pem=None)
    ids = [
        gateway_config(name, username=f"gw-{name}", password="p", settings=settings).local_broker
        for name in ("haus-a", "haus-a", "haus-b")
    ]
    client_ids = [local.client_id for local in ids if local is not None]
    assert len(set(client_ids)) == 3, client_ids  # a new bundle, a new id: not guessable from the name
    assert all(cid is not None and cid.startswith("reallabor-haus-") for cid in client_ids), client_ids
