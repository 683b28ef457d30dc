"""The API docs (Swagger UI at /api/docs) and the OpenAPI document: in production for operators only, and
always from the app's own origin, never from a CDN (a script from elsewhere would run in the operator's
session). In development both are open, for the developer and the schema tests."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.api.security import SESSION_COOKIE, TokenSigner
from ingest.config import Settings
from ingest.dynsec import DynsecAdmin
from tests.registry.world import ANONYMOUS, CALLERS, OPERATOR, World

pytestmark = [
    pytest.mark.registry,
    pytest.mark.integration,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
DOCS, OPENAPI = "/api/docs", "/api/v1/openapi.json"
_ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.fixture
def production(engine: Engine, broker_admin: DynsecAdmin, api_settings: Settings) -> Iterator[TestClient]:
    mqtt, ingest = api_settings.mqtt, api_settings.ingest
    settings = Settings(
        mode="production",
        api={"secret_key": secrets.token_urlsafe(32)},
        registry={"url": "sqlite://"},
        mqtt={"port": mqtt.port, "username": mqtt.username, "password": mqtt.password},
        influx={"password": secrets.token_urlsafe(16)},
        ingest={"profiles_dir": ingest.profiles_dir, "state_dir": ingest.state_dir},
    )
    with TestClient(create_app(settings, broker=broker_admin, engine=engine, migrate=False)) as client:
        yield client


def _assets(client: TestClient, html: str) -> list[str]:
    """Every script, style sheet and icon the page loads; each must come from the app itself."""
    urls = _ASSET.findall(html)
    assert urls, html
    for url in urls:
        assert re.match(r"/[^/]", url), f"{url} is not served by the app"
        assert client.get(url).status_code == 200, url
    return urls


def test_production_docs_for_operators_only(production: TestClient, session: Session) -> None:
    world = World.build(production, session, broker=None)  # type: ignore[arg-type]
    for caller in CALLERS:
        production.cookies.clear()
        headers = world.headers(caller)
        docs = production.get(DOCS, headers=headers)
        schema = production.get(OPENAPI, headers=headers)
        expected = 200 if caller == OPERATOR else 401 if caller == ANONYMOUS else 403
        assert (docs.status_code, schema.status_code) == (expected, expected), caller
    production.cookies.clear()
    user = world.users[OPERATOR]
    signer: TokenSigner = production.app.state.signer  # type: ignore[attr-defined]
    production.cookies.set(signer.cookie_name, signer.issue(user))  # a logged-in operator's browser
    assert signer.cookie_name == f"__Host-{SESSION_COOKIE}"
    page = production.get(DOCS)
    assert page.status_code == 200
    assert "swagger-ui" in " ".join(_assets(production, page.text))
    assert production.get(OPENAPI).json()["info"]["title"] == "Reallabor registry"


def test_development_docs_are_open_and_local(api: TestClient) -> None:
    api.cookies.clear()
    page = api.get(DOCS)
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    _assets(api, page.text)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert api.get(OPENAPI).json()["openapi"].startswith("3.")
