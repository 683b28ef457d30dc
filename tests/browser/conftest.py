"""Browser fixtures: the API served by uvicorn on a free port (real HTTP for Chromium), a registry on
SQLite, the dynsec broker of the registry tests, and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright
from sqlalchemy import Engine

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.dynsec import DynsecAdmin, DynsecBootstrap
from ingest.localservices import LOOPBACK, Mosquitto, free_port
from ingest.registry.db import make_engine
from ingest.registry.migrate import upgrade
from tests.registry.conftest import bootstrap, broker_admin, dynsec_broker, unique

__all__ = ["bootstrap", "broker_admin", "dynsec_broker", "unique"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def server(
    registry_engine: Engine,
    broker_admin: DynsecAdmin,
    dynsec_broker: Mosquitto,
    bootstrap: DynsecBootstrap,
    tmp_path: Path,
) -> Iterator[str]:
    """The API and pages at http://127.0.0.1:<port>."""
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        mqtt={"port": dynsec_broker.port, "username": "ingester", "password": bootstrap.ingester_password},
        broker_admin={"password": bootstrap.admin_password},  # the commissioning check listens as admin
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": tmp_path / "state"},
    )
    app = create_app(settings, broker=broker_admin, engine=registry_engine, migrate=False)
    with serve(app) as url:
        yield url


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` by uvicorn in a thread on a free loopback port: its URL, until the block ends."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Per test: Playwright's sync API keeps an event loop running in this thread while it is open,
    which would break later tests that call ``asyncio.run`` (the CLI)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian's chromium is not installed (make deps installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=PHONE, locale="de-DE", device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
