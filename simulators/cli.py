"""``reallabor simulate``: the quarter simulator on the command line.

    reallabor simulate --households 110 --speed 60 --faults offline=0.01,dup=0.001 --seed 1
    reallabor simulate --backfill --days 365 --truth state/sim/truth.csv        # a year, as fast as it goes
    reallabor simulate --backfill --days 365 --sink decode                      # no broker: decode stage

Modes: real time (``--speed 1``, the default), accelerated (``--speed 60``: an hour a minute), backfill
(``--backfill``: as fast as the sink takes it). Same ``--seed`` and ``--start``: the same messages.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulators.drive import Sink, Status, drive
from simulators.engine import Periods, Simulation
from simulators.faults import FaultSpec, FaultSpecError, FaultState
from simulators.publisher import Publisher, PublishError
from simulators.quarter import make_quarter
from simulators.sinks import DecodeSink, MqttSink, NullSink
from simulators.truth import GroundTruth

log = logging.getLogger(__name__)


def _start(text: str | None, *, backfill: bool, days: float | None, interval: int) -> int:
    if text:
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        start = int(parsed.timestamp())
    elif backfill:  # the days up to the last midnight (UTC)
        midnight = int(time.time()) // 86400 * 86400
        start = midnight - int((days or 365) * 86400)
    else:
        start = int(time.time())
    return start - start % interval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="the MQTT broker (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="the broker's port (default 1883)")
    parser.add_argument("--prefix", default="", help="topic prefix before lab/…, e.g. 'reallabor/'")
    parser.add_argument("--households", type=int, default=110, help="housing units to simulate (default 110)")
    parser.add_argument(
        "--seed", type=int, default=1, help="the same seed gives the same quarter and readings"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per second (60: an hour a minute)"
    )
    parser.add_argument("--backfill", action="store_true", help="as fast as possible (history, benchmarks)")
    parser.add_argument(
        "--start", help="simulated start, ISO 8601 (default: now; backfill: --days before midnight)"
    )
    parser.add_argument(
        "--days", type=float, help="simulated days to run (default: until Ctrl-C; backfill: 365)"
    )
    parser.add_argument(
        "--interval", type=int, help="seconds between meter readings (default 10; backfill 900)"
    )
    parser.add_argument("--faults", default="", help="e.g. offline=0.01,dup=0.001,skew=0.05,malformed=0.001")
    parser.add_argument(
        "--sink",
        choices=("mqtt", "decode", "null"),
        default="mqtt",
        help="publish to the broker, decode in-process, or only count (default mqtt)",
    )
    parser.add_argument("--truth", type=Path, help="write the ground truth here (.csv and .json)")
    parser.add_argument("--no-heat", action="store_true", help="no heat meters")
    parser.add_argument("--window", type=int, default=1000, help="QoS 1 messages in flight")
    parser.add_argument("--quiet", action="store_true", help="no status line")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``simulate`` on the CLI's subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "simulate", help="the quarter simulator: households, devices, faults, ground truth"
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        spec = FaultSpec.parse(args.faults)
    except FaultSpecError as exc:
        print(f"reallabor simulate: --faults: {exc}", file=sys.stderr)
        return 2
    interval = args.interval or (900 if args.backfill else 10)
    days = args.days if args.days is not None else (365.0 if args.backfill else None)
    start = _start(args.start, backfill=args.backfill, days=days, interval=interval)
    until = start + int(days * 86400) if days is not None else 2**62
    quarter = make_quarter(args.households, seed=args.seed)
    periods = (
        Periods(climate=max(300.0, interval), street=max(600.0, interval)) if args.backfill else Periods()
    )
    sim = Simulation(
        quarter,
        start_s=start,
        interval_s=interval,
        faults=FaultState(spec, seed=args.seed),
        periods=periods,
        heat=not args.no_heat,
    )
    truth = GroundTruth(quarter) if args.truth else None
    status = None if args.quiet else Status()
    speed = None if args.backfill else args.speed
    log.info(
        "simulating %d households in %d buildings from %s, every %d s, speed %s, faults %s, seed %d",
        len(quarter.households), len(quarter.gateways),
        dt.datetime.fromtimestamp(start, dt.UTC).isoformat(), interval,
        "max" if speed is None else f"{speed:g}", spec, args.seed,
    )  # fmt: skip
    try:
        if args.sink == "mqtt":
            client_id = f"reallabor-sim-{args.seed}"
            with Publisher(args.host, args.port, client_id=client_id, window=args.window) as publisher:
                code = _run(sim, MqttSink(publisher, prefix=args.prefix), until, speed, truth, status)
                publisher.flush()
        else:
            sink: Sink = DecodeSink() if args.sink == "decode" else NullSink()
            code = _run(sim, sink, until, speed, truth, status)
            if isinstance(sink, DecodeSink):
                log.info("decoded %d, rejected %s", sink.accepted, dict(sink.reasons) or 0)
    except PublishError as exc:
        print(f"reallabor simulate: {exc}", file=sys.stderr)
        return 1
    if truth is not None:
        truth.write(args.truth)
        log.info("ground truth written to %s", args.truth)
    return code


def _run(
    sim: Simulation,
    sink: Sink,
    until: int,
    speed: float | None,
    truth: GroundTruth | None,
    status: Status | None,
) -> int:
    try:
        result = drive(sim, sink, until_s=until, speed=speed, truth=truth, status=status)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        log.info("interrupted at %s", dt.datetime.fromtimestamp(sim.time_s, dt.UTC).isoformat())
        return 0
    if status is not None:
        print(file=sys.stderr)
    rate = result.delivered / result.elapsed_s if result.elapsed_s else 0.0
    log.info(
        "%d messages (%d malformed) in %.1f s, %.0f msg/s; per family %s; swaps %d, bursts %d",
        result.delivered, result.malformed, result.elapsed_s, rate, dict(result.by_family),
        sim.faults.swaps, sim.faults.bursts,
    )  # fmt: skip
    return 0


BACKFILL_INTERVAL_S = 900  # a gateway's outbox catching up: a reading per quarter hour


def publish_realtime(
    *,
    host: str,
    port: int,
    households: int,
    interval_s: float,
    stop: threading.Event,
    seed: int = 1,
    building_size: int | None = None,
    sink: Sink | None = None,
    backfill_from: int | None = None,
    before_live: Callable[[], None] | None = None,
) -> None:
    """The quarter in real time until ``stop`` (``reallabor up``): no faults, no status line.

    ``sink``: where the messages go, e.g. :class:`simulators.gateways.GatewaySink` through each
    gateway's own broker account (default: one anonymous client).
    ``backfill_from``: first the readings since then, a quarter hour apart, as fast as the broker takes
    them (what the gateways' outboxes would send after an outage); the meters' counters are functions of
    time, so the history and the live readings agree.
    ``before_live``: called after the history, before the first live reading (the demo starts its
    gateway hosts there).
    """
    interval = max(1, round(interval_s))
    start = int(time.time()) // interval * interval
    quarter = make_quarter(households, seed=seed, building_size=building_size)
    with contextlib.ExitStack() as stack:
        if sink is None:
            publisher = stack.enter_context(Publisher(host, port, client_id="reallabor-demo-quarter"))
            out: Sink = MqttSink(publisher)
        else:
            out = sink
        first = start - start % BACKFILL_INTERVAL_S
        if backfill_from is not None and backfill_from < first:
            # each reading 1 s before its quarter hour ends, the first one just before backfill_from's: the
            # energy ledger books an increment in the bucket of its later reading, so readings stamped on
            # the boundaries would put every quarter hour's energy into the next one (and the last into the
            # live quarter hour, twice its energy on /ops and /quarter)
            history = Simulation(
                quarter,
                start_s=backfill_from - backfill_from % BACKFILL_INTERVAL_S - BACKFILL_INTERVAL_S - 1,
                interval_s=BACKFILL_INTERVAL_S,
                faults=FaultState(FaultSpec(), seed=seed),
                periods=Periods(climate=BACKFILL_INTERVAL_S, street=BACKFILL_INTERVAL_S),
            )
            drive(history, out, until_s=first - 1, stop=stop)
        if before_live is not None and not stop.is_set():
            before_live()
        sim = Simulation(
            quarter, start_s=start, interval_s=interval, faults=FaultState(FaultSpec(), seed=seed)
        )
        drive(sim, out, until_s=2**62, speed=1.0, stop=stop)
