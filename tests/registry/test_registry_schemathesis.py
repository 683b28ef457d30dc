"""Schemathesis over the published OpenAPI document: whatever a client sends, the API never answers 5xx.

Runs as an operator (the role that reaches the most code) against SQLite and the real dynsec broker.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.dynsec import DynsecAdmin
from ingest.localservices import InfluxDB
from ingest.registry.db import make_engine, session_factory
from ingest.registry.migrate import upgrade
from ingest.registry.models import Role
from tests.registry import factories as f

pytestmark = [pytest.mark.registry, pytest.mark.integration]


@pytest.fixture(scope="module")
def fuzzed_app(
    tmp_path_factory: pytest.TempPathFactory, broker_admin: DynsecAdmin, influxdb: InfluxDB
) -> Iterator[FastAPI]:
    engine = make_engine(f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'registry.db'}")
    upgrade(engine)
    with session_factory(engine)() as session:  # some rows, so that ids in paths sometimes exist
        household = f.household(session)
        f.device(session)
        f.user(session, Role.resident, household.id)
        operator = f.user(session, Role.operator)
    database = f"fuzz_{secrets.token_hex(4)}"  # the export and deletion routes read InfluxDB
    httpx.post(f"{influxdb.url}/query", data={"q": f'CREATE DATABASE "{database}"'}, trust_env=False)
    settings_ = Settings(
        api={"secret_key": secrets.token_urlsafe(32)}, influx={"url": influxdb.url, "database": database}
    )
    app = create_app(settings_, broker=broker_admin, engine=engine, migrate=False)
    app.state.fuzz_token = app.state.signer.issue(operator)
    yield app
    engine.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzzed_app)


def test_no_server_errors(api_schema: Any, fuzzed_app: FastAPI) -> None:
    headers = {"Authorization": f"Bearer {fuzzed_app.state.fuzz_token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30
    for operation in operations:
        if operation.path == "/api/v1/auth/logout":
            continue  # it would end the operator session the other cases use

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def no_5xx(case: Any) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"

        no_5xx()
