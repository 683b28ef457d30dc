"""The discovery list from a quarantine file: unknown devices with decoded values, announced devices,
topics no profile decodes, registered devices left out; first contact by receive and device time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from sqlalchemy.orm import Session

from ingest.decode import MessageDecoder
from ingest.discovery.listing import discover, first_contact
from ingest.profiles import load_profiles
from ingest.quarantine import Quarantine, QuarantineEntry
from ingest.registry.fleet import create_device
from ingest.timeparse import datetime_to_ns
from tests.registry import factories as f
from tests.registry.conftest import REPO

pytestmark = [pytest.mark.registry]

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
NOW_NS = datetime_to_ns(NOW)
PREFIX = "p/"
Z2M = orjson.dumps(
    [
        {"friendly_name": "Coordinator", "type": "Coordinator", "ieee_address": "0x01"},
        {"friendly_name": "Bad Klima", "type": "EndDevice", "ieee_address": "0x02",
         "definition": {"vendor": "Aqara", "model": "WSDCGQ11LM", "description": "Climate sensor"}},
        {"friendly_name": "Flur Licht", "type": "Router", "ieee_address": "0x03",
         "definition": {"vendor": "IKEA", "model": "LED1545G12", "description": "Bulb"}},
    ]
)  # fmt: skip


def _state(ts: dt.datetime, power: float) -> bytes:
    return orjson.dumps({"ts": int(ts.timestamp() * 1000), "power_w": power})


def _entry(
    topic: str, payload: bytes, at_ns: int, reason: str = "unknown_device", key: tuple[str, str] | None = None
) -> QuarantineEntry:
    gateway, device = key or (None, None)
    return QuarantineEntry(f"{PREFIX}{topic}", payload, at_ns, reason, "", None, gateway, device)


@pytest.fixture
def decoder() -> MessageDecoder:
    return MessageDecoder(load_profiles(REPO / "device_profiles"), topic_prefix=PREFIX)


def test_list_per_gateway(session: Session, decoder: MessageDecoder, tmp_path: Path) -> None:
    building = f.building(session)
    mine = f.household(session, building.id)
    f.household(session)  # another building's: not offered
    gateway = f.gateway_row(session, building.id)
    gw = gateway.name
    create_device(session, gateway_id=gateway.id, native_id="known", profile_id="generic-json")
    path = tmp_path / "quarantine.sqlite3"
    minute = 60 * 10**9
    with Quarantine(path) as q:
        q.add_many(
            [
                _entry(f"lab/{gw}/new-1/state", _state(NOW, 1.0), NOW_NS, key=(gw, "new-1")),
                _entry(f"lab/{gw}/new-1/state", _state(NOW, 2.5), NOW_NS + minute, key=(gw, "new-1")),
                _entry(f"lab/{gw}/known/state", _state(NOW, 3.0), NOW_NS, key=(gw, "known")),
                _entry(f"lab/{gw}/zigbee2mqtt/bridge/devices", Z2M, NOW_NS, "announcement"),
                _entry(f"lab/{gw}/weird/thing", b"\x00\x01hello", NOW_NS, "no_profile"),
                _entry("lab/gw-elsewhere/x/state", _state(NOW, 9.0), NOW_NS, key=("gw-elsewhere", "x")),
            ]
        )
    gateways = {g.gateway: g for g in discover(path, session, decoder)}
    assert set(gateways) == {gw, "gw-elsewhere"}
    listed = gateways[gw]
    assert listed.gateway_id == gateway.id
    assert listed.building == building.name
    assert [h.id for h in listed.households] == [mine.id]
    devices = {d.native_id: d for d in listed.devices}
    assert set(devices) == {"new-1", "Bad Klima", "Flur Licht"}  # not "known", not the coordinator
    new = devices["new-1"]
    assert (new.messages, new.profile, new.topic) == (2, "generic-json", f"lab/{gw}/new-1/state")
    assert new.values[0]["fields"] == {"power_w": 2.5}  # the newest message
    assert new.first_seen == NOW
    assert devices["Bad Klima"].announced == {
        "model": "Aqara WSDCGQ11LM",
        "mac": "0x02",
        "name": "Climate sensor",
    }
    assert devices["Bad Klima"].profile == "zigbee2mqtt"
    (topic,) = listed.unknown_topics
    assert topic.topic == f"lab/{gw}/weird/thing"
    assert topic.excerpt == "··hello"
    elsewhere = gateways["gw-elsewhere"]
    assert elsewhere.gateway_id is None
    assert elsewhere.households == []
    assert discover(tmp_path / "missing.sqlite3", session, decoder) == []


def test_first_contact(decoder: MessageDecoder, tmp_path: Path) -> None:
    path = tmp_path / "quarantine.sqlite3"
    topic = "lab/gw/m/state"
    early = NOW - dt.timedelta(minutes=30)  # device time before the first receive: counts
    epoch = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)
    with Quarantine(path) as q:
        q.add_many(
            [
                _entry(topic, _state(early, 1.0), NOW_NS, key=("gw", "m")),
                _entry(topic, _state(NOW, 1.0), NOW_NS + 10**9, key=("gw", "m")),
                _entry(topic, _state(epoch, 1.0), NOW_NS, key=("gw", "clock")),
            ]
        )
    assert first_contact(path, ("gw", "m"), decoder) == early
    assert first_contact(path, ("gw", "clock"), decoder) == NOW  # a clock before NTP sync: receive time
    assert first_contact(path, ("gw", "nobody"), decoder) is None
