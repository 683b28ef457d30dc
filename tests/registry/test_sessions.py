"""Session tokens name their user unambiguously: a deleted user's token is dead, also for a new user who
gets the same id (SQLite reuses the highest id), on the API and on the pages; the migration gives every
existing user a key of their own."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ingest.api.security import SESSION_COOKIE
from ingest.registry.db import make_engine
from ingest.registry.migrate import upgrade
from ingest.registry.models import Role
from tests.registry import factories as f

pytestmark = [pytest.mark.registry, pytest.mark.integration]
V1 = "/api/v1"


def _token(client: TestClient, username: str, password: str) -> str:
    response = client.post(f"{V1}/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    token: str = response.json()["access_token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_deleted_users_token_is_dead_for_a_new_user_with_the_same_id(
    api: TestClient, session: Session, db_url: str
) -> None:
    admin = _bearer(_token(api, f.user(session, Role.operator).username, f.PASSWORD))
    created = api.post(
        f"{V1}/users",
        json={"username": "opa", "password": "the first operator's pw", "role": "operator"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    a_id = created.json()["id"]
    a_token = _token(api, "opa", "the first operator's pw")
    assert api.get(f"{V1}/me", headers=_bearer(a_token)).json()["username"] == "opa"

    assert api.delete(f"{V1}/users/{a_id}", headers=admin).status_code == 204
    assert api.get(f"{V1}/me", headers=_bearer(a_token)).status_code == 401
    created = api.post(
        f"{V1}/users",
        json={"username": "opb", "password": "the second operator's pw", "role": "operator"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    if db_url.startswith("sqlite"):
        assert created.json()["id"] == a_id  # the premise: SQLite hands the id out again

    me = api.get(f"{V1}/me", headers=_bearer(a_token))
    assert me.status_code == 401, f"A's token acts as {me.json()}"
    api.cookies.set(SESSION_COOKIE, a_token)
    assert api.get(f"{V1}/me").status_code == 401
    page = api.get("/tech", follow_redirects=False)
    assert page.status_code == 303  # to the login: the pages do not take it either
    assert page.headers["location"].startswith("/tech/login")


def test_logout_and_role_change_still_end_sessions(api: TestClient, session: Session) -> None:
    operator = f.user(session, Role.operator)
    technician = f.user(session, Role.technician)
    admin = _bearer(_token(api, operator.username, f.PASSWORD))
    token = _bearer(_token(api, technician.username, f.PASSWORD))
    assert api.get(f"{V1}/me", headers=token).status_code == 200
    assert (
        api.patch(f"{V1}/users/{technician.id}", json={"role": "operator"}, headers=admin).status_code == 200
    )
    assert api.get(f"{V1}/me", headers=token).status_code == 401
    token = _bearer(_token(api, technician.username, f.PASSWORD))
    assert api.post(f"{V1}/auth/logout", headers=token).status_code == 204
    assert api.get(f"{V1}/me", headers=token).status_code == 401


def test_migration_gives_existing_users_distinct_random_keys(db_url: str) -> None:
    engine: Engine = make_engine(db_url)
    try:
        upgrade(engine, revision="0002")
        with engine.begin() as connection:
            for user_id in (1, 2, 3):
                connection.execute(
                    text(
                        "INSERT INTO users (id, username, full_name, password_hash, role, is_active, "
                        "session_version, created_at) VALUES (:id, :name, '', 'x', 'operator', true, 0, "
                        "CURRENT_TIMESTAMP)"
                    ),
                    {"id": user_id, "name": f"old{user_id}"},
                )
            connection.execute(
                text(
                    "INSERT INTO gateways (id, name, status, broker_username, notes, created_at) "
                    "VALUES (1, 'g', 'active', 'gw-g', '', CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO devices (id, gateway_id, native_id, profile_id, location, notes, status, "
                    "commissioned_by_id, created_at) VALUES (1, 1, 'n', 'p', '', '', 'active', 2, "
                    "CURRENT_TIMESTAMP)"
                )
            )
        upgrade(engine)
        with engine.connect() as connection:
            keys = [row[0] for row in connection.execute(text("SELECT session_key FROM users"))]
            by = connection.execute(text("SELECT commissioned_by_id FROM devices")).scalar_one()
        assert len(keys) == 3
        assert len(set(keys)) == 3
        assert all(isinstance(key, str) and len(key) >= 43 for key in keys)
        # a table copy on SQLite (batch ALTER) would have run ON DELETE SET NULL on this reference
        assert by == 2
    finally:
        engine.dispose()
