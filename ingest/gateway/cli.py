"""``reallabor gateway run|check --config gateway.yaml``: the gateway service's command line.

Kept apart from the central CLI's heavy imports: ``python -m ingest.gateway.cli run --config ...`` runs the
same service with only what the gateway needs loaded (the Pi's memory; docs/gateway.md, "Measured").
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

from ingest.gateway.config import GatewayConfig, GatewayConfigError, load_gateway_config

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


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    for meter in config.meters:
        if not meter.port.exists():  # a head may be unplugged right now: the service waits for it
            print(f"reallabor gateway: note: meters[{meter.device}].port {meter.port} is not there now")
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
    gateway = sub.add_parser("gateway", help="the gateway service on a Pi (meters, local devices, outbox)")
    actions = gateway.add_subparsers(dest="action", required=True)
    for name, func, text in (
        ("run", cmd_run, "run the gateway service until SIGTERM"),
        ("check", cmd_check, "validate gateway.yaml (exit 2 naming each bad key path and value)"),
    ):
        command = actions.add_parser(name, help=text)
        command.add_argument("--config", type=Path, required=True, help="the gateway's gateway.yaml")
        command.set_defaults(func=func)


def main(argv: list[str] | None = None) -> int:
    root = argparse.ArgumentParser(prog="reallabor", description="the Reallabor gateway service")
    add_parser(root.add_subparsers(dest="command", required=True))
    given = sys.argv[1:] if argv is None else argv
    if given[:1] != ["gateway"]:  # `python -m ingest.gateway.cli run ...` means `reallabor gateway run ...`
        given = ["gateway", *given]
    args = root.parse_args(given)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
