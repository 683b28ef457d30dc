"""The public quarter page's figures, cache, rate limit and open-data files, against a real InfluxDB of its
own (so that its query counter counts only this page's queries) with a seeded quarter
(tests/portal/quarter_seed.py).

- the figures equal what the seeded points give by docs/portal.md's definitions; indoor sensors never
  count; four households are withheld, five published (disclosure control);
- one refresh is ONE request to InfluxDB; 200 requests a second for 10 s to ``/quarter/data`` (rate limit
  set high on purpose) raise InfluxDB's ``queryReq`` by at most one per cache period;
- the per-client limit answers 429 with Retry-After;
- ``/opendata/`` serves the catalogue and the month files with their media types, nothing else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest.api.app import create_app
from ingest.api.pages import quarter_page
from ingest.api.rate_limit import ClientRateLimit, RateLimited
from ingest.config import InfluxSettings, Settings
from ingest.localservices import LOOPBACK, InfluxDB, free_port
from ingest.opendata.disclosure import Rule
from ingest.opendata.export import last_final_day
from ingest.opendata.public import (
    BatchReader,
    FiguresCache,
    PublicFigures,
    QuarterSource,
    Served,
    Unavailable,
)
from ingest.opendata.serve import resolve
from ingest.registry.db import make_engine
from ingest.registry.migrate import upgrade
from tests.portal.quarter_helpers import quarter_server
from tests.portal.quarter_seed import STREET, TZ, Quarter, seed, street_means

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
LOAD_RATE = 200  # requests a second
LOAD_SECONDS = 10.0
LOAD_CACHE_S = 2  # cache period of the load test: several refreshes within the 10 s
CONNECTIONS = 50


@pytest.fixture(scope="module")
def own_influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    """An InfluxDB for this module alone: its /debug/vars counters are this page's queries only."""
    with InfluxDB(tmp_path_factory.mktemp("quarter-influx")) as server:
        yield server


@pytest.fixture(scope="module")
def quarter(own_influx: InfluxDB) -> Iterator[Quarter]:
    seeded = seed(own_influx.url, now=dt.datetime.now(dt.UTC))
    yield seeded
    seeded.drop()


def query_requests(influx: InfluxDB) -> int:
    """InfluxDB's own count of HTTP /query requests (``httpd`` queryReq in /debug/vars)."""
    stats = httpx.get(f"{influx.url}/debug/vars", trust_env=False, timeout=10).json()
    return sum(
        int(v["values"]["queryReq"])
        for v in stats.values()
        if isinstance(v, dict) and v.get("name") == "httpd"
    )


def source(quarter: Quarter, *, now: dt.datetime | None = None, rule: Rule | None = None) -> QuarterSource:
    return QuarterSource(
        BatchReader(InfluxSettings(url=quarter.url, database=quarter.database)),
        TZ,
        rule=rule or Rule(),
        street_building=STREET,
        now=(lambda: now) if now is not None else None,
    )


def app_for(quarter: Quarter, tmp_path: Path, *, influx_url: str | None = None, **opendata: Any) -> FastAPI:
    """The API as configured: ``opendata`` settings (out_dir in tmp_path unless given) and InfluxDB."""
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    upgrade(engine)
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        influx={"url": influx_url or quarter.url, "database": quarter.database},
        ingest={"timezone": "Europe/Berlin"},
        opendata={"out_dir": tmp_path / "opendata"} | opendata,
    )
    return create_app(settings, engine=engine, migrate=False)


# ------------------------------------------------------------------------------------------- the figures


def test_figures_are_the_seeded_quarter_street_sensors_only_and_one_request_each(
    quarter: Quarter, own_influx: InfluxDB
) -> None:
    now = quarter.now
    before = query_requests(own_influx)
    figures = source(quarter, now=now).load()
    assert query_requests(own_influx) - before == 1  # today, the month's days and the street: one request

    day_start = quarter.midnight(quarter.today)
    expected_slots = sorted(
        {m for points in quarter.quarter_hours.values() for m in points if m >= day_start.astimezone(dt.UTC)}
    )
    running = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    ended = [start for start in expected_slots if start < running]  # every device reported after them
    assert [q.start for q in figures.today] == ended  # never the running quarter hour
    assert all(q.complete for q in figures.today)
    for shown in figures.today:
        truth = quarter.slot_totals(shown.start)
        for kind in ("import", "export", "pv"):
            assert shown.kwh[kind] == pytest.approx(truth[kind], abs=0.0006), (shown.start, kind)  # to the Wh
    if ended:
        assert figures.last is not None
        assert figures.last.start == ended[-1]
        # over the settled quarter hours only, rounded to the files' 0.1 % before it leaves the server
        assert figures.self_sufficiency_today == round(quarter.self_sufficiency(day_start, running), 3)
    else:  # the test runs in the first quarter hour of the day
        assert figures.last is None
        assert figures.self_sufficiency_today is None

    # the month: its final days only (the files' rule: export.final_at), rounded to 0.1 %
    month_start = quarter.midnight(quarter.today.replace(day=1))
    through = last_final_day(now, dt.timedelta(days=1), TZ)
    if through >= month_start.date():
        assert figures.month_through == through
        final_end = quarter.midnight(through + dt.timedelta(days=1))
        assert figures.self_sufficiency_month == round(quarter.self_sufficiency(month_start, final_end), 3)
    else:  # the 1st or 2nd: no final day of this month yet
        assert figures.month_through is None
        assert figures.self_sufficiency_month is None

    # the street: the street sensors' means only; the flat's room (21.5 °C) and the stairwell (15.5 °C) never
    means = {m: v for m, v in street_means(quarter, "temperature_c").items() if m >= day_start}
    assert list(figures.street.times) == list(means)
    assert list(figures.street.values["temperature_c"]) == pytest.approx(list(means.values()))
    assert figures.street.latest["temperature_c"][1] == pytest.approx(list(means.values())[-1])
    assert "co2_ppm" not in figures.street.latest  # only the room sensor measures CO2

    again = source(quarter, now=now)
    before = query_requests(own_influx)
    again.load()
    again.load()  # the month's settled days are kept: still one request per refresh
    assert query_requests(own_influx) - before == 2


def test_four_households_are_withheld_five_published(own_influx: InfluxDB) -> None:
    now = dt.datetime.now(dt.UTC)
    for households, published in ((4, False), (5, True)):
        few = seed(own_influx.url, now=now, households=households, pv=households, street_sensors=1)
        try:
            figures: PublicFigures = source(few, now=now).load()
        finally:
            few.drop()
        values = [value for q in figures.today for value in q.kwh.values()]
        assert values, "the seeded day has quarter hours"
        shown = quarter_page.build_view(figures, "de", TZ, cache_s=60)
        if published:
            assert all(value is not None for value in values)
            assert figures.self_sufficiency_today is not None
            assert not shown["withheld"]
        else:
            assert all(value is None for value in values)
            assert figures.self_sufficiency_today is None
            assert figures.self_sufficiency_month is None
            # the page says so in words, never a number
            assert shown["withheld"]
            assert shown["self_sufficiency"]["today_text"] == "nicht veröffentlicht"
            assert {row[1] for row in shown["today"]["rows"]} == {"nicht veröffentlicht"}
            assert all(value is None for series in shown["charts"][0]["series"] for value in series["values"])


def test_a_household_of_ninety_percent_withholds_the_import(own_influx: InfluxDB) -> None:
    """Six households; the first one's factor 100 against the others' 10.55 together: 90 % of the import.
    PV and export (five households, the first among them at 90 % too) go as well; the street stays."""
    now = dt.datetime.now(dt.UTC)
    giant = seed(own_influx.url, now=now, giant=100.0, street_sensors=1)
    try:
        figures = source(giant, now=now).load()
    finally:
        giant.drop()
    assert figures.today
    assert all(q.kwh["import"] is None for q in figures.today)
    assert figures.self_sufficiency_today is None
    assert figures.street.latest["temperature_c"][1] == pytest.approx(4.0, abs=3.0)


# ------------------------------------------------------------------------------------------- cache and limit


@pytest.fixture
def server_process(quarter: Quarter, tmp_path: Path) -> Iterator[str]:
    """The API in a process of its own (tests/portal/quarter_server.py), cache period LOAD_CACHE_S."""
    with quarter_server(quarter.url, quarter.database, cache_s=LOAD_CACHE_S, directory=tmp_path) as url:
        yield url


def test_one_query_per_cache_period_at_200_requests_a_second(
    quarter: Quarter, own_influx: InfluxDB, server_process: str
) -> None:
    """The page's data endpoint, asked LOAD_RATE times a second for LOAD_SECONDS over 50 connections (the
    rate limit set high on purpose): InfluxDB's query counter rises by at most one per cache period."""
    before = query_requests(own_influx)
    statuses, elapsed, latencies = asyncio.run(_load(server_process, "/quarter/data?lang=de"))
    after = query_requests(own_influx)
    sent = len(statuses)
    periods = math.ceil(elapsed / LOAD_CACHE_S)
    ordered = sorted(latencies)
    summary = {
        "requests": sent,
        "seconds": round(elapsed, 2),
        "rate_per_s": round(sent / elapsed, 1),
        "cache_s": LOAD_CACHE_S,
        "influx_query_requests": after - before,
        "cache_periods": periods,
        "status": {str(code): statuses.count(code) for code in sorted(set(statuses))},
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 1),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 1),
    }
    print(json.dumps(summary))
    assert statuses.count(200) == sent, summary
    # the load was offered at LOAD_RATE a second; a busy test machine may answer slower, never below half
    assert sent / elapsed >= LOAD_RATE / 2, summary
    assert 1 <= after - before <= periods + 1, summary  # at most one per cache period (+1: a period's edge)


async def _load(url: str, path: str) -> tuple[list[int], float, list[float]]:
    """LOAD_RATE requests a second for LOAD_SECONDS, each started on its schedule, over CONNECTIONS kept-alive
    HTTP/1.1 connections (a plain client: the load generator must not be the bottleneck)."""
    host, port = url.removeprefix("http://").split(":")
    total = int(LOAD_RATE * LOAD_SECONDS)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept-Language: de\r\n\r\n".encode()
    statuses: list[int] = []
    latencies: list[float] = []
    queue: asyncio.Queue[float] = asyncio.Queue()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while True:
                at = await queue.get()
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                started = time.monotonic()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                latencies.append(time.monotonic() - started)
                statuses.append(int(head.split(b" ", 2)[1]))
                queue.task_done()
        finally:
            writer.close()

    start = time.monotonic() + 0.2
    for i in range(total):
        queue.put_nowait(start + i / LOAD_RATE)
    workers = [asyncio.create_task(connection()) for _ in range(CONNECTIONS)]
    await queue.join()
    elapsed = time.monotonic() - start
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return statuses, elapsed, latencies


def test_influxdb_away_page_says_so_and_is_asked_once_per_period(quarter: Quarter, tmp_path: Path) -> None:
    app = app_for(quarter, tmp_path, influx_url=f"http://{LOOPBACK}:{free_port()}")  # nobody listens
    with TestClient(app) as client:
        for _ in range(5):
            page = client.get("/quarter", headers={"Accept-Language": "de"})
            assert page.status_code == 503
            assert "können gerade nicht gelesen werden" in page.text
            assert "Offene Daten zum Herunterladen" in page.text  # the files' section stays
        assert client.get("/quarter/data").status_code == 503
    assert app.state.quarter.figures.loads == 1  # not asked again within the cache period


def test_the_per_client_limit_answers_429_with_retry_after(quarter: Quarter, tmp_path: Path) -> None:
    app = app_for(quarter, tmp_path)
    with TestClient(app) as client:
        # the first figures in first: on a loaded machine the cold refresh can outlast a visitor's wait (503)
        for _ in range(10):
            if client.get("/quarter/data").status_code == 200:
                break
            time.sleep(1)
        app.state.public_rate_limit = ClientRateLimit(per_s=0.5, burst=3)
        assert [client.get("/quarter/data").status_code for _ in range(3)] == [200, 200, 200]
        refused = client.get("/quarter/data")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "2"  # one request more in 1 / 0.5 s
        assert "too many requests" in refused.json()["detail"]
        page = client.get("/quarter", headers={"Accept-Language": "de"})
        assert page.status_code == 429
        assert page.headers["Retry-After"] == "2"
        assert "Bitte in 2 Sekunden noch einmal versuchen" in page.text
        english = client.get("/quarter?lang=en", headers={"Accept-Language": "de"})
        assert "Please try again in 2 seconds" in english.text  # the language asked for
        assert client.get("/opendata/catalog.jsonld").status_code == 429


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limit = ClientRateLimit(per_s=2.0, burst=2, max_keys=2, clock=lambda: now[0])
    limit.take("a")
    limit.take("a")
    with pytest.raises(RateLimited) as refused:
        limit.take("a")
    assert refused.value.retry_after_s == 1
    limit.take("b")  # another address has its own bucket
    now[0] = 0.5  # one request's worth back
    limit.take("a")
    with pytest.raises(RateLimited):
        limit.take("a")
    limit.take("c")  # a third address: the least recently seen ("b") is forgotten
    assert len(limit) == 2


def test_cache_loads_once_for_concurrent_callers_and_not_again_after_a_failure() -> None:
    now = [0.0]
    calls: list[int] = []
    gate = threading.Event()

    def load() -> int:
        calls.append(1)
        gate.wait(5)
        if len(calls) == 2:
            raise RuntimeError("InfluxDB away")
        return len(calls)

    cache = FiguresCache(load, ttl_s=60, wait_s=5, clock=lambda: now[0])

    async def scenario() -> None:
        waiting = [asyncio.create_task(cache.get()) for _ in range(50)]
        await asyncio.sleep(0.2)
        gate.set()
        got = await asyncio.gather(*waiting)
        assert [(one.value, one.stale) for one in got] == [(1, False)] * 50
        assert cache.loads == 1

        now[0] = 61.0  # expired: the next load fails; the previous figures stay for another period, stale
        assert (await cache.get()) == Served(1, stale=True)
        assert cache.loads == 2
        assert (await cache.get()) == Served(1, stale=True)
        assert cache.loads == 2
        now[0] = 122.0
        assert (await cache.get()) == Served(3, stale=False)
        assert cache.loads == 3

        failing = FiguresCache(
            lambda: (_ for _ in ()).throw(RuntimeError("down")), ttl_s=60, clock=lambda: now[0]
        )
        for _ in range(3):
            with pytest.raises(Unavailable):
                await failing.get()
        assert failing.loads == 1

    asyncio.run(scenario())


# ------------------------------------------------------------------------------------------- /opendata/


def test_opendata_files_are_served_with_their_media_types_and_nothing_else(
    quarter: Quarter, tmp_path: Path
) -> None:
    out = tmp_path / "opendata"
    daily = out / "quarter-energy-daily"
    daily.mkdir(parents=True)
    (out / "catalog.jsonld").write_text('{"@context": {}}', encoding="utf-8")
    (daily / "quarter-energy-daily_2026-10.csv").write_text("start,households\n", encoding="utf-8")
    (daily / "quarter-energy-daily_2026-10.json").write_text('{"rows": []}', encoding="utf-8")
    (daily / "quarter-energy-daily_2026-11.csv").write_text("start,households\n", encoding="utf-8")
    secret = tmp_path / "secret.csv"
    secret.write_text("not public", encoding="utf-8")
    (daily / "quarter-energy-daily_2026-09.csv").symlink_to(secret)  # a link out of out_dir
    (daily / "notes.txt").write_text("x", encoding="utf-8")
    (daily / "quarter-energy-daily_2026-10.csv\n").write_text("a name with a newline", encoding="utf-8")
    app = app_for(quarter, tmp_path)
    with TestClient(app) as client:
        catalog = client.get("/opendata/catalog.jsonld")
        assert catalog.status_code == 200
        assert catalog.headers["content-type"] == "application/ld+json"
        assert catalog.json() == {"@context": {}}
        csv = client.get("/opendata/quarter-energy-daily/quarter-energy-daily_2026-10.csv")
        assert csv.headers["content-type"] == "text/csv; charset=utf-8"
        assert csv.text == "start,households\n"
        assert csv.headers["x-content-type-options"] == "nosniff"
        assert csv.headers["access-control-allow-origin"] == "*"
        data = client.get("/opendata/quarter-energy-daily/quarter-energy-daily_2026-10.json")
        assert data.headers["content-type"] == "application/json"
        assert data.json() == {"rows": []}
        assert (
            client.head("/opendata/quarter-energy-daily/quarter-energy-daily_2026-10.csv").status_code == 200
        )
        for missing in (
            "/opendata/quarter-energy-daily/quarter-energy-daily_2026-12.csv",  # not written
            "/opendata/quarter-energy-daily/quarter-energy-daily_2026-09.csv",  # links outside
            "/opendata/quarter-energy-daily/notes.txt",
            "/opendata/quarter-energy-daily/",
            "/opendata/quarter-energy-daily/%2e%2e/catalog.jsonld",
            "/opendata/%2e%2e/secret.csv",
            "/opendata/..%2fsecret.csv",
            "/opendata/quarter-energy-daily/quarter-energy-15min_2026-10.csv",  # another dataset's name
            "/opendata/unknown/unknown_2026-10.csv",
        ):
            assert client.get(missing).status_code == 404, missing
        # a name ending in a newline is not one the server hands out ("$" matched before it), though on disk
        assert resolve(out, "quarter-energy-daily/quarter-energy-daily_2026-10.csv\n") is None
        index = client.get("/opendata/", follow_redirects=False)
        assert index.status_code == 303
        assert index.headers["location"] == "/quarter#open-data"

        page = client.get("/quarter", headers={"Accept-Language": "en"}).text
        assert 'href="/opendata/catalog.jsonld"' in page
        assert 'href="/opendata/quarter-energy-daily/quarter-energy-daily_2026-11.csv"' in page
        assert 'href="/opendata/quarter-energy-daily/quarter-energy-daily_2026-10.json"' in page
        assert "quarter-energy-daily_2026-09" not in page
