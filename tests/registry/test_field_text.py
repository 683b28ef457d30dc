"""One rule for the registry's free text, on every way in: the JSON API, the pages and the CSV import.

Refused: control characters (line breaks too, except in notes), NUL everywhere, lone surrogates, and a
leading ``= + - @`` that a spreadsheet would run as a formula once the registry is exported (a plain
number such as ``-1`` stays allowed). Surrounding spaces are trimmed, never other characters: ``gw1\\n``
is refused, not silently made ``gw1``.
"""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi.testclient import TestClient
from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.api.schemas_technician import RUN_ID
from ingest.dynsec import DynsecAdmin
from ingest.registry.device_import import import_devices
from ingest.registry.errors import InvalidField
from ingest.registry.fleet import GATEWAY_NAME, create_gateway
from ingest.registry.models import Device, Gateway
from ingest.registry.text import check_text
from tests.registry import factories as f
from tests.registry.world import OPERATOR, TECHNICIAN, World

pytestmark = [pytest.mark.registry, pytest.mark.integration]

V1 = "/api/v1"
PROFILES = {"generic-json"}

ACCEPTED = [
    ("WE 03", False, "WE 03"),
    ("  Keller, Zählerschrank 2 ", False, "Keller, Zählerschrank 2"),
    ("-1", False, "-1"),
    ("+3,5", False, "+3,5"),
    ("Tel. +49 441 12345", False, "Tel. +49 441 12345"),
    ("a=b@c", False, "a=b@c"),
    ("👩\u200d🔧 Technik", False, "👩\u200d🔧 Technik"),  # a zero-width joiner is no control character
    ("Zeile 1\nZeile 2\r\n\tZeile 3", True, "Zeile 1\nZeile 2\r\n\tZeile 3"),
]
REFUSED = [
    ("gw1\n", False, "control character"),
    ("a\tb", False, "control character"),
    ("a\x00b", False, "control character"),
    ("a\x85b", False, "control character"),  # C1: NEL
    ("a\u2028b", False, "control character"),  # line separator
    ("a\ud800b", False, "surrogate"),
    ('=HYPERLINK("http://x")', False, "formula"),
    ("+cmd|' /C calc'!A0", False, "formula"),
    ("-2+3", False, "formula"),
    ("@SUM(A1:A9)", False, "formula"),
    ("  =1+1", False, "formula"),  # trimmed first, as stored
    ("a\x00b", True, "control character"),
    ("\x1b[31mred", True, "control character"),
    ("- erste Zeile\n- zweite", True, "formula"),
]


@pytest.mark.parametrize(("value", "multiline", "stored"), ACCEPTED)
def test_accepted_text_is_trimmed_only(value: str, multiline: bool, stored: str) -> None:
    assert check_text(value, multiline=multiline) == stored


@pytest.mark.parametrize(("value", "multiline", "reason"), REFUSED)
def test_refused_text_says_why(value: str, multiline: bool, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_text(value, multiline=multiline)


# ---------------------------------------------------------------- the JSON API


@pytest.fixture
def world(api: TestClient, session: Session, broker_admin: DynsecAdmin) -> World:
    return World.build(api, session, broker_admin)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_json_api_refuses_formulas_and_control_characters(world: World, unique: str) -> None:
    h = world.headers(OPERATOR)
    client = world.client
    for body in (
        {"name": '=HYPERLINK("http://evil.example")'},
        {"name": f"Haus {unique}", "address": "@SUM(A1)"},
        {"name": f"Haus {unique}", "notes": "+cmd|' /C calc'!A0"},
        {"name": f"Haus {unique}\n"},
    ):
        response = client.post(f"{V1}/buildings", json=body, headers=h)
        assert response.status_code == 422, (body, response.text)
    ok = client.post(f"{V1}/buildings", json={"name": f"Haus {unique}", "address": "-1"}, headers=h)
    assert ok.status_code == 201, ok.text
    assert ok.json()["address"] == "-1"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_json_api_refuses_a_gateway_name_with_a_trailing_newline(
    world: World, session: Session, unique: str
) -> None:
    name = f"gw{unique}"
    response = world.client.post(
        f"{V1}/gateways", json={"name": f"{name}\n"}, headers=world.headers(TECHNICIAN)
    )
    assert response.status_code == 422, response.text
    assert session.scalar(select(Gateway).where(Gateway.name == name)) is None
    listed = world.client.get(
        f"{V1}/gateways", params={"name": f"{name}\n"}, headers=world.headers(TECHNICIAN)
    )
    assert listed.status_code == 422


# ---------------------------------------------------------------- the CSV import


def _csv(*rows: str) -> bytes:
    return "\n".join(["gateway,native_id,profile,meter_number,location,notes", *rows]).encode()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_csv_import_refuses_what_the_json_api_refuses(session: Session) -> None:
    gateway = f.gateway_row(session)
    before = session.scalar(select(func.count(Device.id)))
    data = _csv(
        f'{gateway.name},ok1,generic-json,,-1,"Zeile 1\nZeile 2"',  # a negative floor, multi-line notes
        f'{gateway.name},ok2,generic-json,,"Keller\nSchrank",',
        f"{gateway.name},ok3,generic-json,,,a\x00b",
        f"{gateway.name},ok4,generic-json,=1+2,,",
        f"{gateway.name},@x,generic-json,,,",
        f"{gateway.name},ok6,generic-json,,,+cmd|' /C calc'!A0",
        f'"{gateway.name}\n",ok7,generic-json,,,',
        f"{gateway.name},ok8,generic-json,,-Keller,",
    )
    report = import_devices(session, data, profiles=PROFILES)
    by_row = {r.row: dict(r.errors) for r in report.rows}
    assert by_row.pop(2) == {}
    assert {row: set(errors) for row, errors in by_row.items()} == {
        3: {"location"},
        4: {"notes"},
        5: {"meter_number"},
        6: {"native_id"},
        7: {"notes"},
        8: {"gateway"},
        9: {"location"},
    }, by_row
    assert "control character" in by_row[3]["location"]
    assert "formula" in by_row[5]["meter_number"]
    assert not report.written
    assert session.scalar(select(func.count(Device.id))) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_csv_import_writes_the_trimmed_values_the_json_api_would(session: Session) -> None:
    gateway = f.gateway_row(session)
    report = import_devices(
        session, _csv(f'{gateway.name}, sp1 ,generic-json, Z 9 ,-1,"a\n b "'), profiles=PROFILES
    )
    assert report.written, report.as_json()
    device = session.get(Device, report.rows[0].device_id)
    assert device is not None
    assert (device.native_id, device.meter_number, device.location, device.notes) == (
        "sp1",
        "Z 9",
        "-1",
        "a\n b",
    )


# ---------------------------------------------------------------- the pages


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_gateway_form_refuses_what_the_json_api_refuses(world: World, session: Session, unique: str) -> None:
    client = world.client
    user = world.users[TECHNICIAN]
    session.refresh(user)
    signer = client.app.state.signer  # type: ignore[attr-defined]
    token = signer.issue(user)
    client.cookies.set("reallabor_session", token)
    for form in (
        {"name": f"gw{unique}\n"},
        {"name": f"gw{unique}", "notes": "=1+1"},
        {"name": f"gw{unique}", "notes": "a\x00"},
    ):
        response = client.post(
            "/tech/gateways", data={**form, "csrf_token": signer.csrf_token(token)}, follow_redirects=False
        )
        assert response.status_code == 422, (form, response.status_code, response.text[:300])
    assert session.scalar(select(Gateway).where(Gateway.name == f"gw{unique}")) is None


# ---------------------------------------------------------------- "$" in name patterns


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_registry_refuses_a_gateway_name_with_a_trailing_newline(
    session: Session, broker_admin: DynsecAdmin, unique: str
) -> None:
    """The CLI's way in (``reallabor gateways add``): Python's ``$`` also matches before a final newline."""
    with pytest.raises(InvalidField, match="letters, digits"):
        create_gateway(session, broker_admin, name=f"gw{unique}\n")
    session.rollback()
    assert session.scalar(select(Gateway).where(Gateway.name.startswith(f"gw{unique}"))) is None


def test_pydantic_patterns_end_at_the_end_of_the_text() -> None:
    """pydantic compiles a ``pattern`` string with Rust's regex, whose ``$`` is the end of the text."""
    name = TypeAdapter(Annotated[str, Field(pattern=GATEWAY_NAME.pattern)])
    run_id = TypeAdapter(Annotated[str, Field(pattern=RUN_ID)])
    assert name.validate_python("gw1") == "gw1"
    assert run_id.validate_python("a" * 32) == "a" * 32
    for adapter, value in ((name, "gw1\n"), (run_id, "a" * 32 + "\n")):
        with pytest.raises(ValidationError):
            adapter.validate_python(value)
