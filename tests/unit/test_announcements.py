"""Device announcements as the vendors send them: which devices they name, and bad ones refused."""

from __future__ import annotations

import pytest

from ingest.decode import MessageDecoder
from ingest.discovery.announcements import gateway_and_rest, parse
from ingest.profiles import load_profiles
from ingest.readings import DecodeRejected
from tests.unit.test_profile_examples import PROFILES_DIR

Z2M_OLD = (
    b'[{"friendly_name":"Coordinator","ieeeAddr":"0x00124b001949ce5b","type":"Coordinator"},'
    b'{"description":"Aqara temperature, humidity and pressure sensor","friendly_name":"0x00158d0005828ece",'
    b'"ieeeAddr":"0x00158d0005828ece","model":"WSDCGQ11LM","type":"EndDevice","vendor":"Xiaomi"}]'
)


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (
            "tasmota/discovery/A4CF128B2E4F/config",
            b'{"t":"tasmota_8B2E4F","md":"Gosund SP111","sw":"13.4.0","ip":"10.0.0.4","mac":"A4CF128B2E4F",'
            b'"dn":"Keller"}',
            [("tasmota_8B2E4F", "tasmota", "Gosund SP111", "13.4.0", "10.0.0.4", "Keller")],
        ),
        (
            "zigbee2mqtt/bridge/devices",
            Z2M_OLD,
            [
                (
                    "0x00158d0005828ece",
                    "zigbee2mqtt",
                    "Xiaomi WSDCGQ11LM",
                    "",
                    "",
                    "Aqara temperature, humidity and pressure sensor",
                )
            ],
        ),
        (
            "shellies/announce",
            b'{"id":"shellyplug-s-C8C9A3","model":"SHPLG-S","mac":"C8C9A3","ip":"10.0.0.9","fw_ver":"1.14.0"}',
            [("shellyplug-s-C8C9A3", "shelly-gen1", "SHPLG-S", "1.14.0", "10.0.0.9", "")],
        ),
        (
            "shellyplus1pm-a8032ab1c2d3/online",
            b"true",
            [("shellyplus1pm-a8032ab1c2d3", "shelly-gen2", "", "", "", "")],
        ),
        ("zigbee2mqtt/bridge/devices", b"[]", []),
        ("tele/x/SENSOR", b"{}", []),
    ],
)
def test_announced_devices(topic: str, payload: bytes, expected: list[tuple[str, ...]]) -> None:
    found = [(a.native_id, a.profile, a.model, a.firmware, a.address, a.name) for a in parse(topic, payload)]
    assert found == expected


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("tasmota/discovery/X/config", b'{"md":"no topic"}', "invalid_payload"),
        ("tasmota/discovery/X/config", b"[1]", "invalid_payload"),
        ("zigbee2mqtt/bridge/devices", b'{"a":1}', "invalid_payload"),
        ("shellies/announce", b"{not json", "invalid_json"),
        ("shelly-x/online", b"maybe", "invalid_payload"),
    ],
)
def test_bad_announcements(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        parse(topic, payload)
    assert caught.value.reason == reason


def test_control_characters_and_long_text_are_cut() -> None:
    payload = b'{"id":"plug-1","model":"\\u001b[31mred' + b"x" * 500 + b'"}'
    (announced,) = parse("shellies/announce", payload)
    assert "\x1b" not in announced.model
    assert len(announced.model) <= 120


def test_the_decoder_keeps_the_device_key_for_the_quarantine() -> None:
    decoder = MessageDecoder(load_profiles(PROFILES_DIR), topic_prefix="p/")
    with pytest.raises(DecodeRejected) as caught:
        decoder.decode("p/lab/gw-1/shellies/announce", b'{"id":"shelly1-AB"}', 0)
    assert caught.value.reason == "announcement"
    assert caught.value.key == ("gw-1", "shelly1-AB")
    assert caught.value.profile == "announcements"


def test_gateway_and_rest() -> None:
    assert gateway_and_rest("p/lab/gw-1/tele/x/SENSOR", "p/") == ("gw-1", "tele/x/SENSOR")
    assert gateway_and_rest("lab/gw-1", "") is None
    assert gateway_and_rest("other/gw-1/x", "") is None
