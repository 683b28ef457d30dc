"""A technician on a phone: logs in, registers a device (validated as they type), runs the commissioning
check while a simulated device publishes, and sees it pass. Screenshots go to the test's tmp dir (and to
``$REALLABOR_SCREENSHOTS`` when set, to look at them)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from ingest.dynsec import DynsecAdmin
from ingest.localservices import Mosquitto
from ingest.registry.db import session_factory
from ingest.registry.fleet import create_gateway, gateway_client_id
from ingest.registry.models import Role
from tests.browser.screens import shot
from tests.registry import factories as f
from tests.registry.publisher import Publisher

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]


def test_technician_registers_a_device_and_it_passes_commissioning(
    server: str,
    phone: Page,
    registry_engine: Engine,
    broker_admin: DynsecAdmin,
    dynsec_broker: Mosquitto,
    tmp_path: Path,
    unique: str,
) -> None:
    with session_factory(registry_engine)() as session:
        technician = f.user(session, Role.technician)
        household = f.household(session)
        gateway, password = create_gateway(session, broker_admin, name=f"b{unique}")
        household_label = f"{household.building.name} – {household.name}"
        username, gateway_name, broker_user = technician.username, gateway.name, gateway.broker_username

    phone.goto(f"{server}/tech/devices/new")  # not logged in: the login page, and back afterwards
    expect(phone.get_by_role("heading", name="Anmelden")).to_be_visible()
    phone.get_by_label("Benutzername").fill(username)
    phone.get_by_label("Passwort").fill(f.PASSWORD)
    phone.get_by_role("button", name="Anmelden").click()
    expect(phone.get_by_role("heading", name="Gerät anlegen")).to_be_visible()

    phone.get_by_label("Gateway").select_option(label=gateway_name)
    phone.get_by_label("Geräte-ID (wie im Topic)").fill("zaehler//1")
    # the page's own check as you type, in the page's language
    expect(phone.locator("#err-native_id")).to_have_text(
        "Topic-Ebenen, durch / getrennt, keine leer (kein / am Anfang, am Ende oder doppelt)."
    )
    expect(phone.get_by_label("Geräte-ID (wie im Topic)")).to_have_attribute("aria-invalid", "true")
    phone.get_by_label("Geräte-ID (wie im Topic)").fill("zaehler-1")
    expect(phone.locator("#err-native_id")).to_be_empty()
    phone.get_by_label("Geräteprofil").select_option(value="generic-json")
    phone.get_by_label("Zählernummer").fill(f"1ESY{unique}")
    phone.get_by_label("Haushalt").select_option(label=household_label)
    phone.get_by_label("Ort / Raum").fill("Keller, Zählerschrank 2")
    shot(phone, tmp_path, "1-device-form")
    phone.get_by_role("button", name="Speichern").click()
    expect(phone.get_by_role("heading", name="Gerät zaehler-1")).to_be_visible()

    def reading() -> bytes:
        body = {"ts": int(time.time() * 1000), "energy_import_wh": 1234567, "power_w": 523.5}
        return json.dumps(body | {"voltage_l1_v": 230.1, "rssi_dbm": -61}).encode()

    topic = f"lab/{gateway_name}/zaehler-1/state"
    with Publisher(
        dynsec_broker.port,
        username=broker_user,
        password=password,
        client_id=gateway_client_id(gateway_name),
        topic=topic,
        payload=reading,
    ):
        phone.get_by_role("button", name="Prüfung starten").click()
        expect(phone.get_by_role("heading", name="Inbetriebnahme-Prüfung: zaehler-1")).to_be_visible()
        expect(phone.locator(".verdict")).to_have_text("bestanden", timeout=30_000)
    expect(phone.locator("table.values")).to_contain_text("electricity.voltage_l1_v")
    expect(phone.locator("#report")).to_contain_text("rssi_dbm -61")
    shot(phone, tmp_path, "2-commissioning-passed")

    phone.get_by_role("link", name="English").click()
    expect(phone.locator(".verdict")).to_have_text("passed")
    phone.get_by_role("link", name="Fleet status").click()
    expect(phone.locator("#fleet")).to_contain_text("zaehler-1")
    shot(phone, tmp_path, "3-fleet-en")


def test_a_shelly_with_a_prefix_of_three_levels_is_registered_and_commissioned(
    server: str,
    phone: Page,
    registry_engine: Engine,
    broker_admin: DynsecAdmin,
    dynsec_broker: Mosquitto,
    tmp_path: Path,
    unique: str,
) -> None:
    """A Shelly Pro EM whose MQTT prefix the user set to ``home/floor1/pm``: its device id has levels."""
    with session_factory(registry_engine)() as session:
        technician = f.user(session, Role.technician)
        gateway, password = create_gateway(session, broker_admin, name=f"s{unique}")
        username, gateway_name, broker_user = technician.username, gateway.name, gateway.broker_username
        gateway_id = gateway.id

    phone.goto(f"{server}/tech/devices/new")
    phone.get_by_label("Benutzername").fill(username)
    phone.get_by_label("Passwort").fill(f.PASSWORD)
    phone.get_by_role("button", name="Anmelden").click()
    phone.get_by_label("Gateway").select_option(label=gateway_name)
    phone.get_by_label("Geräte-ID (wie im Topic)").fill("home/floor1/pm")
    phone.get_by_label("Geräteprofil").select_option(value="shelly-gen2")
    expect(phone.locator("#err-native_id")).to_be_empty()
    phone.get_by_role("button", name="Speichern").click()
    expect(phone.get_by_role("heading", name="Gerät home/floor1/pm")).to_be_visible()
    shot(phone, tmp_path, "shelly-levels-1-device")

    def notify() -> bytes:
        params = {"ts": time.time(), "em1:0": {"id": 0, "act_power": -412.7, "voltage": 229.8}}
        return json.dumps(
            {"src": "shellyproem50-08f9e0e67204", "method": "NotifyStatus", "params": params}
        ).encode()

    with Publisher(
        dynsec_broker.port,
        username=broker_user,
        password=password,
        client_id=gateway_client_id(gateway_name),
        topic=f"lab/{gateway_name}/home/floor1/pm/events/rpc",
        payload=notify,
    ):
        phone.get_by_role("button", name="Prüfung starten").click()
        expect(phone.get_by_role("heading", name="Inbetriebnahme-Prüfung: home/floor1/pm")).to_be_visible()
        expect(phone.locator(".verdict")).to_have_text("bestanden", timeout=30_000)
    expect(phone.locator("table.values")).to_contain_text("electricity.power_w")
    shot(phone, tmp_path, "shelly-levels-2-commissioning-passed")

    phone.goto(f"{server}/tech/gateways/{gateway_id}")  # the gateway's device list links to it by its id
    phone.get_by_role("link", name="home/floor1/pm").click()
    expect(phone.get_by_role("heading", name="Gerät home/floor1/pm")).to_be_visible()


def test_a_tossed_csrf_cookie_cannot_act_for_a_logged_in_technician(
    server: str, phone: Page, registry_engine: Engine
) -> None:
    """The review's cookie tossing, in a real browser: a sibling subdomain sets reallabor_csrf to a value
    of its own in the technician's browser, then has the browser post a form carrying the same value.
    The double submit took it and started a commissioning run; a token bound to the session does not."""
    with session_factory(registry_engine)() as session:
        technician = f.user(session, Role.technician)
        device = f.device(session)
        username, device_id = technician.username, device.id
    phone.goto(f"{server}/tech/login")
    phone.get_by_label("Benutzername").fill(username)
    phone.get_by_label("Passwort").fill(f.PASSWORD)
    phone.get_by_role("button", name="Anmelden").click()
    phone.wait_for_url(f"{server}/tech")
    tossed = "A" * 43
    phone.context.add_cookies([{"name": "reallabor_csrf", "value": tossed, "url": server}])
    phone.evaluate(
        """([action, token]) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = action;
            const field = document.createElement("input");
            field.name = "csrf_token";
            field.value = token;
            form.append(field);
            document.body.append(form);
            form.submit();
        }""",
        [f"/tech/devices/{device_id}/commission", tossed],
    )
    expect(phone.get_by_text("Das Formular ist abgelaufen")).to_be_visible()
    assert "/tech/runs/" not in phone.url  # no commissioning run was started
