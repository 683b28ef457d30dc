"""``reallabor broker init`` and ``reallabor gateways bind-client-ids``: the broker's own accounts.

``broker init`` writes the dynamic-security plugin's first JSON for ``deploy/mosquitto.conf``: the admin
(who provisions gateways) and the ingester, bound to ``mqtt.client_id``. Passwords come from the
environment (``REALLABOR_BROKER_ADMIN__PASSWORD``, ``REALLABOR_MQTT__PASSWORD``) or the terminal, never
from the command line, and are never printed. ``gateways bind-client-ids`` binds the accounts of a broker
provisioned before accounts had a client id. Exit codes as the other registry commands.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.orm import Session

from ingest.config import Settings
from ingest.dynsec import DynsecBootstrap, write_initial_config
from ingest.registry.fleet import GATEWAY_USER_PREFIX, Bindings, BrokerClientIds, bind_client_ids
from ingest.security.strength import placeholder_problem, weakness

EXIT_FAILED = 1
EXIT_CONFIG = 2


class Refused(Exception):
    """Input that ``broker init`` cannot use; the message says what is wrong."""


def _password(secret: SecretStr | None, *, what: str, variable: str) -> str:
    if secret is not None:
        password = secret.get_secret_value()
    elif sys.stdin.isatty():
        password = getpass.getpass(f"{what} password: ")
        if password != getpass.getpass("again: "):
            raise Refused(f"the {what} passwords differ")
    else:
        raise Refused(f"set {variable} (the {what} password; read from the environment, never argv)")
    problem = placeholder_problem(password) or weakness(password)  # the rule of production settings
    if problem is not None:
        raise Refused(f"the {what} password ({variable}): {problem}")
    return password


def bootstrap_from(settings: Settings) -> DynsecBootstrap:
    """The broker's first accounts from the settings (names, the ingester's client id) and passwords."""
    client_id = settings.mqtt.client_id
    if client_id.startswith(GATEWAY_USER_PREFIX):
        raise Refused(
            f"mqtt.client_id {client_id!r}: ids starting {GATEWAY_USER_PREFIX!r} belong to gateways"
        )
    admin = _password(
        settings.broker_admin.password, what="broker admin", variable="REALLABOR_BROKER_ADMIN__PASSWORD"
    )
    ingester = _password(settings.mqtt.password, what="ingester", variable="REALLABOR_MQTT__PASSWORD")
    if admin == ingester:
        raise Refused("the admin and the ingester need different passwords")
    return DynsecBootstrap(
        admin_password=admin,
        ingester_password=ingester,
        admin_username=settings.broker_admin.username,
        ingester_username=settings.mqtt.username or "ingester",
        ingester_client_id=client_id,
        ingester_instances=settings.ingest.instances,  # above 1: an account per instance (<name>-K)
    )


def run_broker_init(settings: Settings, out: Path) -> int:
    try:
        bootstrap = bootstrap_from(settings)
    except Refused as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    write_initial_config(out, bootstrap)
    print(f"wrote {out} (mode 0600): the dynamic-security plugin's accounts")
    print(f"admin      {bootstrap.admin_username} (provisions gateways: REALLABOR_BROKER_ADMIN__*)")
    for username, client_id in bootstrap.ingester_accounts().items():
        print(f"ingester   {username}, client id {client_id} only")
    return 0


def run_bind(session: Session, broker: BrokerClientIds, settings: Settings, *, dry_run: bool) -> int:
    accounts = {}
    if settings.mqtt.username is not None:
        if settings.mqtt.client_id.startswith(GATEWAY_USER_PREFIX):
            print(f"reallabor: mqtt.client_id: ids starting {GATEWAY_USER_PREFIX!r} belong to gateways")
            return EXIT_CONFIG
        accounts[settings.mqtt.username] = settings.mqtt.client_id
        for k in range(settings.ingest.instances if settings.ingest.instances > 1 else 0):
            instance = settings.for_instance(k).mqtt  # the instances' accounts (ingest/config.py)
            accounts[str(instance.username)] = instance.client_id
    result = bind_client_ids(
        session, broker, accounts=accounts, exempt={settings.broker_admin.username}, dry_run=dry_run
    )
    print_bindings(result, dry_run=dry_run)
    return 0 if result.complete else EXIT_FAILED


def print_bindings(result: Bindings, *, dry_run: bool) -> None:
    verb = "would bind" if dry_run else "bound"
    for username, client_id in result.bound.items():
        print(f"{verb:<10} {username} -> client id {client_id}")
    for username, client_id in result.already.items():
        print(f"{'ok':<10} {username} -> client id {client_id}")
    for username, client_id in result.foreign.items():
        print(
            f"{'other':<10} {username} -> client id {client_id} (not a gateway or the ingester: left alone)"
        )
    for username in result.missing:
        name = username.removeprefix(GATEWAY_USER_PREFIX)
        print(f"{'missing':<10} {username}: active gateway without a broker account (gateways rotate {name})")
    hint = "bind it (mosquitto_ctrl dynsec setClientId USER ID) or delete it"
    for username in result.unbound:
        print(f"{'UNBOUND':<10} {username}: may connect with any client id, the ingester's too; {hint}")
    for username, client_id in result.clashing.items():
        print(f"{'CLASH':<10} {username}: bound to {client_id}, an id of the ingester or a gateway; {hint}")
    if result.unbound or result.clashing:
        print("(the ingester's own account is known by mqtt.username; the admin's is left alone)")
    if result.bound and not dry_run:
        print("the broker disconnected the rebound accounts: they must reconnect with their client id")
