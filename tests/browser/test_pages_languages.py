"""Every technician page at phone size (390x844), in German and in English: no page wider than the
phone, every page in its language. Screenshots go to the test's tmp dir (and to
``$REALLABOR_SCREENSHOTS`` when set, to look at them)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from ingest.commissioning import report as rpt
from ingest.decode import MessageDecoder
from ingest.dynsec import DynsecAdmin
from ingest.profiles.loader import load_profiles
from ingest.registry.commissioning import record_check
from ingest.registry.db import commit, session_factory
from ingest.registry.fleet import create_gateway
from ingest.registry.models import Role
from tests.browser.screens import shot
from tests.registry import factories as f

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(180)]
REPO = Path(__file__).resolve().parents[2]


def _log_in(phone: Page, server: str, username: str) -> None:
    phone.goto(f"{server}/tech/login")
    phone.locator("#username").fill(username)
    phone.locator("#password").fill(f.PASSWORD)
    phone.locator("form.stack button[type=submit]").click()
    phone.wait_for_url(f"{server}/tech")


def test_every_page_in_both_languages(
    server: str, phone: Page, registry_engine: Engine, broker_admin: DynsecAdmin, tmp_path: Path, unique: str
) -> None:
    heard = dt.datetime(2026, 11, 29, 13, 5, tzinfo=dt.UTC)
    with session_factory(registry_engine)() as session:
        operator = f.user(session, Role.operator)
        household = f.household(session)
        resident = f.user(session, Role.resident, household.id)
        gateway, _password = create_gateway(
            session, broker_admin, name=f"s{unique}", building_id=household.building_id
        )
        gateway.last_seen = heard
        device = f.device(session, gateway.id, meter_number=f"1ESY{unique}")
        device.last_seen = heard
        device.location = "Keller, Zählerschrank 2"
        silent = f.device(session, gateway.id)
        commit(session)
        decoder = MessageDecoder(load_profiles(REPO / "device_profiles"))
        now_ns = time.time_ns()
        topic = f"lab/{gateway.name}/{device.native_id}/state"
        payload = b'{"ts": 1000, "power_w": 523.5, "voltage_l1_v": 2301, "rssi_dbm": -61}'
        hit = rpt.QuarantineHit(7, topic, "invalid_json", "Expecting value: line 1 column 1", now_ns)
        target = rpt.Target(device.id, gateway.name, device.native_id, device.profile_id)
        reports = {
            "run-heard": (
                device,
                rpt.evaluate(
                    decoder,
                    target,
                    rpt.Observed(topic, payload, now_ns),
                    hits=[hit],
                    started_ns=now_ns - 10**9,
                ),
            ),
            "run-silent": (
                silent,
                rpt.no_message(
                    5, hits=[], started_ns=now_ns, topics=[f"lab/{gateway.name}/{silent.native_id}/state"]
                ),
            ),
        }
        runs = {}
        for name, (checked, report) in reports.items():
            runs[name] = uuid.uuid4().hex
            record_check(
                session,
                device_id=checked.id,
                run_id=runs[name],
                started_by_id=operator.id,
                started_by=operator.username,
                started_at=heard,
                finished_at=heard,
                report=report,
            )
        operator_name, resident_name = operator.username, resident.username
        gateway_id, device_id = gateway.id, device.id

    _log_in(phone, server, operator_name)
    csv = tmp_path / "devices.csv"
    csv.write_text(f"gateway,native_id,profile\n{gateway.name},a/b,bogus\nnogw,x1,generic-json\n")
    for lang in ("de", "en"):
        phone.goto(f"{server}/tech/lang/{lang}?next=/tech")
        expect(phone.locator("html")).to_have_attribute("lang", lang)
        pages = {
            "home": "/tech",
            "search": f"/tech/search?q=1ESY{unique}",
            "fleet": "/tech/fleet",
            "gateway": f"/tech/gateways/{gateway_id}",
            "gateway-revoke": f"/tech/gateways/{gateway_id}/revoke",
            "device": f"/tech/devices/{device_id}",
            "run-heard": f"/tech/runs/{runs['run-heard']}",
            "run-silent": f"/tech/runs/{runs['run-silent']}",
            "not-found": "/tech/devices/999999",
        }
        for name, path in pages.items():
            phone.goto(server + path)
            shot(phone, tmp_path, f"{name}-{lang}")

        phone.goto(f"{server}/tech/gateways/new")
        phone.locator("#name").fill(gateway.name)
        phone.locator("#notes").fill("=1+1")
        phone.locator("form.stack button[type=submit]").click()
        expect(phone.locator("#form-error")).to_be_visible()
        shot(phone, tmp_path, f"gateway-new-errors-{lang}")

        phone.goto(f"{server}/tech/devices/new")
        phone.locator("#gateway_id").select_option(str(gateway_id))
        phone.locator("#native_id").fill("zaehler/1")
        phone.locator("#location").fill("=x")
        expect(phone.locator("#err-native_id")).not_to_be_empty()
        expect(phone.locator("#err-location")).not_to_be_empty()
        shot(phone, tmp_path, f"device-new-live-{lang}")
        phone.locator("#device-form button[type=submit]").click()
        expect(phone.locator(".notice.bad")).to_be_visible()
        shot(phone, tmp_path, f"device-new-errors-{lang}")

        phone.goto(f"{server}/tech/import")
        phone.locator("#file").set_input_files(str(csv))
        phone.locator("form.stack button[type=submit]").click()
        expect(phone.locator("#import-report")).to_be_visible()
        shot(phone, tmp_path, f"import-errors-{lang}")

        phone.goto(f"{server}/tech/gateways/{gateway_id}")
        phone.locator("#rotate").click()
        expect(phone.locator("#gateway-password")).to_be_visible()
        shot(phone, tmp_path, f"gateway-rotated-{lang}")

    expect(phone.get_by_text("New password for gateway")).to_be_visible()
    phone.goto(f"{server}/tech/gateways/{gateway_id}/revoke")
    phone.locator("#revoke-yes").click()
    expect(phone.locator(".badge.revoked")).to_have_text("revoked")
    shot(phone, tmp_path, "gateway-revoked-en")

    phone.locator("footer button").click()  # log out
    phone.goto(f"{server}/tech/login")
    phone.locator("#username").fill(resident_name)
    phone.locator("#password").fill(f.PASSWORD)
    phone.locator("form.stack button[type=submit]").click()
    expect(phone.locator("#forbidden")).to_contain_text("This area is for technicians and operators.")
    shot(phone, tmp_path, "resident-en")
    phone.goto(f"{server}/tech/lang/de?next=/tech")
    expect(phone.locator("#forbidden")).to_contain_text("Dieser Bereich ist für Technik und Betrieb.")
    shot(phone, tmp_path, "resident-de")
    phone.get_by_role("button", name="Abmelden").click()
    expect(phone.get_by_role("heading", name="Anmelden")).to_be_visible()
