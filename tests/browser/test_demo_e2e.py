"""The demo end to end, as a technician meets it: ``reallabor up`` starts, its banner's technician login
works on a phone, a new gateway and device are registered on the pages, a device publishes with the
credentials the page showed once, and the commissioning check passes — all against the demo's own
dynamic-security broker. The other roles' banner logins work too."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.screens import shot
from tests.demo_process import Demo, free_ports
from tests.registry.publisher import Publisher

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(240)]


def _login(page: Page, demo: Demo, role: str) -> None:
    username, password = demo.logins[role]
    page.goto(f"{demo.api_url}/tech/login")
    page.get_by_label("Benutzername").fill(username)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()


def test_technician_commissions_a_new_device_in_the_demo(phone: Page, tmp_path: Path) -> None:
    demo = Demo(tmp_path / "demo", free_ports(), households=5, interval_s=2).start()
    try:
        for role in ("operator", "resident"):  # the API takes every banner login
            with demo.login(role) as client:
                assert client.get("/api/v1/me").json()["role"] == role

        _login(phone, demo, "technician")
        phone.wait_for_url(f"{demo.api_url}/tech")
        phone.goto(f"{demo.api_url}/tech/gateways/new")
        expect(phone.get_by_role("button", name="Speichern")).to_be_enabled()  # the broker is managed
        phone.get_by_label("Gateway-Name (Topic-Ebene)").fill("gw-neu")
        phone.get_by_label("Gebäude").select_option(label="Haus 1")
        phone.get_by_role("button", name="Speichern").click()
        password = phone.locator("#gateway-password").inner_text()
        client_id = phone.locator("#gateway-client-id").inner_text()
        shot(phone, tmp_path, "demo-1-gateway-created")

        phone.goto(f"{demo.api_url}/tech/devices/new")
        phone.get_by_label("Gateway").select_option(label="gw-neu")
        phone.get_by_label("Geräte-ID (wie im Topic)").fill("waermepumpe-1")
        phone.get_by_label("Geräteprofil").select_option(value="generic-json")
        phone.get_by_label("Haushalt").select_option(label="Haus 1 – hh-001")
        phone.get_by_role("button", name="Speichern").click()
        expect(phone.get_by_role("heading", name="Gerät waermepumpe-1")).to_be_visible()

        def reading() -> bytes:
            return json.dumps(
                {"ts": int(time.time() * 1000), "power_w": 812.0, "energy_import_wh": 4_211_000}
            ).encode()

        with Publisher(
            demo.ports.mqtt,
            username="gw-gw-neu",
            password=password,
            client_id=client_id,
            topic="lab/gw-neu/waermepumpe-1/state",
            payload=reading,
        ):
            phone.get_by_role("button", name="Prüfung starten").click()
            expect(phone.locator(".verdict")).to_have_text("bestanden", timeout=60_000)
        shot(phone, tmp_path, "demo-2-commissioning-passed")
    finally:
        demo.stop()
