"""``reallabor api | users | gateways | broker | devices | buildings | households``: the registry's commands.

:func:`add_subcommands` adds them to the root parser of ``ingest/cli.py``. Exit codes: 0 ok, 1 refused
or failed (conflict, no such row, broker trouble), 2 bad configuration or usage. A gateway's password is
printed once, to stdout; a user's password is read from the terminal or stdin, never from the command
line. The settings file is found as for ``reallabor quarantine`` (:func:`ingest.cli.find_settings`:
``--config``, ``$REALLABOR_CONFIG``, the demo's ``state/demo/ingest.yaml``), so these commands work
against ``reallabor up`` without ``--config``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from ingest.cli import find_settings
from ingest.config import ConfigError, Settings
from ingest.dynsec import DynsecAdmin, DynsecError, admin_from_settings
from ingest.gateway.accounts import GATEWAY_NAME as NEW_GATEWAY_NAME
from ingest.gateway.accounts import GATEWAY_NAME_RULE as NEW_GATEWAY_NAME_RULE
from ingest.registry.db import make_engine, session_factory
from ingest.registry.errors import NotFound, RegistryError
from ingest.registry.fleet import (
    create_gateway,
    gateway_client_id,
    get_gateway_by_name,
    list_devices,
    revoke_gateway,
    rotate_gateway,
)
from ingest.registry.migrate import upgrade
from ingest.registry.models import DeviceStatus, Gateway, GatewayStatus, Role
from ingest.registry.people import create_user
from ingest.registry.registration import NewDevice, register_device
from ingest.registry.text import Key, Name, NativeId, Notes, ShortText

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return find_settings(args.config)
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


@contextlib.contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.registry.url)
    try:
        upgrade(engine)
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _broker(settings: Settings) -> DynsecAdmin:
    admin = admin_from_settings(mqtt=settings.mqtt, admin=settings.broker_admin)
    if admin is None:
        print("reallabor: set REALLABOR_BROKER_ADMIN__PASSWORD (the broker's dynsec admin)", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    return admin


def _fail(exc: Exception) -> int:
    print(f"reallabor: {exc}", file=sys.stderr)
    return EXIT_FAILED


def _refusals(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Registry and broker refusals become a one-line message and exit code 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (RegistryError, DynsecError) as exc:
            return _fail(exc)

    run.__name__ = command.__name__
    run.__doc__ = command.__doc__
    return run


# ---------------------------------------------------------------- commands


def cmd_api(args: argparse.Namespace) -> int:
    """Serve the registry API (migrates the database first)."""
    import uvicorn

    from ingest.api.app import create_app
    from ingest.api.serving import client_address_options
    from ingest.security.audit import setup_logging

    settings = _settings(args)
    try:
        settings.check_production("api")
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.ingest.log_level)  # logins, user and gateway changes: reallabor.audit
    broker = admin_from_settings(mqtt=settings.mqtt, admin=settings.broker_admin)
    app = create_app(settings, broker=broker)
    try:
        uvicorn.run(
            app,
            host=args.host or settings.api.host,
            port=args.port or settings.api.port,
            log_level=settings.ingest.log_level.lower(),
            **client_address_options(settings.api),  # X-Forwarded-For from api.trusted_proxies only
        )
    finally:
        if broker is not None:
            broker.close()
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit(_fail(ValueError("the passwords differ")))
    return first


@_refusals
def cmd_users_add(args: argparse.Namespace) -> int:
    from ingest.registry.cli_people import actor, check_household_option, find_household

    role = Role(args.role)
    check_household_option(role, args.household)  # before the password is asked for
    settings = _settings(args)
    with _session(settings) as session:
        household_id = find_household(session, args.household).id if args.household is not None else None
        password = _read_password(args)
        if len(password) < 10:
            return _fail(ValueError("a password needs at least 10 characters"))
        user = create_user(
            session,
            username=args.username,
            password=password,
            role=role,
            household_id=household_id,
            full_name=args.full_name,
            by=actor(),
        )
        print(f"user {user.username} ({user.role.value}) created, id {user.id}")
    return 0


def _print_credentials(gateway: Gateway, password: str) -> None:
    print(f"gateway    {gateway.name} (id {gateway.id})")
    print(f"username   {gateway.broker_username}")
    print(f"password   {password}")
    print(f"client_id  {gateway_client_id(gateway.name)}")
    print(f"topics     lab/{gateway.name}/#")
    print(
        "the password is shown only now: put it on the gateway, which must connect with this client id",
        file=sys.stderr,
    )


def _gateway(session: Session, name: str) -> Gateway:
    gateway = get_gateway_by_name(session, name)
    if gateway is None:
        raise NotFound(f"no gateway named {name!r}")
    return gateway


@_refusals
def cmd_gateways_add(args: argparse.Namespace) -> int:
    if not NEW_GATEWAY_NAME.fullmatch(args.name):  # before the database and the broker are touched
        print(f"reallabor: gateway name {args.name!r}: {NEW_GATEWAY_NAME_RULE}", file=sys.stderr)
        return EXIT_CONFIG
    settings = _settings(args)
    with _session(settings) as session, _broker(settings) as broker:
        gateway, password = create_gateway(session, broker, name=args.name, building_id=args.building)
        _print_credentials(gateway, password)
    return 0


@_refusals
def cmd_gateways_rotate(args: argparse.Namespace) -> int:
    from ingest.registry.cli_people import actor

    settings = _settings(args)
    with _session(settings) as session, _broker(settings) as broker:
        gateway = _gateway(session, args.name)
        _print_credentials(gateway, rotate_gateway(session, broker, gateway, actor=actor()))
    return 0


@_refusals
def cmd_gateways_revoke(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _session(settings) as session, _broker(settings) as broker:
        gateway = revoke_gateway(session, broker, _gateway(session, args.name))
        print(f"gateway {gateway.name} revoked: its broker account is gone")
    return 0


@_refusals
def cmd_gateways_bundle(args: argparse.Namespace) -> int:
    """Rotate the gateway's broker password and write its provisioning bundle (never printed)."""
    from ingest.gateway.bundle import BundleError, BundleSettings, make_bundle, new_bundle_file
    from ingest.registry.cli_people import actor

    settings = _settings(args)
    out: Path = args.out or Path(f"reallabor-gateway-{args.name}.tar.gz")
    try:
        bundle_settings = BundleSettings.load(
            settings.gateway_bundle, mqtt_host=settings.mqtt.host, mqtt_port=settings.mqtt.port
        )
    except BundleError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    with _session(settings) as session, _broker(settings) as broker:
        gateway = get_gateway_by_name(session, args.name)
        if gateway is None or gateway.status is not GatewayStatus.active:
            why = "no gateway of that name" if gateway is None else f"it is {gateway.status.value}"
            print(f"reallabor: no bundle for {args.name!r}: {why} (reallabor gateways add)", file=sys.stderr)
            return EXIT_CONFIG
        try:
            with new_bundle_file(out) as file:
                bundle = make_bundle(session, broker, gateway, settings=bundle_settings, actor=actor())
                file.write(bundle.data)
        except FileExistsError:
            print(
                f"reallabor: {out} exists: a bundle never overwrites a file (remove it, or --out)",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        except BundleError as exc:
            return _fail(exc)
        except OSError as exc:
            return _fail(ValueError(f"cannot write {out}: {exc.strerror}"))
    for warning in bundle.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {out} (mode 0600): the bundle of gateway {gateway.name}, with a new broker password")
    print("the previous password and every older bundle of this gateway stopped working", file=sys.stderr)
    return 0


@_refusals
def cmd_gateways_bind(args: argparse.Namespace) -> int:
    """Bind every broker account to its client id (accounts made before ids were bound); idempotent."""
    from ingest.registry.cli_broker import run_bind

    settings = _settings(args)
    with _session(settings) as session, _broker(settings) as broker:
        return run_bind(session, broker, settings, dry_run=args.dry_run)


@_refusals
def cmd_broker_init(args: argparse.Namespace) -> int:
    """Write the dynamic-security plugin's first accounts (admin, ingester) for deploy/mosquitto.conf."""
    from ingest.registry.cli_broker import run_broker_init

    return run_broker_init(_settings(args), args.out)


@_refusals
def cmd_devices_add(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _session(settings) as session:
        gateway = _gateway(session, args.gateway)
        device = register_device(
            session,
            NewDevice(
                gateway_id=gateway.id,
                native_id=args.native_id,
                profile_id=args.profile,
                meter_number=args.meter_number,
                location=args.location,
                household_id=args.household,
                building_id=args.building,
                assigned_from=args.valid_from,
            ),
        )
        print(f"device {device.id}: {gateway.name}/{device.native_id} ({device.profile_id})")
    return 0


@_refusals
def cmd_devices_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _session(settings) as session:
        gateway_id = _gateway(session, args.gateway).id if args.gateway else None
        devices, total = list_devices(
            session,
            limit=args.limit,
            offset=0,
            gateway_id=gateway_id,
            household_id=args.household,
            building_id=args.building,
            meter_number=args.meter_number,
            profile_id=args.profile,
            status=DeviceStatus(args.status) if args.status else None,
        )
        rows = [
            {
                "id": d.id,
                "gateway": d.gateway.name,
                "native_id": d.native_id,
                "profile": d.profile_id,
                "meter_number": d.meter_number,
                "location": d.location,
                "status": d.status.value,
            }
            for d in devices
        ]
    if args.json:
        print(json.dumps({"total": total, "items": rows}))
        return 0
    for row in rows:
        print(
            f"{row['id']:>6}  {row['gateway']:<16} {row['native_id']:<20} {row['profile']:<16} "
            f"{row['meter_number'] or '-':<18} {row['status']:<10} {row['location']}"
        )
    print(f"{len(rows)} of {total}", file=sys.stderr)
    return 0


@_refusals
def cmd_devices_import(args: argparse.Namespace) -> int:
    """Import devices from a CSV file: all rows or none, with a report per row."""
    from ingest.profiles.loader import ProfileError, load_profiles
    from ingest.registry.cli_technician import run_import

    settings = _settings(args)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        return _fail(ValueError(f"cannot read {args.file}: {exc.strerror}"))
    try:
        profiles = load_profiles(settings.ingest.profiles_dir, tz=settings.ingest.timezone)
    except ProfileError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    with _session(settings) as session:
        return run_import(
            session, data, profiles=set(profiles.by_id), dry_run=args.dry_run, as_json=args.json
        )


@_refusals
def cmd_devices_commission(args: argparse.Namespace) -> int:
    """Wait for the device's next message and judge it (the API's commissioning check, in-process)."""
    from ingest.commissioning.errors import CommissioningError
    from ingest.commissioning.setup import make_commissioner
    from ingest.registry.cli_technician import find_device, run_commission

    settings = _settings(args)
    engine = make_engine(settings.registry.url)
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions() as session:
            device = find_device(session, args)
            try:
                commissioner = make_commissioner(settings, sessions)
                return run_commission(commissioner, device, timeout_s=args.timeout, as_json=args.json)
            except CommissioningError as exc:
                return _fail(exc)
    finally:
        engine.dispose()


@_refusals
def cmd_buildings_add(args: argparse.Namespace) -> int:
    from ingest.registry.cli_people import run_buildings_add

    with _session(_settings(args)) as session:
        return run_buildings_add(session, args)


@_refusals
def cmd_buildings_list(args: argparse.Namespace) -> int:
    from ingest.registry.cli_people import run_buildings_list

    with _session(_settings(args)) as session:
        return run_buildings_list(session, args)


@_refusals
def cmd_households_add(args: argparse.Namespace) -> int:
    from ingest.registry.cli_people import run_households_add

    with _session(_settings(args)) as session:
        return run_households_add(session, args)


@_refusals
def cmd_households_list(args: argparse.Namespace) -> int:
    from ingest.registry.cli_people import run_households_list

    with _session(_settings(args)) as session:
        return run_households_list(session, args)


# ---------------------------------------------------------------- parser


def _aware(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a timezone, e.g. 2026-03-01T08:00+01:00")
    return value


def _timeout(text: str) -> float:
    value = float(text)
    if not 5 <= value <= 600:
        raise argparse.ArgumentTypeError("between 5 and 600 seconds")
    return value


def _text(kind: Any) -> Callable[[str], str]:
    """An argparse type checking a value as the JSON API does (ingest.registry.text: one rule for every
    way in), so the command line cannot store what the API refuses."""
    adapter: TypeAdapter[str] = TypeAdapter(kind)

    def parse(value: str) -> str:
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise argparse.ArgumentTypeError(exc.errors()[0]["msg"]) from None

    return parse


def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="settings YAML (default: $REALLABOR_CONFIG, else state/demo/ingest.yaml if there; "
        "REALLABOR_* env overrides it)",
    )


def _limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=500, help="at most this many rows (default 500)")


def add_subcommands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``api``, ``users``, ``gateways``, ``broker``, ``devices``, ``buildings`` and ``households``
    to ``reallabor``'s subcommands."""
    api = subparsers.add_parser("api", help="serve the registry API (OpenAPI at /api/v1/openapi.json)")
    _config(api)
    api.add_argument("--host", help="default: api.host")
    api.add_argument("--port", type=int, help="default: api.port")
    api.set_defaults(func=cmd_api)

    users = subparsers.add_parser("users", help="registry users").add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="add a user (password from the terminal, or --password-stdin)")
    _config(add)
    add.add_argument("username", type=_text(Key), help="the login name")
    add.add_argument(
        "--role", required=True, choices=[role.value for role in Role], help="what the user may do"
    )
    add.add_argument(
        "--household",
        metavar="ID|NAME",
        help="the resident's household, by id or name (residents only, required for them; "
        "see reallabor households list)",
    )
    add.add_argument("--full-name", type=_text(ShortText), default="", help="shown on the pages")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=cmd_users_add)

    gateways = subparsers.add_parser("gateways", help="gateways and their broker accounts").add_subparsers(
        dest="action", required=True
    )
    for name, func, text in (
        ("add", cmd_gateways_add, "register a gateway and create its broker account (password shown once)"),
        ("rotate", cmd_gateways_rotate, "new broker password; the old one stops working"),
        ("revoke", cmd_gateways_revoke, "delete the broker account; a connected gateway is disconnected"),
    ):
        command = gateways.add_parser(name, help=text)
        _config(command)
        command.add_argument("name", help="the gateway's topic level (lab/<name>/...)")
        if name == "add":
            command.add_argument("--building", type=int, help="the building id the gateway stands in")
        command.set_defaults(func=func)
    bundle = gateways.add_parser(
        "bundle",
        help="new broker password, written with everything the gateway's Pi needs into a .tar.gz (0600)",
    )
    _config(bundle)
    bundle.add_argument("name", help="the gateway's topic level (lab/<name>/...)")
    bundle.add_argument(
        "--out",
        type=Path,
        help="the file to write, never overwritten (default: reallabor-gateway-NAME.tar.gz)",
    )
    bundle.set_defaults(func=cmd_gateways_bundle)
    bind = gateways.add_parser(
        "bind-client-ids",
        help="bind every broker account to its client id (brokers provisioned before); idempotent",
    )
    _config(bind)
    bind.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    bind.set_defaults(func=cmd_gateways_bind)

    broker = subparsers.add_parser("broker", help="the broker's own accounts").add_subparsers(
        dest="action", required=True
    )
    init = broker.add_parser(
        "init",
        help="write the dynamic-security JSON with the admin and the ingester (passwords from "
        "REALLABOR_BROKER_ADMIN__PASSWORD and REALLABOR_MQTT__PASSWORD, or the terminal)",
    )
    _config(init)
    init.add_argument("--out", type=Path, required=True, help="e.g. deploy/dynsec/dynamic-security.json")
    init.set_defaults(func=cmd_broker_init)

    devices = subparsers.add_parser("devices", help="devices").add_subparsers(dest="action", required=True)
    dev_add = devices.add_parser("add", help="register a device, optionally assigned to a household")
    _config(dev_add)
    dev_add.add_argument("--gateway", required=True, help="gateway name")
    dev_add.add_argument(
        "--native-id", type=_text(NativeId), required=True, help="the device id as it appears in its topics"
    )
    dev_add.add_argument("--profile", required=True, help="device profile id")
    dev_add.add_argument("--meter-number", type=_text(Key), help="the number printed on the meter")
    dev_add.add_argument(
        "--location", type=_text(ShortText), default="", help="where it is mounted, e.g. 'cellar, left'"
    )
    place = dev_add.add_mutually_exclusive_group()
    place.add_argument("--household", type=int, help="assign to this household id")
    place.add_argument("--building", type=int, help="assign to this building's common area")
    dev_add.add_argument("--from", dest="valid_from", type=_aware, help="assignment start (default: now)")
    dev_add.set_defaults(func=cmd_devices_add)

    dev_list = devices.add_parser("list", help="list devices (filters combine)")
    _config(dev_list)
    dev_list.add_argument("--gateway", help="gateway name")
    dev_list.add_argument("--household", type=int, help="assigned to this household now")
    dev_list.add_argument("--building", type=int, help="assigned to this building now")
    dev_list.add_argument("--meter-number", help="this meter number")
    dev_list.add_argument("--profile", help="this device profile id")
    dev_list.add_argument(
        "--status", choices=[status.value for status in DeviceStatus], help="in this lifecycle state"
    )
    _limit(dev_list)
    dev_list.add_argument("--json", action="store_true", help="{total, items} as JSON")
    dev_list.set_defaults(func=cmd_devices_list)

    dev_import = devices.add_parser("import", help="register devices from a CSV file (all rows or none)")
    _config(dev_import)
    dev_import.add_argument("file", type=Path, help="CSV: gateway,native_id,profile[,meter_number,...]")
    dev_import.add_argument("--dry-run", action="store_true", help="check every row, create nothing")
    dev_import.add_argument("--json", action="store_true", help="the per-row report as JSON")
    dev_import.set_defaults(func=cmd_devices_import)

    commission = devices.add_parser("commission", help="commissioning check: wait for the next message")
    _config(commission)
    which = commission.add_mutually_exclusive_group(required=True)
    which.add_argument("device", nargs="?", type=int, help="device id")
    which.add_argument("--meter-number", help="the device with this meter number")
    which.add_argument("--gateway", help="gateway name (with --native-id)")
    commission.add_argument("--native-id", help="the device id in its topics (with --gateway)")
    commission.add_argument("--timeout", type=_timeout, default=120.0, help="seconds to wait (5-600)")
    commission.add_argument("--json", action="store_true", help="the report as JSON")
    commission.set_defaults(func=cmd_devices_commission)

    _add_people(subparsers)

    from ingest.registry.cli_residents import add_parser as add_residents  # imports this module

    add_residents(subparsers)


def _add_people(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    buildings = subparsers.add_parser("buildings", help="buildings").add_subparsers(
        dest="action", required=True
    )
    b_add = buildings.add_parser("add", help="register a building")
    _config(b_add)
    b_add.add_argument("name", type=_text(Name), help="its name, unique, e.g. 'Haus A'")
    b_add.add_argument("--address", type=_text(ShortText), default="", help="street, number, town")
    b_add.add_argument("--notes", type=_text(Notes), default="", help="free text for operators")
    b_add.set_defaults(func=cmd_buildings_add)
    b_list = buildings.add_parser("list", help="buildings with their household and gateway counts")
    _config(b_list)
    _limit(b_list)
    b_list.add_argument("--json", action="store_true", help="{total, items} as JSON")
    b_list.set_defaults(func=cmd_buildings_list)

    households = subparsers.add_parser("households", help="households (housing units)").add_subparsers(
        dest="action", required=True
    )
    h_add = households.add_parser("add", help="register a household in a building")
    _config(h_add)
    h_add.add_argument(
        "name", type=_text(Name), help="the unit's label, unique in its building, e.g. 'WE 03'"
    )
    h_add.add_argument("--building", required=True, metavar="ID|NAME", help="the building, by id or name")
    h_add.add_argument("--notes", type=_text(Notes), default="", help="free text for operators")
    h_add.set_defaults(func=cmd_households_add)
    h_list = households.add_parser("list", help="households with their building and resident count")
    _config(h_list)
    h_list.add_argument("--building", metavar="ID|NAME", help="only this building's, by id or name")
    _limit(h_list)
    h_list.add_argument("--json", action="store_true", help="{total, items} as JSON")
    h_list.set_defaults(func=cmd_households_list)

    from ingest.privacy.cli import add_parsers as add_privacy  # delete, export, deletions (docs/privacy.md)

    add_privacy(households, _config)
