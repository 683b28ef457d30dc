"""``reallabor``: the command line. Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or profiles."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from ingest.config import ConfigError, Settings, load_settings
from ingest.profiles import ProfileError, load_profiles

EXIT_CONFIG = 2
log = logging.getLogger("reallabor")


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise


def _settings(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args.file)
    print(
        f"{args.file}: ok (mode {settings.mode}, mqtt {settings.mqtt.host}:{settings.mqtt.port}, "
        f"influx {settings.influx.url} api {settings.influx.api})"
    )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.ingester import Ingester

    settings = _settings(args.config)
    _setup_logging(settings.ingest.log_level)
    try:
        ingester = Ingester(settings)
    except ProfileError as exc:
        print(f"reallabor: invalid device profiles:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, ingester.stop)
        await ingester.run()

    asyncio.run(main())
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from ingest.stack import run_stack

    _setup_logging("WARNING")
    return run_stack(state_dir=args.state_dir, households=args.simulate, interval_s=args.interval)


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulators.run import run_fleet

    _setup_logging("INFO")
    return run_fleet(
        host=args.host,
        port=args.port,
        households=args.households,
        interval_s=args.interval,
        count=args.count,
        prefix=args.prefix,
        seed=args.seed,
    )


def cmd_profiles_list(args: argparse.Namespace) -> int:
    try:
        profiles = load_profiles(args.dir)
    except ProfileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    for compiled in profiles:
        p = compiled.profile
        print(f"{p.id:16} {p.family:28} {'  '.join(p.topics)}")
    return 0


def cmd_profiles_validate(args: argparse.Namespace) -> int:
    try:
        profiles = load_profiles(args.dir)
    except ProfileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps({"valid": [p.id for p in profiles]}))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="reallabor", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="configuration").add_subparsers(dest="action", required=True)
    check = config.add_parser("check", help="validate a settings file (exit 2 on error)")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_config_check)

    ingest = sub.add_parser("ingest", help="run the ingester")
    ingest.add_argument("--config", type=Path, help="settings YAML (REALLABOR_* env overrides it)")
    ingest.set_defaults(func=cmd_ingest)

    up = sub.add_parser("up", help="run everything locally: Mosquitto, InfluxDB, ingester, simulated fleet")
    up.add_argument("--simulate", type=int, default=110, metavar="N", help="households to simulate (0: none)")
    up.add_argument("--state-dir", type=Path, default=Path("state/demo"))
    up.add_argument("--interval", type=float, default=5.0, help="seconds between a household's readings")
    up.set_defaults(func=cmd_up)

    simulate = sub.add_parser("simulate", help="publish a simulated fleet to a broker")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=1883)
    simulate.add_argument("--households", type=int, default=110)
    simulate.add_argument(
        "--interval", type=float, default=5.0, help="seconds between a household's readings"
    )
    simulate.add_argument(
        "--count", type=int, help="stop after this many messages (default: run until Ctrl-C)"
    )
    simulate.add_argument("--prefix", default="", help="topic prefix, e.g. 'reallabor/'")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.set_defaults(func=cmd_simulate)

    profiles = sub.add_parser("profiles", help="device profiles").add_subparsers(dest="action", required=True)
    for name, func, text in (
        ("list", cmd_profiles_list, "ids, families and topic patterns"),
        ("validate", cmd_profiles_validate, "check every profile (exit 2 on error)"),
    ):
        command = profiles.add_parser(name, help=text)
        command.add_argument("dir", type=Path, nargs="?", default=Path("device_profiles"))
        command.set_defaults(func=func)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        code = 130
    return code


if __name__ == "__main__":
    sys.exit(main())
