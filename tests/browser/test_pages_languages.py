"""Every technician page at phone size (390x844), in German and in English: no page wider than the
phone, every page in its language. Screenshots go to the test's tmp dir (and to
``$REALLABOR_SCREENSHOTS`` when set, to look at them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from ingest.dynsec import DynsecAdmin
from tests.browser.screens import shot
from tests.browser.tech_world import tech_world
from tests.registry import factories as f

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(180)]


def _log_in(phone: Page, server: str, username: str) -> None:
    phone.goto(f"{server}/tech/login")
    phone.locator("#username").fill(username)
    phone.locator("#password").fill(f.PASSWORD)
    phone.locator("form.stack button[type=submit]").click()
    phone.wait_for_url(f"{server}/tech")


def test_every_page_in_both_languages(
    server: str, phone: Page, registry_engine: Engine, broker_admin: DynsecAdmin, tmp_path: Path, unique: str
) -> None:
    world = tech_world(registry_engine, broker_admin, unique)
    gateway_id, gateway_name, resident_name = world.gateway_id, world.gateway_name, world.resident
    _log_in(phone, server, world.operator)
    csv = tmp_path / "devices.csv"
    csv.write_text(f"gateway,native_id,profile\n{gateway_name},a+b,bogus\nnogw,x1,generic-json\n")
    for lang in ("de", "en"):
        phone.goto(f"{server}/tech/lang/{lang}?next=/tech")
        expect(phone.locator("html")).to_have_attribute("lang", lang)
        pages = world.pages()
        for name, path in pages.items():
            phone.goto(server + path)
            shot(phone, tmp_path, f"{name}-{lang}")

        phone.goto(f"{server}/tech/gateways/new")
        phone.locator("#name").fill(gateway_name)
        phone.locator("#notes").fill("=1+1")
        phone.locator("form.stack button[type=submit]").click()
        expect(phone.locator("#form-error")).to_be_visible()
        shot(phone, tmp_path, f"gateway-new-errors-{lang}")

        phone.goto(f"{server}/tech/devices/new")
        phone.locator("#gateway_id").select_option(str(gateway_id))
        phone.locator("#native_id").fill("zaehler+1")
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
    phone.wait_for_url(f"{server}/portal")  # a resident lands on the portal; the staff pages say no
    phone.goto(f"{server}/tech")
    expect(phone.locator("#forbidden")).to_contain_text("This area is for technicians and operators.")
    shot(phone, tmp_path, "resident-en")
    phone.goto(f"{server}/tech/lang/de?next=/tech")
    expect(phone.locator("#forbidden")).to_contain_text("Dieser Bereich ist für Technik und Betrieb.")
    shot(phone, tmp_path, "resident-de")
    phone.get_by_role("button", name="Abmelden").click()
    expect(phone.get_by_role("heading", name="Anmelden")).to_be_visible()
