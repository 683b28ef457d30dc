"""Swagger UI at /api/docs renders in Chromium from the app's own origin alone, under the pages'
Content-Security-Policy (no inline script), and its "Try it out" works in the session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from ingest.registry.db import session_factory
from ingest.registry.models import Role
from tests.registry import factories as f

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]


def test_swagger_ui_renders_from_local_assets(server: str, browser: Browser, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{server}/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Reallabor registry")
    page.get_by_text("/api/v1/health", exact=True).first.click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    expect(page.locator(".responses-wrapper .live-responses-table")).to_contain_text("200")
    answer = page.locator(".responses-wrapper .live-responses-table .microlight").first.inner_text()
    assert json.loads(answer) == {"status": "ok"}
    page.screenshot(path=str(tmp_path / "api-docs.png"), full_page=False)
    context.close()
    assert requested
    assert [url for url in requested if not url.startswith(f"{server}/")] == []
    assert not problems, problems


def test_try_it_out_in_an_operators_session_passes_the_csrf_check(
    server: str, browser: Browser, registry_engine: Engine
) -> None:
    """A body-less POST by cookie (logout) needs the CSRF header: the docs page sends it."""
    with session_factory(registry_engine)() as session:
        username = f.user(session, Role.operator).username
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{server}/tech/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f.PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server}/tech")
    page.goto(f"{server}/api/docs")
    page.get_by_text("/api/v1/auth/logout", exact=True).first.click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    live = page.locator(".responses-wrapper .live-responses-table tbody .response-col_status")
    expect(live.first).to_have_text("204")
    assert context.request.get(f"{server}/api/v1/me").status == 401  # the session really ended
    context.close()
