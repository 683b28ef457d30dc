"""The export bounds (ingest/api/export_limit.py) against the real app served by uvicorn, the real
registry and InfluxDB: 40 concurrent exports by one resident, one at a time per user, a few per hour,
two in the process; the pages answer with a page and Retry-After, the API with JSON."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.api.export_limit import (
    OPERATOR_PER_HOUR,
    RESIDENT_PER_HOUR,
    ExportLimiter,
    export_limiter,
    leased,
)
from ingest.config import Settings
from ingest.dynsec import DynsecAdmin
from ingest.registry.models import Role, User
from tests.browser.conftest import serve
from tests.helpers import Target
from tests.registry import factories as f
from tests.registry.privacy_world import Quarter, build

pytestmark = pytest.mark.registry
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def quarter(session: Session, target: Target) -> Quarter:
    return build(session, target.influx_url, target.database)


@pytest.fixture
def app(engine: Engine, broker_admin: DynsecAdmin, api_settings: Settings, target: Target) -> FastAPI:
    influx = api_settings.influx.model_copy(update={"url": target.influx_url, "database": target.database})
    return create_app(
        api_settings.model_copy(update={"influx": influx}), broker=broker_admin, engine=engine, migrate=False
    )


@pytest.fixture
def url(app: FastAPI) -> Iterator[str]:
    with serve(app) as base:
        yield base


def cookies(app: FastAPI, user: User) -> dict[str, str]:
    signer = app.state.signer
    return {signer.cookie_name: signer.issue(user)}


@SQLITE
def test_forty_concurrent_exports_by_one_resident(app: FastAPI, url: str, quarter: Quarter) -> None:
    resident = quarter.homes[0].residents[0]
    jar = cookies(app, resident)
    answers: list[httpx.Response] = []
    start = threading.Barrier(40)

    def one(path: str) -> None:
        with httpx.Client(base_url=url, cookies=jar, timeout=60) as client:
            start.wait()
            answers.append(client.get(path))

    threads = [
        threading.Thread(target=one, args=("/api/v1/me/export" if n % 2 else "/portal/export",))
        for n in range(40)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    codes = sorted(answer.status_code for answer in answers)
    assert len(codes) == 40
    granted = [a for a in answers if a.status_code == 200]
    assert 1 <= len(granted) <= RESIDENT_PER_HOUR, codes
    assert all(a.headers["content-type"] == "application/zip" for a in granted)
    refused = [a for a in answers if a.status_code != 200]
    assert {a.status_code for a in refused} == {429}, codes
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    assert export_limiter(app).running == 0  # every granted stream gave its lease back


@SQLITE
def test_one_at_a_time_then_the_hourly_rate(app: FastAPI, url: str, quarter: Quarter) -> None:
    resident = quarter.homes[0].residents[0]
    limiter = export_limiter(app)
    lease = limiter.acquire(resident.id, per_hour=RESIDENT_PER_HOUR)  # an export of theirs still streams
    with httpx.Client(base_url=url, cookies=cookies(app, resident), timeout=60) as client:
        api = client.get("/api/v1/me/export")
        assert api.status_code == 429
        assert api.headers["Retry-After"] == "30"
        assert "still running" in api.json()["detail"]
        page = client.get("/portal/export", headers={"Accept-Language": "de"})
        assert page.status_code == 429
        assert page.headers["Retry-After"] == "30"
        assert page.headers["content-type"].startswith("text/html")
        assert "Ihr Download läuft noch" in page.text
        lease.release()
        for _ in range(RESIDENT_PER_HOUR - 1):  # the held one counted as the first
            assert client.get("/portal/export").status_code == 200
        over = client.get("/api/v1/me/export")
        assert over.status_code == 429
        assert 3500 < int(over.headers["Retry-After"]) <= 3600
        assert "too many exports in the last hour" in over.json()["detail"]
        page = client.get("/portal/export", headers={"Accept-Language": "en"})
        assert page.status_code == 429
        assert f"already started {RESIDENT_PER_HOUR} downloads" in page.text
        assert "60 minutes" in page.text
    # another resident is not affected
    other = quarter.homes[1].residents[0]
    with httpx.Client(base_url=url, cookies=cookies(app, other), timeout=60) as client:
        assert client.get("/api/v1/me/export").status_code == 200
    assert limiter.running == 0


@SQLITE
def test_process_bound_and_operators(app: FastAPI, url: str, session: Session, quarter: Quarter) -> None:
    operator = f.user(session, Role.operator)
    home = quarter.homes[0]
    limiter = export_limiter(app)
    busy = [limiter.acquire(10_000 + n, per_hour=1) for n in range(limiter.slots)]  # two others stream
    with httpx.Client(base_url=url, cookies=cookies(app, operator), timeout=60) as client:
        api = client.get(f"/api/v1/households/{home.id}/export")
        assert api.status_code == 503
        assert api.headers["Retry-After"] == "30"
        page = client.get(f"/ops/households/{home.id}/export", headers={"Accept-Language": "de"})
        assert page.status_code == 503
        assert "Gerade laufen zu viele Downloads" in page.text
        assert page.headers["Retry-After"] == "30"
        for lease in busy:
            lease.release()
        for one in quarter.homes:  # operators export one household after another
            assert client.get(f"/ops/households/{one.id}/export").status_code == 200
            assert client.get(f"/api/v1/households/{one.id}/export").status_code == 200
    with httpx.Client(base_url=url, cookies=cookies(app, home.residents[1]), timeout=60) as client:
        assert client.get("/portal/export").status_code == 200  # a refusal did not count
    assert OPERATOR_PER_HOUR > RESIDENT_PER_HOUR
    assert limiter.running == 0


def test_a_stream_dropped_unread_gives_its_lease_back() -> None:
    limiter = ExportLimiter(slots=1)
    chunks = leased(iter([b"x"]), limiter.acquire(1, per_hour=5))
    assert limiter.running == 1
    del chunks  # never started (the client left before the first byte): no finally runs
    gc.collect()
    assert limiter.running == 0
    read = leased(iter([b"a", b"b"]), limiter.acquire(1, per_hour=5))
    assert b"".join(read) == b"ab"
    assert limiter.running == 0  # ended: released once, the finalizer does nothing more
    del read
    gc.collect()
    assert limiter.running == 0
