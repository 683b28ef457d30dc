"""German pages entirely German, English pages English: every page and form error of the technician
pages walked in German (validation messages, badges, profile families, reasons of the commissioning
check, the CSV report), and times in the quarter's time zone, never as UTC ISO strings."""

from __future__ import annotations

import datetime as dt
import html
import re
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.pages.localize import FAMILIES_DE, GENERIC_DE, Localizer, field_message_de, zone
from ingest.commissioning import report as rpt
from ingest.commissioning.runner import RunManager
from ingest.profiles.loader import load_profiles
from ingest.registry.commissioning import record_check
from ingest.registry.db import commit
from ingest.registry.device_import import import_devices
from ingest.registry.models import Gateway, GatewayStatus, Role
from ingest.registry.text import check_text
from tests.registry import factories as f
from tests.registry.pages_client import form_token, login

REPO = Path(__file__).resolve().parents[2]
BERLIN = zone("Europe/Berlin")
# words of English that German pages must not show (lower case: German nouns are capitalized)
ENGLISH = re.compile(
    r"\b(the|is|are|not|no|with|within|must|should|exists|already|unknown|value|active|registered|"
    r"revoked|retired|faulty|silent|never|passed|failed|meter|message|received|error|field|required|"
    r"characters|pattern|string|device|check|waiting|seconds|ago|none|please|choose|search|save|"
    r"profile|outside|range|offset|earlier|during|topic level|letters|digits)\b"
)
ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\+00:00")


def visible(page: str) -> str:
    """What a reader sees: text and the texts of attributes read out (placeholder, title, aria-label),
    without code (topics, ids, payloads are data), scripts and the other language's switch."""
    page = re.sub(r"<(script|template|code|style)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r'<a [^>]*hreflang="en"[^>]*>.*?</a>', " ", page, flags=re.S)
    said = re.findall(r'(?:placeholder|title|aria-label)="([^"]*)"', page)
    return html.unescape(re.sub(r"<[^>]+>", " ", page) + " " + " ".join(said))


def assert_german(page: str, where: str) -> None:
    text = visible(page)
    english = sorted({m.group(0) for m in ENGLISH.finditer(text)})
    assert not english, f"{where}: English on a German page: {english}\n{text}"
    assert not ISO.search(text), f"{where}: ISO time on a page: {ISO.search(text)}\n{text}"


# ---------------------------------------------------------------- without a database


def test_every_profile_family_has_its_german() -> None:
    profiles = load_profiles(REPO / "device_profiles")
    families = {p.profile.family for p in profiles}
    assert families <= set(FAMILIES_DE), families - set(FAMILIES_DE)
    assert Localizer("de").family("Generic JSON meter") == "Allgemeiner JSON-Zähler"
    assert Localizer("en").family("Generic JSON meter") == "Generic JSON meter"


@pytest.mark.parametrize(
    ("moment", "lang", "shown"),
    [
        (dt.datetime(2026, 11, 29, 13, 5, tzinfo=dt.UTC), "de", "29.11.2026, 14:05"),
        (dt.datetime(2026, 11, 29, 13, 5, tzinfo=dt.UTC), "en", "29 Nov 2026, 14:05 CET"),
        (dt.datetime(2026, 7, 1, 12, 0, 9, tzinfo=dt.UTC), "de", "01.07.2026, 14:00"),
        (dt.datetime(2026, 7, 1, 12, 0, 9, tzinfo=dt.UTC), "en", "1 Jul 2026, 14:00 CEST"),
        (dt.datetime(2026, 7, 1, 12, 0, 9), "de", "01.07.2026, 14:00"),  # naive: the registry's UTC
        ("2026-07-01T12:00:09.123+00:00", "de", "01.07.2026, 14:00"),  # a report's time
        (None, "de", "–"),
    ],
)
def test_times_in_the_quarters_zone(moment: dt.datetime | str | None, lang: str, shown: str) -> None:
    assert Localizer(lang, BERLIN).when(moment) == shown


def test_numbers_and_spans() -> None:
    de, en = Localizer("de"), Localizer("en")
    assert (de.number(230.1), en.number(230.1), de.number(-61), de.number(True)) == (
        "230,1",
        "230.1",
        "-61",
        True,
    )
    assert (de.duration(5400), en.duration(5400), de.duration(3 * 86400)) == ("90 min", "90 min", "3 Tg.")
    assert (de.status("revoked"), en.status("revoked"), de.status("never")) == (
        "widerrufen",
        "revoked",
        "nie gehört",
    )


@pytest.mark.parametrize(
    ("kind", "field", "message", "ctx", "german"),
    [
        ("missing", "native_id", "Field required", None, "Pflichtfeld."),
        (
            "string_too_short",
            "native_id",
            "String should have at least 1 character",
            {"min_length": 1},
            "Pflichtfeld.",
        ),
        (
            "string_too_long",
            "location",
            "String should have at most 200 characters",
            {"max_length": 200},
            "Höchstens 200 Zeichen.",
        ),
        (
            "string_pattern_mismatch",
            "native_id",
            "String should match pattern '^[^/+#]+(/[^/+#]+)*$'",
            {},
            "Topic-Ebenen, durch / getrennt: keine leer, kein + oder #.",
        ),
        ("int_parsing", "gateway_id", "Input should be a valid integer", None, "Bitte eine ganze Zahl."),
        (
            "less_than_equal",
            "gateway_id",
            "Input should be less than or equal to 2147483647",
            {"le": 2147483647},
            "Höchstens 2147483647.",
        ),
        (
            "value_error",
            "location",
            "Value error, must not start with '=': a spreadsheet would run it as a formula "
            "(start with a letter or digit instead)",
            None,
            "Darf nicht mit „=“ beginnen: eine Tabellenkalkulation würde es als Formel ausführen "
            "(mit einem Buchstaben oder einer Ziffer beginnen).",
        ),
        ("some_new_kind", "x", "Something new", None, GENERIC_DE),
    ],
)
def test_pydantic_errors_by_kind(
    kind: str, field: str, message: str, ctx: dict[str, int] | None, german: str
) -> None:
    assert Localizer("de").field_error(field, message, kind=kind, ctx=ctx) == german
    assert Localizer("en").field_error(field, message, kind=kind, ctx=ctx) == message.removeprefix(
        "Value error, "
    )


@pytest.mark.parametrize("value", ["a\tb", "a\u2028b", "\ud800", "=SUM(A1)", "@x", "-x"])
def test_every_text_rule_has_its_german(value: str) -> None:
    with pytest.raises(ValueError, match=r"not allowed|must not start") as caught:
        check_text(value)
    assert field_message_de(str(caught.value)) != GENERIC_DE, caught.value
    with pytest.raises(ValueError, match="control character") as multi:
        check_text("a\x01b", multiline=True)
    assert field_message_de(str(multi.value)) != GENERIC_DE, multi.value


@pytest.mark.parametrize(
    ("code", "message", "german", "english"),
    [
        (
            "no_message",
            "no message on lab/g/d/state within 5 s",
            "Keine Nachricht in 5 s empfangen.",
            "No message received in 5 s.",
        ),
        (
            "clock_offset",
            "the device clock is +400 s off (limit ±300 s)",
            "Die Geräteuhr geht +400 s falsch (Grenze ±300 s).",
            None,
        ),
        (
            "invalid_json",
            "the payload is not parseable JSON: Expecting value",
            "Die Nutzdaten sind kein lesbares JSON.",
            None,
        ),
        (
            "quarantined",
            "2 message(s) of this device quarantined now: invalid_json",
            "2 Nachricht(en) des Geräts während der Prüfung in Quarantäne: invalid_json",
            None,
        ),
        ("who_knows", "a reason from a newer version", "Nicht bestanden (who_knows).", None),
    ],
)
def test_check_reasons_by_code(code: str, message: str, german: str, english: str | None) -> None:
    assert Localizer("de").reason(code, message) == german
    assert Localizer("en").reason(code, message) == (english or message)


# ---------------------------------------------------------------- the pages, walked in German

pytestmark_db = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]


@pytest.mark.registry
@pytest.mark.integration
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_import_message_has_its_german(session: Session) -> None:
    gateway = f.gateway_row(session)
    revoked = f.gateway_row(session)
    revoked.status = GatewayStatus.revoked
    commit(session)
    taken = f.device(session, gateway.id, meter_number="TAKEN-1")
    building = f.building(session)
    rows = [
        f"{gateway.name},ok1,generic-json,M1,,,,",
        f"{gateway.name},a/b,bogus,,,,,",
        "nogw,x1,generic-json,,,,,",
        f"{revoked.name},x2,generic-json,,,,,",
        f"{gateway.name},{taken.native_id},generic-json,TAKEN-1,,,,",
        f"{gateway.name},dup,generic-json,M9,,,,",
        f"{gateway.name},dup,generic-json,M9,,,,",
        f"{gateway.name},x3,generic-json,,=cmd,,,",
        f"{gateway.name},x4,generic-json,,,,Nowhere,",
        f"{gateway.name},x5,generic-json,,,,{building.name},WE 0",
        f"{gateway.name},x6,generic-json,,,,,WE 0",
        f"{gateway.name},,,,,,,",
        f"{gateway.name},x7,generic-json,{'9' * 70},,,,",
        f"{gateway.name},x8,generic-json,,,,,,extra",
    ]
    header = "gateway,native_id,profile,meter_number,location,notes,building,household"
    report = import_devices(
        session, "\n".join([header, *rows]).encode(), profiles={"generic-json"}, dry_run=True
    )
    reasons = [reason for row in report.rows for _field, reason in row.errors]
    assert len(reasons) >= 12
    untranslated = [reason for reason in reasons if field_message_de(reason) == GENERIC_DE]
    assert not untranslated
    files = [
        b"\xff\xfe",
        b"",
        b"gateway,native_id\n",
        b"gateway,native_id,profile,bogus\n",
        b"gateway,gateway,native_id,profile\n",
    ]
    for data in files:
        for problem in import_devices(session, data, profiles=set(), dry_run=True).file_errors:
            assert field_message_de(problem) != GENERIC_DE, problem


@pytest.mark.registry
@pytest.mark.integration
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_german_pages_are_entirely_german(api: TestClient, session: Session) -> None:
    operator = f.user(session, Role.operator)
    household = f.household(session)
    gateway = f.gateway_row(session, household.building_id)
    heard = dt.datetime(2026, 11, 29, 13, 5, tzinfo=dt.UTC)
    gateway.last_seen = heard
    gateway.credentials_issued_at = heard
    device = f.device(session, gateway.id, meter_number=f"1ESY{uuid.uuid4().hex[:6]}")
    device.last_seen = heard
    silent = f.device(session, gateway.id)
    commit(session)
    runs: RunManager = api.app.state.runs  # type: ignore[attr-defined]
    decoder = runs.commissioner.decoder()
    target = rpt.Target(device.id, gateway.name, device.native_id, device.profile_id)
    now_ns = time.time_ns()
    payload = (
        b'{"ts": 1000, "power_w": 523.5, "voltage_l1_v": 2301, "rssi_dbm": -61}'  # clock 1970, implausible
    )
    hit = rpt.QuarantineHit(
        7, f"lab/{gateway.name}/{device.native_id}/state", "invalid_json", "Expecting value", now_ns
    )
    heard_report = rpt.evaluate(
        decoder, target, rpt.Observed(hit.topic, payload, now_ns), hits=[hit], started_ns=now_ns - 10**9
    )
    topics = [f"lab/{gateway.name}/{silent.native_id}/state"]
    silent_report = rpt.no_message(5, hits=[], started_ns=now_ns, topics=topics)
    run_ids = []
    for checked, report in ((device, heard_report), (silent, silent_report)):
        run_ids.append(uuid.uuid4().hex)
        record_check(
            session,
            device_id=checked.id,
            run_id=run_ids[-1],
            started_by_id=operator.id,
            started_by=operator.username,
            started_at=heard,
            finished_at=heard,
            report=report,
        )

    api.cookies.set("reallabor_lang", "de")
    login_page = api.get("/tech/login").text
    assert_german(login_page, "login")
    failed = api.post(
        "/tech/login", data={"username": "x", "password": "y", "csrf_token": form_token(login_page)}
    )
    assert_german(failed.text, "failed login")
    token = login(api, operator, lang="de")

    pages = {
        "home": api.get("/tech"),
        "search": api.get(f"/tech/search?q={device.meter_number}"),
        "search none": api.get("/tech/search?q=nothing-like-it"),
        "fleet": api.get("/tech/fleet"),
        "gateway new": api.get("/tech/gateways/new"),
        "gateway": api.get(f"/tech/gateways/{gateway.id}"),
        "gateway revoke": api.get(f"/tech/gateways/{gateway.id}/revoke"),
        "device new": api.get("/tech/devices/new"),
        "device": api.get(f"/tech/devices/{device.id}"),
        "device silent": api.get(f"/tech/devices/{silent.id}"),
        "run heard": api.get(f"/tech/runs/{run_ids[0]}"),
        "run silent": api.get(f"/tech/runs/{run_ids[1]}"),
        "import": api.get("/tech/import"),
        "not found": api.get("/tech/devices/999999"),
        "gateway bad name": api.post("/tech/gateways", data={"name": "a/b", "csrf_token": token}),
        "gateway taken": api.post("/tech/gateways", data={"name": gateway.name, "csrf_token": token}),
        "gateway formula": api.post(
            "/tech/gateways", data={"name": "ok1", "notes": "=1+1", "csrf_token": token}
        ),
        "csrf refused": api.post("/tech/devices", data={"native_id": "x"}),
    }
    device_errors = [
        {"gateway_id": str(gateway.id), "native_id": "a/+", "profile_id": "bogus", "location": "=x"},
        {
            "gateway_id": str(gateway.id),
            "native_id": device.native_id,
            "profile_id": "generic-json",
            "meter_number": device.meter_number or "",
        },
        {"gateway_id": "999999", "native_id": "n1", "profile_id": "generic-json", "household_id": "999999"},
        {"native_id": "", "profile_id": ""},
        {
            "gateway_id": str(gateway.id),
            "native_id": "x" * 129,
            "profile_id": "generic-json",
            "location": "a\tb",
        },
    ]
    for number, form in enumerate(device_errors):
        pages[f"device errors {number}"] = api.post("/tech/devices", data={**form, "csrf_token": token})
        answer = api.post("/tech/devices/validate", json=form)
        assert answer.status_code == 422
        for item in answer.json()["detail"]:
            assert item["msg"] != GENERIC_DE, item
            assert_german(item["msg"], f"validate {number} {item['loc']}")
    csv = f"gateway,native_id,profile\n{gateway.name},a//b,bogus\nnogw,x,generic-json\n".encode()
    pages["import errors"] = api.post(
        "/tech/import", data={"csrf_token": token}, files={"file": ("d.csv", csv, "text/csv")}
    )
    pages["import file error"] = api.post(
        "/tech/import", data={"csrf_token": token}, files={"file": ("d.csv", b"\xff\xfe", "text/csv")}
    )
    for where, response in pages.items():
        assert response.headers["content-type"].startswith("text/html"), where
        assert_german(response.text, where)

    assert "29.11.2026, 14:05" in pages["device"].text  # last seen, in Berlin's winter time
    assert "29.11.2026, 14:05" in pages["gateway"].text
    assert "Allgemeiner JSON-Zähler (generic-json)" in pages["device new"].text
    assert "Keine Nachricht in 5 s empfangen." in pages["run silent"].text
    assert '<td class="num">523,5</td>' in pages["run heard"].text  # a decimal comma
    assert "Die Nutzdaten sind kein lesbares JSON." in pages["run heard"].text  # the quarantine entry
    assert '<span class="badge active">aktiv</span>' in pages["gateway"].text
    assert "Pflichtfeld." in pages["device errors 3"].text
    assert "Kein + oder # (MQTT-Platzhalter)." in pages["device errors 0"].text
    assert "Darf nicht mit „=“ beginnen" in pages["device errors 0"].text
    assert f"hat schon ein Gerät „{device.native_id}“." in pages["device errors 1"].text
    assert "Kein Gateway mit der ID 999999." in pages["device errors 2"].text
    assert "Ein Gateway mit diesem Namen gibt es schon." in pages["gateway taken"].text

    api.cookies.set("reallabor_lang", "en")
    english = api.get(f"/tech/devices/{device.id}").text
    assert "29 Nov 2026, 14:05 CET" in english
    assert "No message received in 5 s." in api.get(f"/tech/runs/{run_ids[1]}").text
    assert (
        "no &#39;+&#39; or &#39;#&#39; (MQTT wildcards)"
        in api.post("/tech/devices", data={**device_errors[0], "csrf_token": token}).text
    )
    session.expire_all()
    assert session.get(Gateway, gateway.id) is not None
