"""The discovery and fleet pages after a flood, and registering through discovery:

- the fleet notice gives the true counts, in proper singular and plural, German and English;
- the discovery page has one section per gateway to open, the newest devices of each, "… and N more"
  with a link to that gateway alone (``?gateway=``), and a flooded gateway does not hide another's device;
- identifiers are shown as data: inside ``<bdi>``, invisible characters as visible escapes, long ones cut
  with their length;
- registration refuses a household of another building than the gateway's, a device never heard on the
  gateway, and ids with invisible format characters, each with a 422 that says what is wrong.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry
from ingest.registry.models import Building, Gateway, Household, Role
from tests.registry import factories as f
from tests.registry.conftest import REPO
from tests.registry.pages_client import login

pytestmark = [pytest.mark.registry]

BIDI = "unicode-\u202egnp.exe"
LONG = "L" * 3000


class Site:
    def __init__(self, client: TestClient, session: Session, state: Path) -> None:
        self.client, self.session, self.state = client, session, state
        self.building = f.building(session)
        self.other_building = f.building(session)
        self.household = f.household(session, self.building.id)
        self.foreign = f.household(session, self.other_building.id)
        self.flooder = f.gateway_row(session, self.other_building.id)
        self.gateway = f.gateway_row(session, self.building.id)
        self.homeless = f.gateway_row(session, None)  # no building: any household goes
        self.technician = f.user(session, Role.technician)

    def quarantine(self, entries: list[QuarantineEntry]) -> None:
        with Quarantine(self.state / QUARANTINE_FILE) as q:
            q.add_many(entries)

    def token(self) -> dict[str, str]:
        response = self.client.post(
            "/api/v1/auth/login", json={"username": self.technician.username, "password": f.PASSWORD}
        )
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _data(gateway: Gateway, device: str, at_ns: int) -> QuarantineEntry:
    topic = f"lab/{gateway.name}/{device}/state"
    payload = orjson.dumps({"power_w": 230.5})
    return QuarantineEntry(topic, payload, at_ns, "unknown_device", "", "generic-json", gateway.name, device)


@pytest.fixture
def site(engine: Engine, session: Session, tmp_path: Path) -> Iterator[Site]:
    state = tmp_path / "state"
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        registry={"url": "sqlite://"},
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": state},
    )
    with TestClient(create_app(settings, engine=engine, migrate=False)) as client:
        yield Site(client, session, state)


def _flooded(site: Site, devices: int = 1500) -> None:
    now = time.time_ns()
    entries = [_data(site.flooder, f"flood-{n}", now - (devices - n) * 10**6) for n in range(devices)]
    entries.append(_data(site.gateway, "legit-meter", now - 3600 * 10**9))
    entries.append(_data(site.gateway, BIDI, now - 3500 * 10**9))
    entries.append(_data(site.gateway, LONG, now - 3400 * 10**9))
    entries.append(
        QuarantineEntry(f"lab/{site.gateway.name}/heizung/vorlauf", b"47.5", now, "no_profile", "x")
    )
    site.quarantine(entries)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_fleet_notice_counts_true_in_singular_and_plural(site: Site) -> None:
    _flooded(site)
    login(site.client, site.technician, lang="de")
    notice = re.search(r'id="unregistered">(.*?)</p>', site.client.get("/tech/fleet").text, re.S)
    assert notice is not None
    assert _text(notice.group(1)) == (
        "1.503 nicht registrierte Geräte und 1 unbekanntes Topic an 2 Gateways – ansehen und registrieren"
    )
    site.client.cookies.set("reallabor_lang", "en")
    notice = re.search(r'id="unregistered">(.*?)</p>', site.client.get("/tech/fleet").text, re.S)
    assert notice is not None
    assert _text(notice.group(1)) == (
        "1,503 unregistered devices and 1 unknown topic on 2 gateways – see and register them"
    )


def test_fleet_notice_singular_without_topics(site: Site) -> None:
    site.quarantine([_data(site.gateway, "legit-meter", time.time_ns())])
    login(site.client, site.technician, lang="en")
    notice = re.search(r'id="unregistered">(.*?)</p>', site.client.get("/tech/fleet").text, re.S)
    assert notice is not None
    assert _text(notice.group(1)) == "1 unregistered device on 1 gateway – see and register them"


def test_discovery_page_per_gateway_sections_with_more(site: Site) -> None:
    _flooded(site)
    login(site.client, site.technician, lang="en")
    page = site.client.get("/tech/discovery").text
    assert page.count('<details class="discovery"') == 2
    assert "legit-meter" in page  # the flood on another gateway hides nothing
    assert page.count("Register and assign") == 1 + 10  # legit-meter, the flood's ten; not BIDI, not LONG
    assert "… and 1,490 more (1,500 devices)" in _text(page)
    assert f'href="/tech/discovery?gateway={site.flooder.name}"' in page
    assert "Last heard" not in page
    assert "Last seen" in page
    assert len(page) < 200_000

    one = site.client.get(f"/tech/discovery?gateway={site.flooder.name}").text
    assert one.count('<details class="discovery"') == 1
    assert '<details class="discovery" id="gw-1" open>' in one
    assert "legit-meter" not in one
    assert "… and 1,400 more (1,500 devices)" in _text(one)

    german = site.client.get("/tech/discovery", cookies={"reallabor_lang": "de"}).text
    assert "… und 1.490 weitere (1.500 Geräte)" in _text(german)


def test_identifiers_shown_as_data(site: Site) -> None:
    _flooded(site)
    login(site.client, site.technician, lang="en")
    page = site.client.get("/tech/discovery").text
    assert "\u202e" not in page  # never the character itself: it would turn the text around
    assert "<bdi>unicode-\\u202egnp.exe</bdi>" in page
    assert f"<bdi>{'L' * 64}</bdi>… (3,000 characters)" in page
    assert LONG not in page
    # neither can be registered: instead of a form, what is wrong with the id
    assert page.count("cannot be registered") == 2

    api = site.client.get(f"/api/v1/discovery?gateway={site.gateway.name}", headers=site.token())
    assert api.status_code == 200
    (listed,) = api.json()
    assert {d["native_id"] for d in listed["devices"]} == {"legit-meter", BIDI, LONG}  # the API: as they are
    assert (listed["devices_total"], listed["unknown_topics_total"]) == (3, 1)


def test_profile_choice_sorted_by_family_then_id(site: Site) -> None:
    site.quarantine([_data(site.gateway, "legit-meter", time.time_ns())])
    login(site.client, site.technician, lang="en")
    page = site.client.get("/tech/discovery").text
    select = re.search(r'<select [^>]*name="profile_id".*?</select>', page, re.S)
    assert select is not None
    options = re.findall(r'<option value="[a-z0-9-]+"[^>]*>([^<]+)</option>', select.group(0))
    assert len(options) > 5
    assert options == sorted(options, key=lambda o: (o.split(" (")[0].casefold(), o))


def _register(site: Site, **body: Any) -> Any:
    base = {"gateway_id": site.gateway.id, "native_id": "legit-meter", "profile_id": "generic-json"}
    return site.client.post("/api/v1/discovery/register", json=base | body, headers=site.token())


def _problem(response: Any) -> tuple[str, str]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return str(error["loc"][-1]), str(error["msg"])


def test_register_refuses_a_household_of_another_building(site: Site) -> None:
    _flooded(site, devices=3)
    field, message = _problem(_register(site, household_id=site.foreign.id))
    assert field == "household_id"
    assert site.foreign.name in message
    assert site.building.name in message
    field, message = _problem(_register(site, building_id=site.other_building.id))
    assert field == "building_id"
    assert _register(site, household_id=site.household.id).status_code == 201

    # a gateway without a building: any household
    site.quarantine([_data(site.homeless, "roamer", time.time_ns())])
    done = _register(site, gateway_id=site.homeless.id, native_id="roamer", household_id=site.foreign.id)
    assert done.status_code == 201, done.text


def test_register_refuses_a_device_never_heard_on_the_gateway(site: Site) -> None:
    _flooded(site, devices=3)
    field, message = _problem(_register(site, native_id="ghost", household_id=site.household.id))
    assert field == "native_id"
    assert "never heard" in message
    # heard, but on another gateway
    field, _ = _problem(_register(site, native_id="flood-1", household_id=site.household.id))
    assert field == "native_id"


@pytest.mark.parametrize("native_id", [BIDI, "meter\u200b1", "\u2066meter\u2069", "x\u00ad1"])
def test_register_refuses_invisible_format_characters(site: Site, native_id: str) -> None:
    site.quarantine([_data(site.gateway, native_id, time.time_ns())])
    field, message = _problem(_register(site, native_id=native_id, household_id=site.household.id))
    assert field == "native_id"
    assert "invisible character" in message


def test_register_form_says_what_is_wrong_in_german(site: Site) -> None:
    _flooded(site, devices=3)
    token = login(site.client, site.technician, lang="de")
    form = {
        "csrf_token": token,
        "gateway_id": str(site.gateway.id),
        "native_id": "legit-meter",
        "profile_id": "generic-json",
        "household_id": str(site.foreign.id),
    }
    response = site.client.post("/tech/discovery/register", data=form)
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text
    assert site.session.get(Household, site.foreign.id) is not None
    assert site.session.get(Building, site.building.id) is not None
