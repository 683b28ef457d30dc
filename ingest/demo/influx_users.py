"""The demo's InfluxDB users: an admin, the ingester that may only write, a reader for queries, and the
energy ledger, which reads raw counters and writes ``rollups.energy`` (READ and WRITE).

InfluxDB 1.x with authentication on accepts one statement without a user while it has none: the first
admin. Everything here is idempotent, so every start of the demo runs it (older demo data included).
"""

from __future__ import annotations

from ingest.demo.credentials import DemoCredentials
from ingest.lifecycle_cli import InfluxV1, LifecycleError

DATABASE = "reallabor"
ADMIN, INGESTER, READER, LEDGER = "admin", "ingester", "reader", "ledger"
_NO_USERS = "create admin user first"


class InfluxSetupError(Exception):
    pass


def _users(url: str, admin: tuple[str, str]) -> set[str]:
    client = InfluxV1(url, auth=admin, timeout_s=10)
    try:
        series = client.query("SHOW USERS")
    finally:
        client.close()
    return {row[0] for row in (series[0].get("values", []) if series else [])}


def _run(url: str, statements: list[str], auth: tuple[str, str] | None, *, secrets: list[str]) -> None:
    client = InfluxV1(url, auth=auth, timeout_s=10)
    try:
        for statement in statements:
            client.query(statement)
    except LifecycleError as exc:
        message = str(exc)
        for secret in secrets:  # the refused statement is quoted in the message: never its password
            message = message.replace(secret, "***")
        raise InfluxSetupError(message) from None
    finally:
        client.close()


def ensure_users(url: str, credentials: DemoCredentials) -> None:
    """Create the database and the users if missing, and set their rights."""
    admin = (ADMIN, credentials.influx_admin)
    try:
        existing = _users(url, admin)
    except LifecycleError as exc:
        if _NO_USERS not in str(exc):
            raise InfluxSetupError(
                f"InfluxDB refused the demo's admin ({exc}): its data was made with other passwords "
                "than demo-secrets.json holds"
            ) from None
        first = f"CREATE USER {ADMIN} WITH PASSWORD '{credentials.influx_admin}' WITH ALL PRIVILEGES"
        _run(url, [first], None, secrets=[credentials.influx_admin])
        existing = _users(url, admin)
    statements = [f'CREATE DATABASE "{DATABASE}"']
    passwords = {
        INGESTER: credentials.influx_ingester,
        READER: credentials.influx_reader,
        LEDGER: credentials.influx_ledger,
    }
    for user, password in passwords.items():
        if user not in existing:
            statements.append(f"CREATE USER {user} WITH PASSWORD '{password}'")
    statements += [
        f'GRANT WRITE ON "{DATABASE}" TO {INGESTER}',
        f'GRANT READ ON "{DATABASE}" TO {READER}',
        f'GRANT ALL ON "{DATABASE}" TO {LEDGER}',  # READ and WRITE on the database, no admin rights
    ]
    _run(url, statements, admin, secrets=list(passwords.values()))
