"""The discovery page on a phone with two ingester instances: the devices and topics of both quarantines
on one list, a device heard by both as one card with its messages summed (German and English,
screenshots to look at with ``REALLABOR_SCREENSHOTS=dir``)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine

from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry
from ingest.registry.db import commit, session_factory
from ingest.registry.models import Role
from tests.browser.conftest import PHONE
from tests.browser.screens import shot
from tests.registry import factories as f

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(120)]
LANGS = {"de": "de-DE", "en": "en-GB"}


def _data(gw: str, device: str, at_ns: int, power: float) -> QuarantineEntry:
    payload = orjson.dumps({"power_w": power})
    return QuarantineEntry(f"lab/{gw}/{device}/state", payload, at_ns, "unknown_device", "", None, gw, device)


def test_discovery_page_lists_every_instance(
    server: str, browser: Browser, registry_engine: Engine, tmp_path: Path
) -> None:
    with session_factory(registry_engine)() as session:
        building = f.building(session)
        f.household(session, building.id)
        gw = f.gateway_row(session, building.id).name
        technician = f.user(session, Role.technician).username
        commit(session)
    now, minute = time.time_ns(), 60 * 10**9
    by_instance = {
        0: [
            _data(gw, "zaehler-keller", now - 50 * minute, 210.0),
            _data(gw, "zaehler-keller", now - 40 * minute, 212.5),
        ],
        1: [
            _data(gw, "zaehler-keller", now - 5 * minute, 230.5),
            _data(gw, "steckdose-flur", now - 20 * minute, 12.0),
            QuarantineEntry(
                f"lab/{gw}/heizung/vorlauf", b"47.5", now - 30 * minute, "no_profile", "no profile"
            ),
        ],
    }
    for k, entries in by_instance.items():
        path = tmp_path / "state" / f"instance-{k}" / QUARANTINE_FILE
        path.parent.mkdir(parents=True)
        with Quarantine(path) as q:
            q.add_many(entries)

    for lang, locale in LANGS.items():
        context = browser.new_context(viewport=PHONE, locale=locale, device_scale_factor=2, is_mobile=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{server}/tech/login")
        page.locator("#username").fill(technician)
        page.locator("#password").fill(f.PASSWORD)
        page.locator("form.stack button[type=submit]").click()
        page.wait_for_url(f"{server}/tech")
        page.goto(f"{server}/tech/discovery")
        cards = page.locator("ul.cards:not(.topics) > li h3")
        expect(cards).to_have_count(2)
        expect(cards.first).to_have_text("zaehler-keller")  # heard last (instance 1), first of both
        first = page.locator("ul.cards:not(.topics) > li").first
        expect(first).to_contain_text("230")  # its newest value
        expect(first.locator("dl.facts dd").nth(3)).to_have_text("3")  # messages: 2 at instance 0, 1 at 1
        expect(page.locator("summary .counts")).to_have_text(
            "2 Geräte · 1 Topic" if lang == "de" else "2 devices · 1 topic"
        )
        expect(page.locator("ul.cards.topics")).to_contain_text("heizung/vorlauf")
        shot(page, tmp_path, f"discovery-instances-{lang}")
        context.close()
