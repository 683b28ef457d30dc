"""``reallabor-gateway run|check --config gateway.yaml``: the gateway service's command line.

Kept apart from the central CLI's heavy imports: on the Pi only the gateway's few requirements are
installed (install.sh: the wheel ``--no-deps`` plus requirements-gateway.txt), so its command is the
console script ``reallabor-gateway`` (or ``python -m ingest.gateway.cli``), never ``reallabor gateway``,
which loads the central side first. On the central install ``reallabor gateway run|check`` works too.
Exit codes: 0 ok, 1 runtime failure, 2 bad configuration (each key path and value named).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from ingest.gateway.accounts import GATEWAY_USER_PREFIX, broker_username, gateway_client_id
from ingest.gateway.config import PLACEHOLDER, GatewayConfig, GatewayConfigError, load_gateway_config

EXIT_CONFIG = 2
log = logging.getLogger("reallabor.gateway")


def _load(path: Path) -> GatewayConfig:
    try:
        config = load_gateway_config(path)
    except GatewayConfigError as exc:
        print(f"reallabor gateway: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    problems = _file_problems(config)
    if problems:
        lines = "\n  ".join(problems)
        print(f"reallabor gateway: invalid gateway configuration ({path}):\n  {lines}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    return config


def _file_problems(config: GatewayConfig) -> list[str]:
    """The TLS files named in the configuration that cannot be used (key path and value each)."""
    tls = config.central.tls
    if tls is None:
        return []
    problems = [
        f"central.tls.{key}: cannot read {path}"
        for key, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file))
        if path is not None and not os.access(path, os.R_OK)
    ]
    if not problems:
        from ingest.gateway.uplink import UplinkError, ssl_context

        try:
            ssl_context(tls)
        except UplinkError as exc:
            problems.append(f"central.tls: {exc}")
    return problems


def _placeholders(config: GatewayConfig) -> list[str]:
    """Values still the bundle's placeholder (a meter's port): the key path of each."""
    found: list[str] = []

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}.{index}")
        elif isinstance(value, str) and PLACEHOLDER in value:
            found.append(f"{path}: {value} is the bundle's placeholder: put the real value here")

    walk(config.model_dump(mode="json"), "")
    return found


def _ports_there() -> str:
    by_id = Path("/dev/serial/by-id")
    names = sorted(str(p) for p in by_id.iterdir()) if by_id.is_dir() else []
    return f"ports there now: {', '.join(names)}" if names else f"nothing in {by_id} now"


def _warnings(config: GatewayConfig) -> list[str]:
    """What may be right but looks wrong: an unplugged head, an account the registry did not make."""
    warnings = [
        f"meters.{index}.port ({meter.device}): {meter.port} is not there now "
        f"(the head unplugged? the service waits for it; {_ports_there()})"
        for index, meter in enumerate(config.meters)
        if not meter.port.exists() and PLACEHOLDER not in str(meter.port)
    ]
    central = config.central
    if central.username != broker_username(config.gateway):
        owner = central.username.removeprefix(GATEWAY_USER_PREFIX)
        warnings.append(
            f"central.username: {central.username!r} is not gateway {config.gateway}'s broker account "
            f"({broker_username(config.gateway)!r}): the broker allows that account only lab/{owner}/..., "
            "so every frame will be refused (fix `gateway:` or make a new bundle)"
        )
    if central.client_id != gateway_client_id(config.gateway):
        warnings.append(
            f"central.client_id: {central.client_id!r} is not the one the registry binds to gateway "
            f"{config.gateway}'s account ({gateway_client_id(config.gateway)!r})"
        )
    return warnings


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    placeholders = _placeholders(config)
    if placeholders:
        lines = "\n  ".join(placeholders)
        print(f"reallabor gateway: not ready ({args.config}):\n  {lines}", file=sys.stderr)
        return EXIT_CONFIG
    for warning in _warnings(config):
        print(f"reallabor gateway: warning: {warning}", file=sys.stderr)
    local = config.local_broker
    print(
        f"{args.config}: ok (gateway {config.gateway}, {len(config.meters)} meter(s), "
        f"local broker {f'{local.host}:{local.port}' if local else 'none'}, "
        f"central {', '.join(config.central.brokers)}, outbox {config.outbox.directory})"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    logging.basicConfig(
        level=config.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from ingest.gateway.outbox import OutboxError
    from ingest.gateway.service import GatewayService

    for problem in _placeholders(config):  # the other meters and the local devices still go on
        log.warning("%s (check --config says so too)", problem)

    async def main() -> None:
        service = GatewayService(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, service.stop)
        await service.run()

    try:
        asyncio.run(main())
    except OutboxError as exc:  # the outbox cannot be opened (permissions, another service on it)
        print(f"reallabor gateway: {exc}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``reallabor gateway run|check`` in the central CLI."""
    gateway = sub.add_parser("gateway", help="the gateway service on a Pi (meters, local devices, outbox)")
    _add_actions(gateway)


def _add_actions(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    for name, func, text in (
        ("run", cmd_run, "run the gateway service until SIGTERM"),
        ("check", cmd_check, "validate gateway.yaml (exit 2 naming each bad key path and value)"),
    ):
        command = actions.add_parser(name, help=text)
        command.add_argument("--config", type=Path, required=True, help="the gateway's gateway.yaml")
        command.set_defaults(func=func)


def main(argv: list[str] | None = None) -> int:
    """The console script ``reallabor-gateway`` (and ``python -m ingest.gateway.cli``)."""
    root = argparse.ArgumentParser(prog="reallabor-gateway", description="the Reallabor gateway service")
    _add_actions(root)
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["gateway"]:  # `reallabor-gateway gateway run ...` as `reallabor gateway run ...`
        given = given[1:]
    args = root.parse_args(given)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
