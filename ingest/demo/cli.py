"""``reallabor up``'s options; light to import (the CLI registers it on every start), the stack itself
is imported only when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ingest.demo.ports import DemoPorts

EXIT_REFUSED = 2
MAX_INGESTERS = 8  # one machine, one process: several show how instances share the stream, not speed


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``up`` on the CLI's subparsers."""
    defaults = DemoPorts()
    up: argparse.ArgumentParser = sub.add_parser(
        "up", help="run the whole product here: broker, InfluxDB, registry, ingester, API, simulated quarter"
    )
    up.add_argument("--simulate", type=int, default=110, metavar="N", help="households to simulate (0: none)")
    up.add_argument("--state-dir", type=Path, default=Path("state/demo"), help="where everything is kept")
    up.add_argument("--interval", type=float, default=5.0, help="seconds between a meter's readings")
    up.add_argument(
        "--through-gateways",
        type=int,
        default=3,
        metavar="N",
        help="the first N gateways with serial meters run the real gateway service: meters through "
        "pseudo-terminals, Wi-Fi and Zigbee devices through a local Mosquitto (default 3; 0: none)",
    )
    up.add_argument(
        "--ingesters",
        type=int,
        default=1,
        metavar="N",
        help="ingester instances sharing the stream, each with its own client id, session, state and "
        "metrics port (default 1; README 'Several ingesters')",
    )
    for name, text in (
        ("mqtt", "MQTT broker"),
        ("influx", "InfluxDB HTTP API (its RPC port is this + 2)"),
        ("api", "API and pages"),
        ("metrics", "the ingester's Prometheus /metrics"),
    ):
        default = getattr(defaults, name)
        up.add_argument(
            f"--{name}-port", type=int, default=default, metavar="PORT", help=f"{text} (default {default})"
        )
    up.set_defaults(func=cmd_up)
    return up


def cmd_up(args: argparse.Namespace) -> int:
    from ingest.demo.stack import run_stack
    from ingest.security.audit import setup_logging

    setup_logging("WARNING")
    for name in ("simulate", "through_gateways", "mqtt_port", "influx_port", "api_port", "metrics_port"):
        value = getattr(args, name)
        if value < 0 or (name.endswith("_port") and not 1 <= value <= 65535):
            print(f"reallabor up: --{name.replace('_', '-')} {value} is out of range", file=sys.stderr)
            return EXIT_REFUSED
    if not 1 <= args.ingesters <= MAX_INGESTERS:
        print(f"reallabor up: --ingesters {args.ingesters}: 1 to {MAX_INGESTERS}", file=sys.stderr)
        return EXIT_REFUSED
    if args.interval < 1:
        print(f"reallabor up: --interval {args.interval:g}: at least 1 s", file=sys.stderr)
        return EXIT_REFUSED
    ports = DemoPorts(
        mqtt=args.mqtt_port, influx=args.influx_port, api=args.api_port, metrics=args.metrics_port
    )
    return run_stack(
        state_dir=args.state_dir,
        households=args.simulate,
        interval_s=args.interval,
        ports=ports,
        through_gateways=args.through_gateways,
        ingesters=args.ingesters,
    )
