"""An operator deletes a household in headless Chromium at phone size, German and English: the list,
the confirmation page (what would go, the name typed again), a wrong name refused, the right one
deleting, the record page. Screenshots of each (``$REALLABOR_SCREENSHOTS`` keeps them)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.registry.db import session_factory
from ingest.registry.models import Role
from tests.browser.conftest import REPO, serve
from tests.browser.screens import shot
from tests.helpers import Target
from tests.registry import factories as f
from tests.registry.privacy_world import Quarter, build

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def session(registry_engine: Engine) -> Iterator[Session]:
    with session_factory(registry_engine)() as session:
        yield session


@pytest.fixture
def quarter(session: Session, target: Target) -> Quarter:
    return build(session, target.influx_url, target.database)


@pytest.fixture
def privacy_server(registry_engine: Engine, target: Target, tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        influx={"url": target.influx_url, "database": target.database},
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": tmp_path / "state"},
    )
    with serve(create_app(settings, engine=registry_engine, migrate=False)) as url:
        yield url


def _log_in(page: Page, server: str, username: str, target: str) -> None:
    page.goto(f"{server}{target}")  # not logged in: the login, and back after it
    page.locator("#username").fill(username)
    page.locator("#password").fill(f.PASSWORD)
    page.locator("form.stack button[type=submit]").click()
    page.wait_for_url(f"{server}{target}")


def test_operator_deletes_a_household_at_phone_size(
    phone: Page, privacy_server: str, session: Session, quarter: Quarter, tmp_path: Path
) -> None:
    gone, same_name, _ = quarter.homes
    operator = f.user(session, Role.operator)
    confirm = f"/ops/households/{gone.id}/delete"
    _log_in(phone, privacy_server, operator.username, "/ops/households")
    assert phone.locator("html").get_attribute("lang") == "de"
    assert phone.locator(f"#household-{gone.id}").is_visible()
    shot(phone, tmp_path, "privacy-households-de")

    phone.goto(f"{privacy_server}{confirm}")
    assert phone.locator("h1").inner_text() == "Haushalt „WE 1“ löschen"
    plan = phone.locator("#plan").inner_text()
    for username in gone.usernames:
        assert username in plan
    assert phone.locator("label[for=confirm_name]").inner_text().endswith("WE 1")
    shot(phone, tmp_path, "privacy-delete-de")

    phone.locator("#reason").fill("Auszug")
    phone.locator("#confirm_name").fill("WE 2")
    phone.locator("#delete-yes").click()
    assert phone.locator("#problem").is_visible()
    assert phone.locator("#confirm_name").get_attribute("aria-invalid") == "true"
    shot(phone, tmp_path, "privacy-delete-mismatch-de")
    assert quarter.counts()[gone.id]  # nothing deleted

    phone.locator("nav.langs a[hreflang=en]").click()
    phone.wait_for_url(f"{privacy_server}{confirm}")
    assert phone.locator("html").get_attribute("lang") == "en"
    assert phone.locator("h1").inner_text() == "Delete household “WE 1”"
    shot(phone, tmp_path, "privacy-delete-en")

    phone.locator("#reason").fill("move-out")
    phone.locator("#confirm_name").fill("WE 1")
    phone.locator("#delete-yes").click()
    phone.wait_for_url(f"{privacy_server}/ops/deletions?done=*")
    assert "Deleted. Record D-" in phone.locator("#finished").inner_text()
    shot(phone, tmp_path, "privacy-deletions-en")
    assert quarter.counts()[gone.id] == {}
    assert quarter.counts()[same_name.id]

    phone.locator("nav.langs a[hreflang=de]").click()
    assert "Gelöscht. Protokoll D-" in phone.locator("#finished").inner_text()
    shot(phone, tmp_path, "privacy-deletions-de")
