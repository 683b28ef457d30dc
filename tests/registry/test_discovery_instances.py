"""Discovery with several ingester instances: each quarantines into ``<state_dir>/instance-K/``, and the
list, its counts, first contact, the API, the page and registration read them all, merged per device and
topic (messages summed, first contact the earliest, last seen the latest, ranked and cut after the merge).
The same entries in one file give the same answers."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.decode import MessageDecoder
from ingest.discovery.listing import discover, first_contact, unregistered_counts
from ingest.profiles import load_profiles
from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry
from ingest.registry.fleet import create_device
from ingest.registry.models import Role
from ingest.timeparse import datetime_to_ns
from tests.registry import factories as f
from tests.registry.conftest import REPO
from tests.registry.pages_client import login

pytestmark = [pytest.mark.registry]

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
Z2M = orjson.dumps(
    [
        {"friendly_name": "Coordinator", "type": "Coordinator", "ieee_address": "0x01"},
        {"friendly_name": "Bad Klima", "type": "EndDevice", "ieee_address": "0x02"},
        {"friendly_name": "Flur Licht", "type": "Router", "ieee_address": "0x03"},
    ]
)


def _data(prefix: str, gw: str, device: str, at: dt.datetime, power: float) -> QuarantineEntry:
    topic = f"{prefix}lab/{gw}/{device}/state"
    payload = orjson.dumps({"power_w": power})
    return QuarantineEntry(
        topic, payload, datetime_to_ns(at), "unknown_device", "", "generic-json", gw, device
    )


def _topic(
    prefix: str, gw: str, rest: str, at: dt.datetime, reason: str = "no_profile", payload: bytes = b"47.5"
) -> QuarantineEntry:
    return QuarantineEntry(f"{prefix}lab/{gw}/{rest}", payload, datetime_to_ns(at), reason, "no profile")


def _instances(prefix: str, gw: str) -> tuple[list[QuarantineEntry], list[QuarantineEntry]]:
    """What instances 0 and 1 quarantined of one gateway: ``shared`` and the topic ``heizung/vorlauf``
    reached both (its newest message at instance 1, its first at instance 0), ``zero`` and ``one`` one
    each, and ``Bad Klima`` sent data to instance 0 that instance 1 has its zigbee2mqtt announcement of."""
    zero = [
        _data(prefix, gw, "shared", NOW, 1.0),
        _data(prefix, gw, "shared", NOW + MINUTE, 2.0),
        _data(prefix, gw, "zero", NOW + 2 * MINUTE, 3.0),
        _data(prefix, gw, "Bad Klima", NOW - 60 * MINUTE, 4.0),
        _topic(prefix, gw, "heizung/vorlauf", NOW + 3 * MINUTE),
    ]
    one = [
        _data(prefix, gw, "shared", NOW + 5 * MINUTE, 9.0),
        _data(prefix, gw, "one", NOW + 4 * MINUTE, 5.0),
        _topic(prefix, gw, "heizung/vorlauf", NOW - MINUTE),
        _topic(prefix, gw, "other/x", NOW + 6 * MINUTE),
        _topic(prefix, gw, "zigbee2mqtt/bridge/devices", NOW - 30 * MINUTE, "announcement", Z2M),
    ]
    return zero, one


def _write(path: Path, entries: list[QuarantineEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with Quarantine(path) as q:
        q.add_many(entries)


def _split(state: Path, prefix: str, gw: str) -> Path:
    """The two instances' quarantines under ``state``; the path discovery is given (not there itself)."""
    zero, one = _instances(prefix, gw)
    _write(state / "instance-0" / QUARANTINE_FILE, zero)
    _write(state / "instance-1" / QUARANTINE_FILE, one)
    return state / QUARANTINE_FILE


@pytest.fixture
def decoder() -> MessageDecoder:
    return MessageDecoder(load_profiles(REPO / "device_profiles"), topic_prefix="p/")


def test_two_instances_are_listed_merged(session: Session, decoder: MessageDecoder, tmp_path: Path) -> None:
    gateway = f.gateway_row(session, f.building(session).id)
    gw = gateway.name
    path = _split(tmp_path / "state", "p/", gw)

    (listed,) = discover(path, session, decoder)
    devices = {d.native_id: d for d in listed.devices}
    assert [d.native_id for d in listed.devices] == ["shared", "one", "zero", "Bad Klima", "Flur Licht"]
    shared = devices["shared"]
    assert (shared.messages, shared.first_seen, shared.last_seen) == (3, NOW, NOW + 5 * MINUTE)
    assert shared.values[0]["fields"] == {"power_w": 9.0}  # the newest message, at instance 1
    klima = devices["Bad Klima"]  # data at instance 0, announcement at instance 1
    assert klima.sources == ["unknown_device", "announcement"]
    assert (klima.messages, klima.first_seen, klima.last_seen) == (2, NOW - 60 * MINUTE, NOW - 30 * MINUTE)
    assert listed.devices_total == 5
    topics = {t.topic: t for t in listed.unknown_topics}
    assert list(topics) == [f"lab/{gw}/other/x", f"lab/{gw}/heizung/vorlauf"]
    heizung = topics[f"lab/{gw}/heizung/vorlauf"]
    assert (heizung.messages, heizung.first_seen, heizung.last_seen) == (2, NOW - MINUTE, NOW + 3 * MINUTE)
    assert listed.topics_total == 2

    (first,) = discover(path, session, decoder, per_gateway=1)  # ranked and cut after the merge
    assert [d.native_id for d in first.devices] == ["shared"]
    assert [t.topic for t in first.unknown_topics] == [f"lab/{gw}/other/x"]
    assert (first.devices_more, first.topics_more) == (4, 1)
    assert unregistered_counts(path, session, decoder)._asdict() == {"devices": 5, "topics": 2, "gateways": 1}

    assert first_contact(path, (gw, "shared"), decoder) == NOW  # at instance 0, newest at instance 1
    assert first_contact(path, (gw, "one"), decoder) == NOW + 4 * MINUTE
    assert first_contact(path, (gw, "Flur Licht"), decoder) == NOW - 30 * MINUTE  # announced only

    create_device(session, gateway_id=gateway.id, native_id="shared", profile_id="generic-json")
    (listed,) = discover(path, session, decoder)
    assert [d.native_id for d in listed.devices] == ["one", "zero", "Bad Klima", "Flur Licht"]
    assert unregistered_counts(path, session, decoder).devices == 4


def test_one_quarantine_answers_as_the_instances_together(
    session: Session, decoder: MessageDecoder, tmp_path: Path
) -> None:
    gw = f.gateway_row(session, f.building(session).id).name
    split = _split(tmp_path / "split", "p/", gw)
    zero, one = _instances("p/", gw)
    single = tmp_path / "single" / QUARANTINE_FILE
    _write(single, zero + one)
    for per_gateway in (1, 3, 10):
        assert discover(split, session, decoder, per_gateway=per_gateway) == discover(
            single, session, decoder, per_gateway=per_gateway
        )
    assert unregistered_counts(split, session, decoder) == unregistered_counts(single, session, decoder)
    for device in ("shared", "one", "zero", "Bad Klima", "Flur Licht", "nobody"):
        assert first_contact(split, (gw, device), decoder) == first_contact(single, (gw, device), decoder)


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        registry={"url": "sqlite://"},
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": tmp_path / "state", "instances": 2},
    )
    with TestClient(create_app(settings, engine=engine, migrate=False)) as client:
        yield client


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the routes do not depend on the backend
def test_api_page_and_registration_read_every_instance(
    client: TestClient, session: Session, tmp_path: Path
) -> None:
    building = f.building(session)
    household = f.household(session, building.id)
    gateway = f.gateway_row(session, building.id)
    technician = f.user(session, Role.technician)
    _split(tmp_path / "state", "", gateway.name)
    response = client.post(
        "/api/v1/auth/login", json={"username": technician.username, "password": f.PASSWORD}
    )
    auth = {"Authorization": f"Bearer {response.json()['access_token']}"}

    listed = client.get("/api/v1/discovery", headers=auth)
    assert listed.status_code == 200, listed.text
    (found,) = listed.json()
    shared = found["devices"][0]
    assert (shared["native_id"], shared["messages"]) == ("shared", 3)
    assert dt.datetime.fromisoformat(shared["first_seen"]) == NOW
    assert found["devices_total"] == 5
    first = client.get(f"/api/v1/discovery?gateway={gateway.name}&per_gateway=1", headers=auth).json()
    assert [d["native_id"] for d in first[0]["devices"]] == ["shared"]

    login(client, technician, lang="en")
    assert "5 unregistered devices and 2 unknown topics on 1 gateway" in client.get("/tech/fleet").text
    page = client.get("/tech/discovery").text
    shown = {native for native in ("shared", "one", "zero", "Flur Licht") if f'value="{native}"' in page}
    assert shown == {"shared", "one", "zero", "Flur Licht"}  # each with its registration form
    assert f"lab/{gateway.name}/other/x" in page

    # heard only by instance 1: registered from its first contact there
    body = {
        "gateway_id": gateway.id,
        "native_id": "one",
        "profile_id": "generic-json",
        "household_id": household.id,
    }
    registered = client.post("/api/v1/discovery/register", json=body, headers=auth)
    assert registered.status_code == 201, registered.text
    assert dt.datetime.fromisoformat(registered.json()["assigned_from"]) == NOW + 4 * MINUTE
    # heard by both: the page's notice counts what waits for the replay in both quarantines
    registered = client.post("/api/v1/discovery/register", json=body | {"native_id": "shared"}, headers=auth)
    assert dt.datetime.fromisoformat(registered.json()["assigned_from"]) == NOW
    notice = client.get(f"/tech/discovery?registered={registered.json()['device']['id']}").text
    assert "3 quarantined messages will be stored" in notice
