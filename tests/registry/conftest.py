"""Registry fixtures: every test gets a fresh, migrated database, on SQLite and on PostgreSQL.

PostgreSQL runs as one throwaway cluster per session (``postgres.py``); each test creates its own
database in it. The dynamic-security broker is one Mosquitto per session; tests use their own gateway
names. The API runs in-process (FastAPI TestClient) against the test's database and the real broker.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.dynsec import DynsecAdmin, DynsecBootstrap
from ingest.localservices import LOOPBACK, Mosquitto
from ingest.registry.db import make_engine, session_factory
from ingest.registry.migrate import upgrade
from tests.registry.postgres import PostgresCluster

BACKENDS = ["sqlite", "postgresql"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own (not migrated yet)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


@pytest.fixture(scope="session")
def bootstrap() -> DynsecBootstrap:
    return DynsecBootstrap(
        admin_password=secrets.token_urlsafe(16), ingester_password=secrets.token_urlsafe(16)
    )


@pytest.fixture(scope="session")
def dynsec_broker(
    tmp_path_factory: pytest.TempPathFactory, bootstrap: DynsecBootstrap
) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("dynsec-broker"), dynsec=bootstrap) as broker:
        yield broker


@pytest.fixture(scope="session")
def broker_admin(dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap) -> Iterator[DynsecAdmin]:
    with DynsecAdmin(
        host=LOOPBACK, port=dynsec_broker.port, username="admin", password=bootstrap.admin_password, timeout=5
    ) as admin:
        yield admin


@pytest.fixture
def unique() -> str:
    """A short unique suffix: gateway names and topics are shared across tests on one broker."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def api_settings(dynsec_broker: Mosquitto, bootstrap: DynsecBootstrap, tmp_path: Path) -> Settings:
    """The API's settings: the commissioning check listens on the dynsec broker as its admin (the
    ingester's account is bound to the ingester's client id)."""
    return Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        registry={"url": "sqlite://"},
        mqtt={"port": dynsec_broker.port, "username": "ingester", "password": bootstrap.ingester_password},
        broker_admin={"password": bootstrap.admin_password},
        ingest={"profiles_dir": REPO / "device_profiles", "state_dir": tmp_path / "state"},
    )


@pytest.fixture
def api(engine: Engine, broker_admin: DynsecAdmin, api_settings: Settings) -> Iterator[TestClient]:
    app = create_app(api_settings, broker=broker_admin, engine=engine, migrate=False)
    with TestClient(app) as client:
        yield client
