"""The demo's InfluxDB users: an admin, the ingester that may only write, a reader for queries.

InfluxDB 1.x with authentication on accepts one statement without a user while it has none: the first
admin. Everything here is idempotent, so every start of the demo runs it (older demo data included).
"""

from __future__ import annotations

from typing import Any

import httpx

from ingest.demo.credentials import DemoCredentials

DATABASE = "reallabor"
ADMIN, INGESTER, READER = "admin", "ingester", "reader"
_NO_USERS = "create admin user first"


class InfluxSetupError(Exception):
    pass


def _query(url: str, statement: str, auth: tuple[str, str] | None) -> tuple[str | None, list[Any]]:
    """(the error, or None; the first result's series)."""
    response = httpx.post(f"{url}/query", data={"q": statement}, auth=auth, timeout=10, trust_env=False)
    body: dict[str, Any] = response.json() if response.content else {}
    result = (body.get("results") or [{}])[0]
    error = body.get("error") or result.get("error")
    if error is None and response.status_code != 200:
        error = f"HTTP {response.status_code}"
    return error, result.get("series", [])


def _must(url: str, statement: str, auth: tuple[str, str] | None) -> list[Any]:
    error, series = _query(url, statement, auth)
    if error is not None:
        raise InfluxSetupError(f"InfluxDB refused {statement.split(' WITH ')[0]!r}: {error}")
    return series


def ensure_users(url: str, credentials: DemoCredentials) -> None:
    """Create the database and the three users if missing, and set their rights."""
    admin = (ADMIN, credentials.influx_admin)
    error, series = _query(url, "SHOW USERS", admin)
    if error is not None and _NO_USERS in error:
        _must(
            url, f"CREATE USER {ADMIN} WITH PASSWORD '{credentials.influx_admin}' WITH ALL PRIVILEGES", None
        )
        error, series = _query(url, "SHOW USERS", admin)
    if error is not None:
        raise InfluxSetupError(
            f"InfluxDB refused the demo's admin ({error}): its data was made with other passwords "
            "than demo-secrets.json holds"
        )
    existing = {row[0] for row in (series[0]["values"] if series else [])}
    _must(url, f'CREATE DATABASE "{DATABASE}"', admin)
    for user, password in ((INGESTER, credentials.influx_ingester), (READER, credentials.influx_reader)):
        if user not in existing:
            _must(url, f"CREATE USER {user} WITH PASSWORD '{password}'", admin)
    _must(url, f'GRANT WRITE ON "{DATABASE}" TO {INGESTER}', admin)
    _must(url, f'GRANT READ ON "{DATABASE}" TO {READER}', admin)
