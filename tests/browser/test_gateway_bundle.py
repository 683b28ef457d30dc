"""A technician on a phone downloads a gateway's installation bundle from its page (German, then English):
the browser saves the .tar.gz, whose gateway.yaml holds the gateway's new password. Screenshots at 390 px
(``$REALLABOR_SCREENSHOTS`` keeps them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Engine

from ingest.dynsec import DynsecAdmin
from ingest.gateway.config import load_gateway_config
from ingest.localservices import Mosquitto
from ingest.registry.db import session_factory
from ingest.registry.fleet import create_gateway, gateway_client_id
from ingest.registry.models import Role
from tests.browser.screens import shot
from tests.gateway.bundle_world import unpack
from tests.registry import factories as f
from tests.registry.mqtt_client import connect_result

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]


def test_technician_downloads_the_bundle_on_a_phone(
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
        gateway, old = create_gateway(session, broker_admin, name=f"haus-{unique}")
        username, gateway_id, name = technician.username, gateway.id, gateway.name

    phone.goto(f"{server}/tech/gateways/{gateway_id}")
    phone.get_by_label("Benutzername").fill(username)
    phone.get_by_label("Passwort").fill(f.PASSWORD)
    phone.get_by_role("button", name="Anmelden").click()
    button = phone.get_by_role("button", name="Installationspaket herunterladen")
    expect(button).to_be_enabled()
    expect(button).to_have_accessible_description(phone.locator("#bundle-help").inner_text())
    shot(phone, tmp_path, "gateway-bundle-de")

    confirm = phone.get_by_label("Das Gateway sendet nicht mehr, bis das neue Paket auf ihm installiert ist.")
    button.click()  # the browser itself asks for the box first (required): nothing rotated
    expect(confirm).not_to_be_checked()
    confirm.check()
    with phone.expect_download() as download_info:
        button.click()
    download = download_info.value
    assert download.suggested_filename == f"reallabor-gateway-{name}.tar.gz"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    unpack(saved.read_bytes(), tmp_path / "bundle")
    config = load_gateway_config(tmp_path / "bundle" / f"reallabor-gateway-{name}" / "gateway.yaml")
    new = config.central.password.get_secret_value()
    account = {"client_id": gateway_client_id(name)}
    assert connect_result(dynsec_broker.port, f"gw-{name}", new, **account) == "Success"
    assert connect_result(dynsec_broker.port, f"gw-{name}", old, **account) == "Not authorized"
    expect(phone.get_by_role("heading", name=f"Gateway {name}")).to_be_visible()  # still on its page

    phone.get_by_role("link", name="English").click()
    expect(phone.get_by_role("button", name="Download installation bundle")).to_be_enabled()
    shot(phone, tmp_path, "gateway-bundle-en")
