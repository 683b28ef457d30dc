"""/portal over HTTP (the real app, a SQLite registry, the test ledger in a real InfluxDB): residents see
their own household only, whatever they put in paths, query strings, form fields or cookies; injection
strings in every parameter give a clear 4xx (or are ignored) and never another household's data;
anonymous visitors go to the login, operators and technicians get 403."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from ingest.api.security import SESSION_COOKIE
from ingest.portal import view
from ingest.portal.periods import Period
from tests.portal.ledger import DAY, HOUSEHOLDS, TZ, Ledger, totals
from tests.portal.world import World

pytestmark = pytest.mark.integration

INJECTIONS = [
    "' OR '1'='1",
    '"; DROP DATABASE "x"; --',
    "2025-06-18' OR household =~ /.*/ --",
    "day\nSELECT * FROM energy",
    "/.*/",
    "\\",
    "%00",
    "2025-06-18\u202e",
    "𝟚𝟘𝟚𝟝-𝟘𝟞-𝟙𝟠",  # mathematical digits, which int() would take
    "x" * 5000,
]
ROUTES = ("/portal", "/portal/devices", "/portal/csv?from=2025-06-17&to=2025-06-18")


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(world.app, follow_redirects=False) as http:
        yield http


def as_user(client: TestClient, world: World, username: str, *, lang: str = "de") -> TestClient:
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, world.token(username))
    client.cookies.set("reallabor_lang", lang)
    return client


def day_import(ledger: Ledger, index: int, lang: str = "de") -> str:
    name, building = HOUSEHOLDS[index]
    return view.kwh(
        lang, totals(ledger.quarter_hours, name, building, *Period.containing("day", DAY, TZ).range)["import"]
    )


def main(page: str) -> str:
    """The page's content (the language links repeat the query string)."""
    found = re.search(r'<main id="content">(.*)</main>', page, re.S)
    assert found, page[:500]
    return found.group(1)


def test_anonymous_goes_to_the_login(client: TestClient) -> None:
    for route in ROUTES:
        response = client.get(route)
        assert response.status_code == 303, route
        assert response.headers["location"].startswith("/tech/login?next=/portal")


def test_staff_get_403(client: TestClient, world: World) -> None:
    for username in (world.operator, world.technician):
        as_user(client, world, username)
        for route in ROUTES:
            response = client.get(route)
            assert response.status_code == 403, (username, route)
            assert "für Bewohnerinnen und Bewohner" in response.text


def test_day_view_shows_the_households_own_numbers(client: TestClient, world: World, ledger: Ledger) -> None:
    for index in (0, 3, 4, 5):
        as_user(client, world, world.residents[index])
        page = client.get(f"/portal?view=day&date={DAY.isoformat()}")
        assert page.status_code == 200, page.text
        assert "Mittwoch, 18. Juni 2025" in page.text
        assert day_import(ledger, index) in page.text
        # the typical household is a mean of several, so no other household's figure is on the page
        others = {day_import(ledger, other) for other in range(len(HOUSEHOLDS)) if other != index}
        shown = [value for value in others if value in page.text]
        assert not shown, (index, shown)
        assert 'id="portal-charts"' in page.text
        assert "Strom aus dem Netz" in page.text


def test_every_view_renders(client: TestClient, world: World) -> None:
    as_user(client, world, world.residents[1], lang="en")
    for name in ("now", "day", "week", "month", "year"):
        page = client.get(f"/portal?view={name}&date={DAY.isoformat()}")
        assert page.status_code == 200, (name, page.text)
        assert 'lang="en"' in page.text
        assert page.text.count('id="quarter-pending"') + page.text.count('id="community-title"') == (
            name != "now"
        )  # a period view: the quarter's figures, or that they are being computed
    world.app.state.portal.quarter.wait(120)  # the warm-up the first period view started
    month = client.get(f"/portal?view=month&date={DAY.isoformat()}")
    assert "June 2025" in month.text
    assert "Typical household" in month.text
    assert "Self-sufficiency" in month.text
    assert 'href="/portal?view=month&amp;date=2025-05-01"' in month.text  # previous month
    assert 'href="/portal?view=month&amp;date=2025-07-01"' in month.text  # next month


def test_tampering_with_paths_queries_forms_and_cookies_changes_nothing(
    client: TestClient, world: World, ledger: Ledger
) -> None:
    me = world.residents[0]
    as_user(client, world, me)
    target = f"/portal?view=day&date={DAY.isoformat()}"
    baseline = main(client.get(target).text)
    other = HOUSEHOLDS[3]
    for extra in (
        "household=EG",
        "building=Haus%202",
        f"household_id=104&user={world.residents[3]}",
        "household=EG&household=hh-001",
        "id=104",
    ):
        assert main(client.get(f"{target}&{extra}").text) == baseline, extra
    for path in (
        "/portal/104",
        "/portal/EG",
        "/portal/household/104",
        "/portal/devices/104",
        "/portal/csv/104",
    ):
        response = client.get(path)
        assert response.status_code in (404, 405), path
        assert day_import(ledger, 3) not in response.text
    # forms: no POST at all; a household field on the CSV form is ignored
    assert client.post("/portal", data={"household": other[0]}).status_code in (403, 405)
    own_csv = client.get("/portal/csv?from=2025-06-18&to=2025-06-18&resolution=15m")
    tampered = client.get(
        "/portal/csv?from=2025-06-18&to=2025-06-18&resolution=15m&household=EG&building=Haus%202"
    )
    assert tampered.text == own_csv.text
    assert "EG-" not in own_csv.text
    # cookies: extra ones are ignored, a forged session is no session
    client.cookies.set("household", "EG")
    client.cookies.set("household_id", "104")
    assert main(client.get(target).text) == baseline
    token = world.token(me)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    client.cookies.set(SESSION_COOKIE, forged)
    assert client.get(target).status_code == 303


@pytest.mark.parametrize("bad", INJECTIONS)
def test_injection_in_every_parameter_fails_harmlessly(client: TestClient, world: World, bad: str) -> None:
    as_user(client, world, world.residents[5])  # the household named x' OR '1'='1
    cases = [
        ("/portal", {"view": bad}),
        ("/portal", {"view": "day", "date": bad}),
        ("/portal/csv", {"from": bad, "to": "2025-06-18"}),
        ("/portal/csv", {"from": "2025-06-17", "to": bad}),
        ("/portal/csv", {"from": "2025-06-17", "to": "2025-06-18", "resolution": bad}),
    ]
    for path, params in cases:
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, params, response.status_code)
        assert 'role="alert"' in response.text
        for name, _building in HOUSEHOLDS[:5]:
            assert f"{name}-import" not in response.text
    switched = client.get(f"/portal/lang/{quote(bad[:100], safe='')}", params={"next": bad})
    assert switched.status_code in (303, 404)
    if switched.status_code == 303:
        assert switched.headers["location"] == "/portal"


def test_clear_messages_for_bad_ranges(client: TestClient, world: World) -> None:
    as_user(client, world, world.residents[0])
    response = client.get(
        "/portal/csv", params={"from": "2025-05-01", "to": "2025-06-18", "resolution": "15m"}
    )
    assert response.status_code == 400
    assert "Höchstens 31 Tage in dieser Auflösung (gewählt: 49)" in response.text
    response = client.get("/portal/csv", params={"from": "2025-06-18", "to": "2025-06-01"})
    assert "„Bis“ darf nicht vor „Von“ liegen." in response.text
    as_user(client, world, world.residents[0], lang="en")
    response = client.get("/portal", params={"view": "decade"})
    assert response.status_code == 400
    assert "There is no such view (possible: Now, Day, Week, Month, Year)." in response.text


def test_csv_holds_only_the_households_rows(client: TestClient, world: World, ledger: Ledger) -> None:
    for index in (3, 4, 5):  # two households named EG in different buildings, and the injection name
        as_user(client, world, world.residents[index])
        response = client.get("/portal/csv", params={"from": "2025-06-01", "to": "2025-06-30"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert 'filename="energie-2025-06-01-2025-06-30-1d.csv"' in response.headers["content-disposition"]
        lines = response.text.splitlines()
        name, building = HOUSEHOLDS[index]
        start = dt.datetime(2025, 6, 1, tzinfo=TZ)
        end = dt.datetime(2025, 7, 1, tzinfo=TZ)
        expected = totals(ledger.days, name, building, start, end)
        got: dict[str, float] = {}
        for line in lines[1:]:
            _local, _utc, device, kind, kwh = (
                line.rsplit(",", 4) if not line.startswith('"') else line.split(",")
            )
            assert device.startswith(name) or device.startswith(f"'{name}")
            got[kind] = got.get(kind, 0.0) + float(kwh)
        assert sorted(got) == sorted(expected)
        for kind, value in expected.items():
            assert got[kind] == pytest.approx(value, abs=1e-4)
        assert len(lines) == 1 + 30 * len(expected)


def test_devices_are_the_households_own(client: TestClient, world: World) -> None:
    as_user(client, world, world.residents[2])
    page = client.get("/portal/devices")
    assert page.status_code == 200
    for native in world.devices[2]:
        assert native in page.text
    assert "dev-2-old" not in page.text  # assigned until last week
    for index, natives in world.devices.items():
        if index != 2:
            assert not any(native in page.text for native in natives)
    assert "Stromzähler (Lesekopf)" in page.text
    assert "meldet sich nicht" in page.text  # the climate sensor: an hour ago


def test_language_switch_stays_in_the_portal(client: TestClient, world: World) -> None:
    as_user(client, world, world.residents[0])
    response = client.get("/portal/lang/en", params={"next": "/portal?view=month&date=2025-06-18"})
    assert response.status_code == 303
    assert response.headers["location"] == "/portal?view=month&date=2025-06-18"
    assert "reallabor_lang=en" in response.headers["set-cookie"]
    for evil in ("https://evil.example/", "//evil.example/portal", "/tech/fleet", "/portal\\@evil"):
        assert client.get("/portal/lang/en", params={"next": evil}).headers["location"] == "/portal"
