"""``reallabor``: the command line. Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or profiles."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.config import COMPONENTS, Component, ConfigError, Settings, load_settings
from ingest.dashboards_cli import add_parser as add_dashboards_parser
from ingest.demo.cli import add_parser as add_up_parser
from ingest.energy.cli import add_parser as add_energy_parser
from ingest.gateway.cli import add_parser as add_gateway_parser
from ingest.letters.cli import add_parser as add_letters_parser
from ingest.lifecycle_cli import add_parser as add_influx_parser
from ingest.opendata.cli import add_parser as add_opendata_parser
from ingest.profiles import ProfileError, load_profiles
from ingest.quarantine_cli import add_parser as add_quarantine_parser
from ingest.security.audit import setup_logging
from ingest.security.files import private_dir

EXIT_CONFIG = 2
REGISTRY_COMMANDS = ("api", "users", "gateways", "broker", "devices", "buildings", "households", "residents")
LAZY_COMMANDS = (*REGISTRY_COMMANDS, "simulate")
CONFIG_ENV = "REALLABOR_CONFIG"
DEMO_CONFIG = Path("state/demo/ingest.yaml")  # written by `reallabor up` (ingest/demo/stack.py)
log = logging.getLogger("reallabor")


def settings_path(given: Path | None) -> tuple[Path | None, str]:
    """The settings file a command that inspects or changes the running system reads, and why.

    ``--config`` if given, else ``$REALLABOR_CONFIG``, else the demo's ``state/demo/ingest.yaml`` if it
    exists (so that ``reallabor quarantine list`` or ``users add`` work against ``reallabor up``), else
    none: the defaults and the ``REALLABOR_*`` environment.
    """
    if given is not None:
        return given, "--config"
    from_env = os.environ.get(CONFIG_ENV, "")
    if from_env:
        return Path(from_env), CONFIG_ENV
    if DEMO_CONFIG.is_file():
        return DEMO_CONFIG, "the demo's, written by reallabor up"
    return None, ""


def find_settings(given: Path | None) -> Settings:
    """:func:`settings_path`'s file loaded (:class:`ConfigError` if bad), saying on stderr which it was."""
    path, why = settings_path(given)
    if path is None:
        print(
            f"reallabor: no settings file (no --config, ${CONFIG_ENV} or {DEMO_CONFIG}): "
            "defaults and REALLABOR_* environment",
            file=sys.stderr,
        )
    else:
        print(f"reallabor: settings from {path} ({why})", file=sys.stderr)
    return load_settings(path)


def _settings(path: Path | None, *components: Component, **overrides: Any) -> Settings:
    """Settings from ``path`` (``overrides`` win, section by key), checked for what ``components`` need in
    production; exit 2 naming the keys."""
    try:
        settings = load_settings(path, **overrides)
        settings.check_production(*components)
        return settings
    except ConfigError as exc:
        print(f"reallabor: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args.file, *(args.components or COMPONENTS))
    print(
        f"{args.file}: ok (mode {settings.mode}, mqtt {settings.mqtt.host}:{settings.mqtt.port}, "
        f"influx {settings.influx.url} api {settings.influx.api})"
    )
    return 0


def instance_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--instance K --of N`` as the settings they override (``ingest.instance``, ``ingest.instances``)."""
    chosen = {
        key: value
        for key, value in (("instance", args.instance), ("instances", args.of))
        if value is not None
    }
    return {"ingest": chosen} if chosen else {}


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.ingester import Ingester
    from ingest.spool import SpoolLocked

    refused = _drain_options_refused(args)
    if refused:
        print(f"reallabor: {refused}", file=sys.stderr)
        return EXIT_CONFIG
    config = args.config
    if args.drain:
        config = config or _drain_settings_file()
        if config is None and not any(name.startswith(MQTT_ENV_PREFIX) for name in os.environ):
            print(
                f"reallabor: --drain needs the instance's settings (--config or {CONFIG_ENV}, or "
                f"{MQTT_ENV_PREFIX}* in the environment as in compose): the defaults would take over the "
                "session of whichever instance has the default client id on the default broker",
                file=sys.stderr,
            )
            return EXIT_CONFIG
    settings = _settings(config, "ingest", **instance_overrides(args)).as_instance()
    setup_logging(settings.ingest.log_level)
    if settings.ingest.instances > 1:  # the instances' directory: made private before they make theirs
        private_dir(settings.state_dirs()[0])
    if args.drain:
        return _drain(
            settings, settle_s=args.settle or DRAIN_SETTLE_S, timeout_s=args.timeout or DRAIN_TIMEOUT_S
        )
    try:
        ingester = Ingester(settings)
    except ProfileError as exc:
        print(f"reallabor: invalid device profiles:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SpoolLocked:
        print(
            f"reallabor: {settings.ingest.state_dir} is in use: another ingester (same --instance K?) is "
            f"running with this state directory",
            file=sys.stderr,
        )
        return EXIT_CONFIG

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, ingester.stop)
        await ingester.run()

    asyncio.run(main())
    return 0


DRAIN_SETTLE_S = 2.0  # ingest.drain.SETTLE_S (not imported: the drain's imports are the ingester's)
DRAIN_TIMEOUT_S = 600.0  # ingest.drain.TIMEOUT_S
DRAIN_MIN_SETTLE_S = 0.2  # ingest.drain.MIN_SETTLE_S
MQTT_ENV_PREFIX = "REALLABOR_MQTT__"


def _drain_settings_file() -> Path | None:
    from_env = os.environ.get(CONFIG_ENV, "")
    return Path(from_env) if from_env else None


def _drain_options_refused(args: argparse.Namespace) -> str | None:
    """Why ``--settle``/``--timeout`` as given make no sense; None when they do."""
    for option, value, least in (
        ("--settle", args.settle, DRAIN_MIN_SETTLE_S),
        ("--timeout", args.timeout, 0),
    ):
        if value is None:
            continue
        if not args.drain:
            return f"{option} is an option of --drain"
        if not (math.isfinite(value) and value > least):
            return f"{option} {value:g}: give a finite number of seconds above {least:g}"
    return None


def _drain(settings: Settings, *, settle_s: float, timeout_s: float) -> int:
    """``ingest --drain``: the one-line JSON report on stdout; the exit code of
    :attr:`ingest.drain.DrainReport.exit_code` (0 retired, 1 not retired, 2 refused, 3 session was lost)."""
    from ingest.drain import run_drain
    from ingest.spool import SpoolLocked

    client_id = settings.mqtt.client_id
    try:
        report = run_drain(settings, settle_s=settle_s, timeout_s=timeout_s)
    except ProfileError as exc:
        print(f"reallabor: invalid device profiles:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SpoolLocked as exc:  # the instance itself is running: two clients would fight for the session
        print(f"reallabor: {exc}: stop instance {client_id} before draining it", file=sys.stderr)
        return 1
    print(report.line(), flush=True)
    if report.login_refused:
        print(
            f"reallabor: {report.stopped}: check mqtt.username ({settings.mqtt.username or 'none'}) and "
            f"mqtt.password, the account bound to client id {client_id} (README Several ingesters)",
            file=sys.stderr,
        )
    elif not report.retired:
        why = report.stopped or f"spool records left: {report.spool_left}"
        if report.stopped == "timeout":
            why = (
                f"not drained within --timeout {timeout_s:g} s (InfluxDB or the broker away?): "
                f"{report.spool_left} spool records (batches) left"
            )
        print(
            f"reallabor: {client_id} not retired ({why}); its session stays: run the drain again",
            file=sys.stderr,
        )
    elif report.session_lost:
        print(
            f"reallabor: WARNING: the broker no longer held the session of {client_id} (it expired after "
            f"mqtt.session_expiry_s, or the broker lost it): what it had queued for this instance is lost; "
            "retired all the same (there is nothing left to retire)",
            file=sys.stderr,
        )
    return report.exit_code


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


EXIT_REJECTED = 3


def _rfc3339(time_ns: int) -> str:
    seconds, fraction = divmod(time_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}".rstrip("0") + "Z" if fraction else f"{stamp}Z"


def _payload(source: str, *, as_hex: bool) -> bytes:
    data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    if as_hex:
        data = bytes.fromhex(re.sub(r"0[xX]|[\s:,]", "", data.decode("ascii")))
    return data


def cmd_profiles_decode(args: argparse.Namespace) -> int:
    from ingest.decode import MessageDecoder
    from ingest.readings import DecodeRejected

    try:
        profiles = load_profiles(args.dir)
        payload = _payload(args.file, as_hex=args.hex)
    except ProfileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, ValueError) as exc:  # unreadable file, not a hex dump
        print(f"reallabor: cannot read the payload: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.profile is not None and args.profile not in profiles.by_id:
        known = ", ".join(sorted(profiles.by_id))
        print(f"reallabor: unknown profile {args.profile!r} (known: {known})", file=sys.stderr)
        return EXIT_CONFIG
    if args.profile is None and args.topic is None:
        print("reallabor: give --topic (to choose the profile) or --profile", file=sys.stderr)
        return EXIT_CONFIG
    decoder = MessageDecoder(profiles)
    received_ns = time.time_ns()
    try:
        if args.profile is None:
            readings = decoder.decode(args.topic, payload, received_ns)
        else:
            profile = profiles.by_id[args.profile]
            topic = args.topic or ""
            matches = (template.match(topic) for template in profile.templates)
            bindings = next((found for found in matches if found is not None), {})
            readings = decoder.decode_with(profile, topic, payload, received_ns, bindings)
    except DecodeRejected as exc:
        print(json.dumps({"rejected": {"reason": exc.reason, "detail": exc.detail}}))
        return EXIT_REJECTED
    rendered = [
        {
            "measurement": r.measurement,
            "time": _rfc3339(r.time_ns),
            "time_source": r.time_source,
            "tags": r.tags,
            "fields": r.fields,
        }
        for r in readings
    ]
    print(json.dumps({"readings": rendered}, ensure_ascii=False))
    return 0


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="reallabor",
        description="The Reallabor sensor ingestion: broker to InfluxDB, registry, pages, simulator. "
        "Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage.",
    )
    root.add_argument("--version", action=_Version, help="print the version and exit")
    sub = root.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="configuration").add_subparsers(dest="action", required=True)
    check = config.add_parser("check", help="validate a settings file (exit 2 on error)")
    check.add_argument("file", type=Path, help="the settings YAML to check")
    check.add_argument(
        "--for",
        dest="components",
        action="append",
        choices=COMPONENTS,
        help="check the production secrets of this part only (repeatable; default: every part)",
    )
    check.set_defaults(func=cmd_config_check)

    ingest = sub.add_parser("ingest", help="run the ingester")
    ingest.add_argument("--config", type=Path, help="settings YAML (REALLABOR_* env overrides it)")
    ingest.add_argument(
        "--instance",
        type=int,
        metavar="K",
        help="run as instance K (0 to N-1) of several sharing the stream (overrides ingest.instance)",
    )
    ingest.add_argument(
        "--of",
        type=int,
        metavar="N",
        help="N instances share the stream (overrides ingest.instances); see README 'Several ingesters'",
    )
    ingest.add_argument(
        "--drain",
        action="store_true",
        help="retire this instance without loss: take its session, unsubscribe, write what it held, end the "
        "session; prints a JSON summary. Needs the instance's settings (--config or REALLABOR_CONFIG). Exit "
        "0 retired; 1 not retired, the session stays (timeout, interrupted, the instance still running "
        "elsewhere): run it again; 2 bad settings or login refused; 3 retired, but the broker had lost the "
        "session (expired): what it had queued is lost",
    )
    ingest.add_argument(
        "--settle",
        type=float,
        metavar="S",
        help="--drain: the session is empty when all was written and nothing came for S seconds (default 2, "
        "above 0.2)",
    )
    ingest.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="--drain: give up after S seconds, keeping the session, exit 1 (default 600)",
    )
    ingest.set_defaults(func=cmd_ingest)

    add_up_parser(sub)

    add_quarantine_parser(sub)

    add_dashboards_parser(sub)  # httpx is imported by `dashboards push` only

    add_influx_parser(sub)

    add_energy_parser(sub)  # reallabor energy rollup|run (ingest/energy)

    add_opendata_parser(sub)  # reallabor opendata export|run (ingest/opendata)

    add_letters_parser(sub)  # typst and pypdf are imported when letters are made

    add_gateway_parser(sub)  # reallabor gateway run|check: the service imported by `run` only

    profiles = sub.add_parser("profiles", help="device profiles").add_subparsers(dest="action", required=True)
    for name, func, text in (
        ("list", cmd_profiles_list, "ids, families and topic patterns"),
        ("validate", cmd_profiles_validate, "check every profile (exit 2 on error)"),
    ):
        command = profiles.add_parser(name, help=text)
        command.add_argument(
            "dir", type=Path, nargs="?", default=Path("device_profiles"), help="default: device_profiles"
        )
        command.set_defaults(func=func)
    decode = profiles.add_parser(
        "decode", help="decode one payload: readings JSON (exit 0) or the rejection (exit 3)"
    )
    decode.add_argument("file", metavar="FILE|-", help="the payload; - reads standard input")
    decode.add_argument("--profile", help="profile id (default: chosen from --topic)")
    decode.add_argument(
        "--topic",
        help="the topic the payload arrived on, e.g. lab/gw-01/sml/hh-001; with --profile it must fit one of "
        "the profile's topic templates (else rejected: topic_mismatch)",
    )
    decode.add_argument("--hex", action="store_true", help="the payload is a hex dump of binary data")
    decode.add_argument("--dir", type=Path, default=Path("device_profiles"), help="profile directory")
    decode.set_defaults(func=cmd_profiles_decode)
    _add_lazy_commands(sub, sys.argv[1:] if argv is None else argv)
    return root


def _add_lazy_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], argv: list[str]) -> None:
    """The registry and simulator commands, when ``argv`` may need them.

    They pull in SQLAlchemy, Alembic, argon2 and FastAPI, the simulator pandas and pvlib (together 1 s
    of imports), so `reallabor ingest` and the other commands above do without them. The overview
    (``reallabor``, ``-h``) and an unknown command (whose error lists every command) get them all.
    """
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    if first in sub.choices or (first is None and "--version" in argv):
        return
    if first is None or first not in LAZY_COMMANDS or first in REGISTRY_COMMANDS:
        from ingest.registry.cli import add_subcommands

        add_subcommands(sub)
    if first is None or first not in LAZY_COMMANDS or first == "simulate":
        from simulators.cli import add_parser as add_simulate_parser

        add_simulate_parser(sub)


class _Version(argparse.Action):
    """``--version``: the installed package's version (read only when asked)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=str(kwargs["help"]))

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("reallabor-ingest")
        except PackageNotFoundError:  # run from a source tree that is not installed
            found = "unknown (not installed)"
        print(f"reallabor {found}")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    root = parser(argv)
    if not (sys.argv[1:] if argv is None else argv):  # `reallabor` alone: what it can do
        root.print_help(sys.stderr)
        return EXIT_CONFIG
    args = root.parse_args(argv)
    if args.command in REGISTRY_COMMANDS and args.command != "api":  # the api sets up its own
        setup_logging("WARNING")  # warnings, and the audit trail of users, gateways and imports
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        code = 130
    return code


if __name__ == "__main__":
    sys.exit(main())
