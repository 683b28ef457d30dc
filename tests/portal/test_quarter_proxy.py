"""Behind the reverse proxy, each visitor has a bucket of its own (review18 M8): a real uvicorn started with
``reallabor api``'s options (:func:`ingest.api.serving.client_address_options`) for
``api.trusted_proxies``; clients connect from distinct loopback addresses (127.0.0.2 is the proxy).

- two visitors behind the trusted proxy (``X-Forwarded-For``) get separate buckets;
- a visitor behind the proxy cannot escape its bucket by sending an X-Forwarded-For of its own (the proxy
  appends the real address; the right-most untrusted one counts);
- a client that is not the trusted proxy cannot spoof X-Forwarded-For: its TCP address counts;
- without trusted proxies (the default) the header is never read.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from ingest.api.app import create_app
from ingest.api.rate_limit import ClientRateLimit
from ingest.api.serving import client_address_options
from ingest.config import Settings
from ingest.localservices import LOOPBACK, free_port
from ingest.registry.db import make_engine
from ingest.registry.migrate import upgrade

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
PROXY = "127.0.0.2"
BURST = 2

Serve = Callable[[list[str]], str]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Starts the API with ``api.trusted_proxies``; each client may send BURST requests, then 429."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(trusted: list[str]) -> str:
        engine = make_engine(f"sqlite:///{tmp_path / f'registry-{len(servers)}.db'}")
        upgrade(engine)
        settings = Settings(
            api={"secret_key": secrets.token_urlsafe(32), "trusted_proxies": trusted},
            opendata={"out_dir": tmp_path / "opendata"},
        )
        app = create_app(settings, engine=engine, migrate=False)
        app.state.public_rate_limit = ClientRateLimit(per_s=0.001, burst=BURST)
        port = free_port()
        config = uvicorn.Config(
            app, host=LOOPBACK, port=port, log_level="warning", **client_address_options(settings.api)
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        url = f"http://{LOOPBACK}:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/api/v1/health", trust_env=False, timeout=1).raise_for_status()
                return url
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.05)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def statuses(url: str, source: str, forwarded: list[str | None]) -> list[int]:
    """One request per entry from TCP address ``source``, with that X-Forwarded-For (None: none)."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, trust_env=False, timeout=5) as client:
        return [
            client.get(
                "/opendata/",  # rate-limited like /quarter, and needs no database
                headers={} if header is None else {"X-Forwarded-For": header},
                follow_redirects=False,
            ).status_code
            for header in forwarded
        ]


def test_visitors_behind_the_trusted_proxy_have_their_own_buckets(serve: Serve) -> None:
    url = serve([PROXY])
    alice, bob = "127.0.0.11", "127.0.0.12"  # as the proxy names them
    assert statuses(url, PROXY, [alice] * 3) == [303, 303, 429]
    assert statuses(url, PROXY, [bob] * 2) == [303, 303]  # not refused with alice: a bucket of its own
    # alice forges a first hop; the proxy appends her real address, which counts: still refused
    assert statuses(url, PROXY, [f"127.0.0.99, {alice}"]) == [429]


def test_a_client_that_is_not_the_proxy_cannot_spoof_x_forwarded_for(serve: Serve) -> None:
    url = serve([PROXY])
    # each request claims another client; its TCP address (127.0.0.3) counts
    assert statuses(url, "127.0.0.3", ["127.0.0.21", "127.0.0.22", "127.0.0.23"]) == [303, 303, 429]


def test_without_trusted_proxies_the_header_is_never_read(serve: Serve) -> None:
    url = serve([])
    assert statuses(url, PROXY, ["127.0.0.31", "127.0.0.32", "127.0.0.33"]) == [303, 303, 429]
