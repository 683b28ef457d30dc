"""The discovery list is fair and bounded per gateway: a flood of device ids on one gateway does not push
another gateway's new device out of the list, every gateway lists its newest devices and topics and says
how many it has in all (counted by SQL, registered devices left out), and the fleet's counts are true."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from sqlalchemy.orm import Session

from ingest.decode import MessageDecoder
from ingest.discovery.listing import discover, first_contact, unregistered_counts
from ingest.profiles import load_profiles
from ingest.quarantine import Quarantine, QuarantineEntry
from ingest.registry.fleet import create_device
from tests.registry import factories as f
from tests.registry.conftest import REPO

pytestmark = [pytest.mark.registry]

NOW_NS = int(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC).timestamp()) * 10**9
SECOND = 10**9
PREFIX = "p/"
Z2M = orjson.dumps(
    [
        {"friendly_name": "Coordinator", "type": "Coordinator", "ieee_address": "0x01"},
        {"friendly_name": "Bad Klima", "type": "EndDevice", "ieee_address": "0x02"},
        {"friendly_name": "Flur Licht", "type": "Router", "ieee_address": "0x03"},
    ]
)


@pytest.fixture
def decoder() -> MessageDecoder:
    return MessageDecoder(load_profiles(REPO / "device_profiles"), topic_prefix=PREFIX)


def _data(gateway: str, device: str, at_ns: int) -> QuarantineEntry:
    payload = orjson.dumps({"power_w": 1.5})
    topic = f"{PREFIX}lab/{gateway}/{device}/state"
    return QuarantineEntry(topic, payload, at_ns, "unknown_device", "", "generic-json", gateway, device)


def _topic(
    gateway: str, rest: str, at_ns: int, reason: str = "no_profile", payload: bytes = b"47.5"
) -> QuarantineEntry:
    return QuarantineEntry(f"{PREFIX}lab/{gateway}/{rest}", payload, at_ns, reason, "no profile")


def _flood(path: Path, flooder: str, quiet: str, *, devices: int = 1500, topics: int = 700) -> None:
    """``devices`` new device ids on ``flooder``, all newer than ``quiet``'s one real new device."""
    entries = [_data(quiet, "legit-meter", NOW_NS - 3600 * SECOND)]
    entries += [_data(flooder, f"flood-{n}", NOW_NS + n * SECOND) for n in range(devices)]
    entries += [_data(flooder, f"flood-{n}", NOW_NS + (devices + n) * SECOND) for n in range(devices // 2)]
    entries += [_topic(flooder, f"junk/{n}", NOW_NS + n * SECOND) for n in range(topics)]
    entries.append(_topic(quiet, "heizung/vorlauf", NOW_NS - 60 * SECOND))
    with Quarantine(path) as q:
        q.add_many(entries)


def test_a_flood_on_one_gateway_does_not_hide_another_gateways_new_device(
    session: Session, decoder: MessageDecoder, tmp_path: Path
) -> None:
    flooder, quiet = (
        f.gateway_row(session, f.building(session).id),
        f.gateway_row(session, f.building(session).id),
    )
    path = tmp_path / "quarantine.sqlite3"
    _flood(path, flooder.name, quiet.name)
    gateways = {g.gateway: g for g in discover(path, session, decoder)}
    assert set(gateways) == {flooder.name, quiet.name}
    assert [d.native_id for d in gateways[quiet.name].devices] == ["legit-meter"]
    assert [u.topic for u in gateways[quiet.name].unknown_topics] == [f"lab/{quiet.name}/heizung/vorlauf"]
    flood = gateways[flooder.name]
    assert len(flood.devices) == len(flood.unknown_topics) == 10  # bounded per gateway, newest first
    assert [d.native_id for d in flood.devices[:2]] == ["flood-749", "flood-748"]
    assert (flood.devices_total, flood.devices_more) == (1500, 1490)
    assert (flood.topics_total, flood.topics_more) == (700, 690)
    assert flood.devices[0].messages == 2

    one = discover(path, session, decoder, gateway=flooder.name, per_gateway=100)
    assert [g.gateway for g in one] == [flooder.name]
    assert (len(one[0].devices), one[0].devices_total) == (100, 1500)


def test_counts_are_true_and_leave_registered_devices_out(
    session: Session, decoder: MessageDecoder, tmp_path: Path
) -> None:
    flooder, quiet = (
        f.gateway_row(session, f.building(session).id),
        f.gateway_row(session, f.building(session).id),
    )
    path = tmp_path / "quarantine.sqlite3"
    _flood(path, flooder.name, quiet.name)
    counts = unregistered_counts(path, session, decoder)
    assert (counts.devices, counts.topics, counts.gateways) == (1501, 701, 2)

    for n in (3, 749):  # registered meanwhile (their entries wait for the ingester's replay)
        create_device(session, gateway_id=flooder.id, native_id=f"flood-{n}", profile_id="generic-json")
    create_device(session, gateway_id=quiet.id, native_id="legit-meter", profile_id="generic-json")
    assert unregistered_counts(path, session, decoder)._asdict() == {
        "devices": 1498,
        "topics": 701,
        "gateways": 2,
    }
    gateways = {g.gateway: g for g in discover(path, session, decoder)}
    assert gateways[flooder.name].devices[0].native_id == "flood-748"
    assert gateways[flooder.name].devices_total == 1498
    assert gateways[quiet.name].devices == []
    assert gateways[quiet.name].devices_total == 0
    assert unregistered_counts(tmp_path / "missing.sqlite3", session, decoder).gateways == 0


def test_announced_devices_are_counted_once(
    session: Session, decoder: MessageDecoder, tmp_path: Path
) -> None:
    gateway = f.gateway_row(session, f.building(session).id)
    gw = gateway.name
    path = tmp_path / "quarantine.sqlite3"
    entries = [_data(gw, f"d{n}", NOW_NS + n * SECOND) for n in range(3)]
    entries.append(
        _data(gw, "Bad Klima", NOW_NS - 100 * SECOND)
    )  # announced and sending, not among the newest
    entries.append(_topic(gw, "zigbee2mqtt/bridge/devices", NOW_NS, "announcement", Z2M))
    with Quarantine(path) as q:
        q.add_many(entries)
    (listed,) = discover(path, session, decoder, per_gateway=2)
    # d0..d2, Bad Klima (data and announcement), Flur Licht (announced only): 5, not 6
    assert listed.devices_total == 5
    assert unregistered_counts(path, session, decoder).devices == 5
    assert len(listed.devices) == 2
    # a device only a zigbee2mqtt bridge list names counts as heard on its gateway
    assert first_contact(path, (gw, "Flur Licht"), decoder) is not None
    assert first_contact(path, (gw, "Nobody"), decoder) is None
