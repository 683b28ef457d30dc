"""The technician page's "download installation bundle" button: a POST with the CSRF token answers the
bundle as an attachment (no-store) with a new password inside, which logs in over TLS while the old one no
longer does; only with the box ticked that says the gateway stops sending until the new bundle is installed
(nothing rotated without it); the audit line names who made it; refused for a revoked gateway and without
the token; German and English labels."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.dynsec import DynsecAdmin, DynsecBootstrap
from ingest.gateway.config import load_gateway_config
from ingest.localservices import LOOPBACK
from ingest.registry.db import make_engine, session_factory
from ingest.registry.fleet import create_gateway, revoke_gateway
from ingest.registry.migrate import upgrade
from ingest.registry.models import Role
from tests.gateway.bundle_world import CentralBroker, new_bootstrap, tls_login, unpack
from tests.registry import factories as f
from tests.registry.pages_client import login

pytestmark = [pytest.mark.registry, pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bootstrap() -> DynsecBootstrap:
    return new_bootstrap()


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory, bootstrap: DynsecBootstrap) -> Iterator[CentralBroker]:
    with CentralBroker(tmp_path_factory.mktemp("central"), bootstrap=bootstrap) as broker:
        yield broker


@pytest.fixture
def admin(central: CentralBroker, bootstrap: DynsecBootstrap) -> Iterator[DynsecAdmin]:
    with DynsecAdmin(
        host=LOOPBACK, port=central.port, username="admin", password=bootstrap.admin_password, timeout=5
    ) as broker:
        yield broker


@pytest.fixture
def session_and_app(
    tmp_path: Path, central: CentralBroker, admin: DynsecAdmin
) -> Iterator[tuple[Session, TestClient]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        registry={"url": "sqlite://"},
        mqtt={"port": central.port},
        broker_admin={"password": central.bootstrap.admin_password},
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": tmp_path / "state"},
        gateway_bundle={"brokers": [f"{LOOPBACK}:{central.tls_port}"], "ca_file": central.cert},
    )
    app = create_app(settings, broker=admin, engine=engine, migrate=False)
    with session_factory(engine)() as session, TestClient(app) as client:
        yield session, client
    engine.dispose()


def test_download_button_gives_the_bundle_with_a_new_password(
    tmp_path: Path,
    session_and_app: tuple[Session, TestClient],
    admin: DynsecAdmin,
    central: CentralBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    session, api = session_and_app
    name = f"seite-{f.tag()}"
    gateway, old = create_gateway(session, admin, name=name)
    technician = f.user(session, Role.technician)
    token = login(api, technician)
    page = api.get(f"/tech/gateways/{gateway.id}")
    assert "Installationspaket herunterladen" in page.text
    assert f'action="/tech/gateways/{gateway.id}/bundle"' in page.text
    assert 'id="bundle" aria-describedby="bundle-help">' in page.text  # enabled
    # the first step: a box to tick, required by the browser itself (no JavaScript) and by the server
    assert 'name="stops_sending" value="yes" id="bundle-confirm" required>' in page.text
    assert "Das Gateway sendet nicht mehr, bis das neue Paket auf ihm installiert ist." in page.text

    confirmed = {"csrf_token": token, "stops_sending": "yes"}
    assert api.post(f"/tech/gateways/{gateway.id}/bundle", data={}).status_code == 403  # no CSRF token
    unconfirmed = api.post(f"/tech/gateways/{gateway.id}/bundle", data={"csrf_token": token})
    assert unconfirmed.status_code == 422
    assert unconfirmed.headers["content-type"].startswith("text/html")
    assert "Bitte bestätigen Sie zuerst" in unconfirmed.text
    ca = central.cert
    account = {"username": f"gw-{name}", "client_id": f"gw-{name}"}
    assert tls_login(central.tls_port, ca, password=old, **account) == "Success"  # nothing rotated
    response = api.post(f"/tech/gateways/{gateway.id}/bundle", data=confirmed)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == "application/gzip"
    assert (
        response.headers["content-disposition"] == f'attachment; filename="reallabor-gateway-{name}.tar.gz"'
    )
    assert response.headers["cache-control"] == "no-store"
    unpack(response.content, tmp_path)
    config = load_gateway_config(tmp_path / f"reallabor-gateway-{name}" / "gateway.yaml")
    new = config.central.password.get_secret_value()
    ca = tmp_path / f"reallabor-gateway-{name}" / "ca.crt"
    assert tls_login(central.tls_port, ca, password=new, **account) == "Success"
    assert tls_login(central.tls_port, ca, password=old, **account) == "Not authorized"
    assert new not in api.get(f"/tech/gateways/{gateway.id}").text  # only inside the bundle
    assert new not in caplog.text  # never logged
    bundled = [
        r for r in caplog.records if r.name == "reallabor.audit" and "gateway.bundled" in r.getMessage()
    ]
    assert len(bundled) == 1
    assert bundled[0].audit["actor"] == technician.username  # type: ignore[attr-defined]
    assert f"actor={technician.username!r}" in bundled[0].getMessage()

    api.cookies.set("reallabor_lang", "en")
    english = api.get(f"/tech/gateways/{gateway.id}").text
    assert "Download installation bundle" in english
    assert "The gateway will stop sending until the new bundle is installed." in english
    assert (
        "Please confirm first"
        in api.post(f"/tech/gateways/{gateway.id}/bundle", data={"csrf_token": token}).text
    )
    session.refresh(gateway)
    revoke_gateway(session, admin, gateway)
    refused = api.post(f"/tech/gateways/{gateway.id}/bundle", data=confirmed)
    assert refused.status_code == 409
    assert "The gateway is revoked" in refused.text
    assert refused.headers["content-type"].startswith("text/html")


def test_a_bad_ca_file_leaves_the_password(
    tmp_path: Path, session_and_app: tuple[Session, TestClient], admin: DynsecAdmin, central: CentralBroker
) -> None:
    session, api = session_and_app
    gateway, password = create_gateway(session, admin, name=f"ca-{f.tag()}")
    token = login(api, f.user(session, Role.technician), lang="en")
    section, host, port = api.app.state.gateway_bundle  # type: ignore[attr-defined]
    broken = tmp_path / "not-a-ca.crt"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n")
    api.app.state.gateway_bundle = section.model_copy(update={"ca_file": broken}), host, port  # type: ignore[attr-defined]
    refused = api.post(
        f"/tech/gateways/{gateway.id}/bundle", data={"csrf_token": token, "stops_sending": "yes"}
    )
    assert refused.status_code == 503
    assert "The installation bundle could not be made" in refused.text
    login_args = {"username": f"gw-{gateway.name}", "client_id": f"gw-{gateway.name}"}
    assert tls_login(central.tls_port, central.cert, password=password, **login_args) == "Success"
