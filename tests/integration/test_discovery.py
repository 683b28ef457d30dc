"""Discovery end to end, against the real broker, InfluxDB and the ingester: an unregistered device's
messages are quarantined (unknown_device), listed with their decoded values on /api/v1/discovery and
/tech/discovery beside an announced device; registered on the page (and over the API), the ingester
replays its messages at its next registry refresh, and its readings since first contact are in InfluxDB
with household and building; the accounting holds. Residents are refused."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.localservices import Mosquitto, free_port
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from ingest.registry.buildings import create_building, create_household
from ingest.registry.db import make_engine, session_factory
from ingest.registry.migrate import upgrade
from ingest.registry.models import Gateway, GatewayStatus, Role
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, assert_accounting, settled, wait_for
from tests.registry import factories as f

MINUTE = dt.timedelta(minutes=1)
REFRESH_S = 1.0
ANNOUNCE = b'{"id":"shelly1-C8C9A3","model":"SHSW-1","mac":"C8C9A3","ip":"192.168.10.77","fw_ver":"1.14.0"}'


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF field"
    return found.group(1)


def _login_page(api: TestClient, username: str, *, lang: str = "de") -> None:
    api.cookies.set("reallabor_lang", lang)
    data = {"username": username, "password": f.PASSWORD, "csrf_token": _csrf(api.get("/tech/login").text)}
    assert api.post("/tech/login", data=data, follow_redirects=False).status_code == 303


def _token(api: TestClient, username: str) -> dict[str, str]:
    response = api.post("/api/v1/auth/login", json={"username": username, "password": f.PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


class World:
    def __init__(self, root: Path) -> None:
        self.url = f"sqlite:///{root / 'registry.db'}"
        self.engine = make_engine(self.url)
        upgrade(self.engine)
        self.session: Session = session_factory(self.engine)()
        building = create_building(self.session, name="Haus C")
        self.h1 = create_household(self.session, building_id=building.id, name="C-01")
        self.h2 = create_household(self.session, building_id=building.id, name="C-02")
        other = create_building(self.session, name="Haus D")
        create_household(self.session, building_id=other.id, name="D-01")  # not offered for gw-5
        self.gateway = Gateway(
            name="gw-5", building_id=building.id, status=GatewayStatus.active, broker_username="gw-gw-5"
        )
        self.session.add(self.gateway)
        self.session.commit()
        self.technician = f.user(self.session, Role.technician).username
        self.resident = f.user(self.session, Role.resident, household_id=self.h1.id).username


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path)
    yield world
    world.session.close()
    world.engine.dispose()


def _api(target: Target, world: World) -> TestClient:
    settings = Settings(
        mqtt={"host": "127.0.0.1", "port": target.mqtt_port, "topic_prefix": target.topic_prefix},
        ingest={"state_dir": target.state_dir, "profiles_dir": target.profiles_dir},
        registry={"url": world.url, "enrich": True, "refresh_s": REFRESH_S},
    )
    return TestClient(create_app(settings), base_url="http://testserver")


def _publish(port: int, target: Target, messages: list[tuple[str, bytes]]) -> None:
    with Publisher("127.0.0.1", port) as publisher:
        for topic, payload in messages:
            publisher.publish(f"{target.topic_prefix}lab/gw-5/{topic}", payload)
        publisher.flush()


def _reading(device: str, at: dt.datetime, power: float) -> tuple[str, bytes]:
    return f"{device}/state", orjson.dumps({"ts": int(at.timestamp() * 1000), "power_w": power})


def _pending(target: Target) -> dict[str, int]:
    with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as q:
        return q.stats()["by_reason"]


def test_discover_register_and_replay(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery, world: World
) -> None:
    metrics_port = free_port()
    ingester.start(
        registry={"enrich": True, "url": world.url, "refresh_s": REFRESH_S},
        ingest={"metrics_port": metrics_port},
    )
    # device times from 10 minutes before they are first heard (a gateway's outbox sends late): the
    # assignment starts at the oldest reading then, so that every replayed one is tagged
    t0 = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - 10 * MINUTE
    newcomer = [_reading("newcomer", t0 + h * MINUTE, 100.0 + h) for h in range(4)]
    second = [_reading("meter-2", t0 + h * MINUTE, 7.5) for h in range(2)]
    _publish(mosquitto.port, target, [*newcomer, *second, ("shellies/announce", ANNOUNCE)])
    wait_for(
        lambda: _pending(target) == {"unknown_device": 6, "announcement": 1}, timeout=30, what="quarantined"
    )
    assert "rejected message" not in "\n".join(line for line in ingester.log if "announce" in line)

    with _api(target, world) as api:
        # a resident is refused, on the API and on the page
        assert api.get("/api/v1/discovery", headers=_token(api, world.resident)).status_code == 403
        _login_page(api, world.resident)
        assert api.get("/tech/discovery").status_code == 403
        api.cookies.clear()

        staff = _token(api, world.technician)
        listed = api.get("/api/v1/discovery", headers=staff)
        assert listed.status_code == 200, listed.text
        (gateway,) = listed.json()
        assert gateway["gateway"] == "gw-5"
        assert gateway["building"] == "Haus C"
        assert [h["name"] for h in gateway["households"]] == ["C-01", "C-02"]
        devices = {d["native_id"]: d for d in gateway["devices"]}
        assert set(devices) == {"newcomer", "meter-2", "shelly1-C8C9A3"}
        newest = devices["newcomer"]
        assert newest["profile"] == "generic-json"
        assert newest["messages"] == 4
        assert newest["values"][0]["measurement"] == "electricity"
        assert newest["values"][0]["fields"] == {"power_w": 103.0}
        assert newest["sources"] == ["unknown_device"]
        assert dt.datetime.fromisoformat(newest["first_seen"]) <= dt.datetime.fromisoformat(
            newest["last_seen"]
        )
        shelly = devices["shelly1-C8C9A3"]
        assert shelly["profile"] == "shelly-gen1"
        assert shelly["announced"]["model"] == "SHSW-1"
        assert shelly["announced"]["address"] == "192.168.10.77"
        assert shelly["sources"] == ["announcement"]

        # the page, in English and German, with the decoded value and one form per device
        _login_page(api, world.technician, lang="en")
        page = api.get("/tech/discovery")
        assert page.status_code == 200
        assert "newcomer" in page.text
        assert "electricity.power_w" in page.text
        assert "103" in page.text
        assert "SHSW-1" in page.text
        assert page.text.count("Register and assign") == 3
        assert "D-01" not in page.text  # only the gateway's building's households
        _login_page(api, world.technician, lang="de")
        page = api.get("/tech/discovery")
        assert "Registrieren und zuordnen" in page.text
        assert 'href="/tech/discovery"' in api.get("/tech").text  # linked from the menu

        # register on the page: assigned from its first contact, replayed by the ingester
        form = {
            "csrf_token": _csrf(page.text),
            "gateway_id": str(world.gateway.id),
            "native_id": "newcomer",
            "profile_id": "generic-json",
            "household_id": str(world.h1.id),
        }
        registered_at = time.monotonic()
        response = api.post("/tech/discovery/register", data=form, follow_redirects=False)
        assert response.status_code == 303, response.text
        wait_for(lambda: influx.count("electricity", "power_w", where="device = 'newcomer'") == 4, timeout=30)
        print(f"page registration to 4 readings in InfluxDB: {time.monotonic() - registered_at:.2f} s")
        notice = api.get(response.headers["location"])
        assert "newcomer" in notice.text
        assert "Zugeordnet ab" in notice.text

        # and over the JSON API
        body: dict[str, Any] = {
            "gateway_id": world.gateway.id,
            "native_id": "meter-2",
            "profile_id": "generic-json",
            "household_id": world.h2.id,
        }
        done = api.post("/api/v1/discovery/register", json=body, headers=staff)
        assert done.status_code == 201, done.text
        assert dt.datetime.fromisoformat(done.json()["assigned_from"]) == t0
        assert done.json()["replay_within_s"] == REFRESH_S
        again = api.post("/api/v1/discovery/register", json=body, headers=staff)
        assert again.status_code == 422  # already registered
        missing = api.post(
            "/api/v1/discovery/register", json={**body, "native_id": "x", "household_id": None}, headers=staff
        )
        assert missing.status_code == 422
        wait_for(lambda: influx.count("electricity", "power_w", where="device = 'meter-2'") == 2, timeout=30)

        remaining = api.get("/api/v1/discovery", headers=staff).json()
        assert [d["native_id"] for g in remaining for d in g["devices"]] == ["shelly1-C8C9A3"]

    rows = influx.rows("SELECT power_w, household, building FROM electricity GROUP BY device")
    by_device: dict[str, set[tuple[str, str]]] = {}
    for row in rows:
        by_device.setdefault(row["device"], set()).add((row["household"], row["building"]))
    assert by_device == {"newcomer": {("C-01", "Haus C")}, "meter-2": {("C-02", "Haus C")}}
    assert _pending(target) == {"announcement": 1}
    metrics = wait_for(lambda: settled(metrics_port), timeout=10, what="settled")
    assert metrics["replayed_total"] == 6
    assert metrics["received_total"] == 7
    assert_accounting(metrics)
