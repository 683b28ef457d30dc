"""Fixtures of the household-data tests (export, deletion), imported by their modules: the three
households of tests/registry/privacy_world.py, and the app reading the test's own InfluxDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ingest.api.app import create_app
from ingest.config import Settings
from ingest.dynsec import DynsecAdmin
from tests.helpers import Target
from tests.registry.privacy_world import Quarter, build


@pytest.fixture
def quarter(session: Session, target: Target) -> Quarter:
    return build(session, target.influx_url, target.database)


@pytest.fixture
def app_client(
    engine: Engine, broker_admin: DynsecAdmin, api_settings: Settings, target: Target
) -> Iterator[TestClient]:
    settings = api_settings.model_copy(
        update={
            "influx": api_settings.influx.model_copy(
                update={"url": target.influx_url, "database": target.database}
            )
        }
    )
    with TestClient(create_app(settings, broker=broker_admin, engine=engine, migrate=False)) as client:
        yield client


def cli_settings(path: Path, db_url: str, target: Target, **sections: object) -> Path:
    """A settings file at ``path`` for the command line: development mode, the registry at ``db_url``, the
    test's InfluxDB, and ``sections``."""
    settings = {
        "mode": "development",
        "registry": {"url": db_url},
        "influx": {"url": target.influx_url, "database": target.database},
        **sections,
    }
    path.write_text(yaml.safe_dump(settings))
    return path
