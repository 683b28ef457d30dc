"""Scale-out benchmark: 1, 2 and 3 ingester instances sharing one stream through an MQTT 5 shared
subscription, side by side in one run, with the broker's own limit (``mosquitto_sub``) as the baseline.
The last line is one JSON object::

    .venv/bin/python -m bench.scale                        # 200,000 messages per drain, 5,000 msg/s live
    .venv/bin/python -m bench.scale --messages 500000 --rate 10000 --rounds 2
    .venv/bin/python -m bench.scale --instances 1,3 --rate 0   # drains only

Everything runs on 127.0.0.1: Mosquitto and InfluxDB 1.6 from ``ingest.localservices`` in a temp dir, the
bench workload and registry of ``bench.ingest`` (110 households x 4 Tasmota meter readers, one point per
message, enrichment on). Per N:

drain     every instance (own client id ``...-<K>``, own state dir, one ``mqtt.shared_group``) creates its
          persistent session and stops; ``--messages`` are published (the broker deals them round-robin
          over the N sessions and queues them); all N are started at once and the clock runs from the
          first process start until ``count(power_w)`` in InfluxDB equals the messages published.
live      the same N instances then take paced publishing at ``--rate`` msg/s; after a warm-up the CPU
          of every process is measured over ``--window`` s (skipped with ``--rate 0``).
cost      CPU = utime + stime from /proc/<pid>/stat: the ingesters (summed), Mosquitto (while the backlog
          is published, and while it is delivered) and influxd, each per message; "per core" figures are
          messages (or points) per CPU second, what one fully used core would do.
limit     the same backlog drained by ``mosquitto_sub -c -q 1 -C N`` (bench.ingest.broker_limit): what the
          broker delivers to one C client on this machine; broker CPU there includes the publishing.

The machine's cores are shared by the publishers, the broker, InfluxDB and every instance: on 2 cores
more instances cannot add cores, so the figure to carry into a capacity model is CPU per message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.ingest import Bench, broker_limit, log, machine, publish_backlog, start_stop
from bench.systems import (
    BenchError,
    Influx,
    IngesterSystem,
    cpu_seconds,
    discard_session,
    loadavg,
    setting_overrides,
)
from bench.workload import Publishers, paced_jobs
from ingest.config import instance_name
from ingest.localservices import InfluxDB, Mosquitto

SHARED_GROUP = "bench-scale"
LIVE_PUBLISHERS = 1  # one WirePublisher process passes ~100k msg/s here (docs/performance.md)
POLL_S = 0.5


class ScaleInstance(IngesterSystem):
    """``reallabor ingest --instance K --of N``: the instance derives its identity from the common settings
    (client id ``<mqtt.client_id>-K``, state ``<state_dir>/instance-K``, metrics ``metrics_port + K``); the
    shared group is set even for N = 1, so every N takes the same subscription path in the broker."""

    def __init__(self, directory: Path, *, instance: int, of: int, group: str, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.instance, self.of = instance, of
        base = self.client_id
        self.client_id = instance_name(base, instance) if of > 1 else base  # its session, to discard
        mqtt = {**self.overrides.get("mqtt", {}), "shared_group": group, "client_id": base}
        # it listens on metrics_port + K: this object reads self.metrics_port (a free port)
        port = self.metrics_port - instance if of > 1 else self.metrics_port
        ingest = {**self.overrides.get("ingest", {}), "metrics_port": port}
        self.overrides = {**self.overrides, "mqtt": mqtt, "ingest": ingest}

    def command(self) -> list[str]:
        return [*super().command(), "--instance", str(self.instance), "--of", str(self.of)]


def instances(bench: Bench, directory: Path, database: str, prefix: str, count: int) -> list[ScaleInstance]:
    return [
        ScaleInstance(
            directory / f"instance-{k}",
            instance=k,
            of=count,
            group=SHARED_GROUP,
            mqtt_port=bench.mosquitto.port,
            influx_url=bench.influxdb.url,
            database=database,
            prefix=prefix,
            registry_url=bench.registry_url,
            overrides=bench.args.overrides,
        )
        for k in range(count)
    ]


class CpuClock:
    """CPU seconds of named processes since :meth:`reset` (ingesters summed)."""

    def __init__(self, pids: Callable[[], dict[str, list[int]]]) -> None:
        self._pids = pids
        self._start: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self._pids().items()}

    def reset(self) -> None:
        self._start = self.read()

    def since(self) -> dict[str, float]:
        now = self.read()
        return {name: now[name] - self._start.get(name, 0.0) for name in now}


def per_message_us(cpu_s: float, messages: int) -> float | None:
    return round(cpu_s / messages * 1e6, 2) if messages > 0 else None


def per_cpu_second(messages: int, cpu_s: float) -> float | None:
    return round(messages / cpu_s) if cpu_s > 0 else None


# drain ---------------------------------------------------------------------------------------------------


@dataclass
class Live:
    rate: int
    window_s: float
    achieved_msg_per_s: float = 0.0  # received by the instances over the window
    kept_up: bool = False  # received >= 95 % of the rate and the backlog at the end under a second's worth
    backlog_end: int = 0
    cpu_percent: dict[str, float] = field(default_factory=dict)  # of one core, over the window
    ingester_cpu_us_per_msg: float | None = None
    broker_cpu_us_per_msg: float | None = None  # accepting from the publishers and delivering
    influxdb_cpu_us_per_point: float | None = None
    load_before: float = 0.0


@dataclass
class ScaleRun:
    instances: int
    messages: int
    written: int = 0
    lost: int = 0  # published (drain + live) minus points in InfluxDB after settling
    complete: bool = False
    seconds: float = 0.0  # first process start -> every drained point in InfluxDB
    msg_per_s: float = 0.0
    first_point_s: float | None = None
    msg_per_s_after_first_point: float | None = None  # also InfluxDB's points/s while it is fed
    publish_msg_per_s: float = 0.0
    client_ids: list[str] = field(default_factory=list)
    received_per_instance: list[int] = field(default_factory=list)  # drain: each instance's share
    received_total: int = 0  # over all phases, from the instances' /metrics: accounting
    written_total: int = 0
    quarantined_total: int = 0
    ingester_cpu_s: float = 0.0  # all instances, process start to the last point (start-up included)
    ingester_startup_cpu_s: float = (
        0.0  # what the same instances spent starting and stopping with no messages
    )
    ingester_cpu_us_per_msg: float | None = None  # start-up taken out
    ingester_msg_per_cpu_s: float | None = None  # messages per second per fully used ingester core
    ingester_cores_used: float = 0.0  # ingester CPU s / drain wall s
    broker_cpu_us_per_msg_publish: float | None = None  # while the backlog was published (no subscriber)
    broker_cpu_us_per_msg_deliver: float | None = None  # while it was delivered to the instances
    influxdb_cpu_us_per_point: float | None = None
    influxdb_points_per_cpu_s: float | None = None  # points per second per fully used influxd core
    cpu_percent: dict[str, float] = field(default_factory=dict)  # during the drain, of one core
    live: Live | None = None
    load_before: float = 0.0
    note: str = ""


def run_instances(
    bench: Bench, n: int, *, count: int, rate: int, warmup_s: float, window_s: float, settle_s: float
) -> ScaleRun:
    directory, database, prefix = bench.fresh(f"scale{n}")
    systems = instances(bench, directory, database, prefix, n)
    result = ScaleRun(
        instances=n, messages=count, client_ids=[s.client_id for s in systems], load_before=loadavg()
    )
    services = bench.service_pids()
    clock = CpuClock(
        lambda: {
            "ingesters": [s.pid for s in systems if s.process is not None],
            "broker": [services["broker"]],
            "influxdb": [services["influxdb"]],
        }
    )
    with ThreadPoolExecutor(n) as pool:  # each creates its persistent session (shared subscription), stops
        list(pool.map(start_stop, systems))
    # the interpreter's start (imports, settings, profiles) costs as much as tens of thousands of messages:
    # measured here, where no message is queued yet, and taken out of the per-message figures
    startup_cpu = sum(s.cpu_at_exit for s in systems)
    clock.reset()
    result.publish_msg_per_s = round(publish_backlog(bench, prefix, count))
    broker_publish = clock.since()["broker"]
    result.broker_cpu_us_per_msg_publish = per_message_us(broker_publish, count)
    log(f"{n} instance(s): {count:,} messages queued ({result.publish_msg_per_s:,} msg/s); starting them")
    time.sleep(settle_s)  # let the machine settle after publishing
    clock.reset()
    try:
        for system in systems:
            system.start(wait_ready=False)
        launched = min(s.launched_at for s in systems)
        written, first, at_first, done, last_progress, last_written = 0, 0.0, 0, 0.0, time.monotonic(), -1
        cap_s = 300 + count / 1_000
        while True:
            time.sleep(POLL_S)
            written, now = bench.influx.count(database), time.monotonic()
            if written > 0 and not first:
                first, at_first = now, written
            if written >= count:
                done = now
                break
            if written != last_written:
                last_progress, last_written = now, written
            exited = [s for s in systems if s.process is not None and s.process.poll() is not None]
            if exited:
                result.note = f"instance {exited[0].instance} exited with {exited[0].process.returncode}"  # type: ignore[union-attr]
                break
            if now - launched > cap_s or now - last_progress > 60:
                result.note = f"capped at {cap_s:.0f} s" if now - launched > cap_s else "stalled for 60 s"
                break
        end = done or time.monotonic()
        spent = clock.since()
        result.written, result.complete = written, bool(done)
        result.seconds = round(end - launched, 2)
        result.msg_per_s = round(written / result.seconds, 1)
        result.first_point_s = round(first - launched, 2) if first else None
        if first and end - first > 1:
            result.msg_per_s_after_first_point = round((written - at_first) / (end - first), 1)
        result.received_per_instance = [int(metrics_of(s)["received_total"]) for s in systems]
        result.ingester_cpu_s = round(spent["ingesters"], 2)
        result.ingester_startup_cpu_s = round(startup_cpu, 2)
        net = max(spent["ingesters"] - startup_cpu, 0.0)
        result.ingester_cpu_us_per_msg = per_message_us(net, written)
        result.ingester_msg_per_cpu_s = per_cpu_second(written, net)
        result.ingester_cores_used = round(spent["ingesters"] / (end - launched), 2)
        result.broker_cpu_us_per_msg_deliver = per_message_us(spent["broker"], written)
        result.influxdb_cpu_us_per_point = per_message_us(spent["influxdb"], written)
        result.influxdb_points_per_cpu_s = per_cpu_second(written, spent["influxdb"])
        result.cpu_percent = {name: round(100 * cpu / (end - launched), 1) for name, cpu in spent.items()}
        published = count
        if rate and not result.note:
            result.live, live_published = live(bench, systems, clock, prefix, rate, warmup_s, window_s)
            published += live_published
        settle(bench, database, published)
        for system in systems:
            metrics = metrics_of(system)
            result.received_total += int(metrics["received_total"])
            result.written_total += int(metrics["written_total"])
            result.quarantined_total += int(
                sum(value for key, value in metrics.items() if key.startswith("quarantined_total"))
            )
        result.lost = published - bench.influx.count(database)
    finally:
        with ThreadPoolExecutor(n) as pool:  # each waits for its spool to be written: at once, not in turn
            list(pool.map(lambda system: system.stop(), systems))
        for system in systems:
            discard_session(bench.mosquitto.port, system.client_id)  # no leftover queue for later phases
    log(f"{n} instance(s): {result}")
    return result


def metrics_of(system: IngesterSystem) -> dict[str, float]:
    deadline = time.monotonic() + 10
    while True:  # /metrics is up a moment after the process start
        try:
            return system.metrics()
        except (httpx.HTTPError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def settle(bench: Bench, database: str, expected: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while bench.influx.count(database) < expected and time.monotonic() < deadline:
        time.sleep(POLL_S)


def live(
    bench: Bench,
    systems: list[ScaleInstance],
    clock: CpuClock,
    prefix: str,
    rate: int,
    warmup_s: float,
    window_s: float,
) -> tuple[Live, int]:
    """Paced publishing at ``rate`` to the running instances; CPU over the window after the warm-up."""
    result = Live(rate=rate, window_s=window_s, load_before=loadavg())

    def received() -> int:
        return sum(int(metrics_of(s)["received_total"]) for s in systems)

    def written() -> int:
        return sum(int(metrics_of(s)["written_total"]) for s in systems)

    before_written = written()
    publishers = Publishers(
        paced_jobs(
            bench.mosquitto.port, prefix, rate, workers=LIVE_PUBLISHERS, seconds=warmup_s + window_s + 1
        )
    ).start()
    try:
        deadline = time.monotonic() + 60
        while not publishers.published and time.monotonic() < deadline:  # spawned processes start slowly
            time.sleep(0.05)
        time.sleep(warmup_s)
        clock.reset()
        got, started = received(), time.monotonic()
        time.sleep(window_s)
        spent, got, elapsed = clock.since(), received() - got, time.monotonic() - started
        result.backlog_end = publishers.published - (written() - before_written)
        publishers.join(timeout=60)
    finally:
        publishers.stop()
    result.achieved_msg_per_s = round(got / elapsed, 1)
    result.kept_up = result.achieved_msg_per_s >= 0.95 * rate and result.backlog_end <= max(2_000, rate)
    result.cpu_percent = {name: round(100 * cpu / elapsed, 1) for name, cpu in spent.items()}
    result.ingester_cpu_us_per_msg = per_message_us(spent["ingesters"], got)
    result.broker_cpu_us_per_msg = per_message_us(spent["broker"], got)
    result.influxdb_cpu_us_per_point = per_message_us(spent["influxdb"], got)
    log(f"{len(systems)} instance(s) live: {result}")
    return result, publishers.published


# limit and summary ---------------------------------------------------------------------------------------


def limit(bench: Bench, count: int) -> dict[str, Any]:
    """bench.ingest's mosquitto_sub drain, with the broker's CPU around it (publishing included)."""
    broker = bench.service_pids()["broker"]
    before = cpu_seconds(broker)
    drained = broker_limit(bench, count=count)
    return {
        **asdict(drained),
        "broker_cpu_us_per_msg_publish_and_deliver": per_message_us(cpu_seconds(broker) - before, count),
    }


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def summarize(runs: list[ScaleRun], limit_msg_per_s: float) -> dict[str, Any]:
    """Medians over the rounds for one N."""

    def pick(key: str) -> float | None:
        return median([getattr(r, key) for r in runs])

    lives = [r.live for r in runs if r.live is not None]
    msg_per_s = pick("msg_per_s") or 0.0
    return {
        "rounds": len(runs),
        "msg_per_s": msg_per_s,
        "msg_per_s_range": [min(r.msg_per_s for r in runs), max(r.msg_per_s for r in runs)],
        "of_broker_limit": round(msg_per_s / limit_msg_per_s, 2) if limit_msg_per_s else None,
        "msg_per_s_after_first_point": pick("msg_per_s_after_first_point"),
        "influxdb_points_per_s": pick("msg_per_s_after_first_point"),
        "ingester_cpu_us_per_msg": pick("ingester_cpu_us_per_msg"),
        "ingester_msg_per_cpu_s": pick("ingester_msg_per_cpu_s"),
        "ingester_cores_used": pick("ingester_cores_used"),
        "broker_cpu_us_per_msg_publish": pick("broker_cpu_us_per_msg_publish"),
        "broker_cpu_us_per_msg_deliver": pick("broker_cpu_us_per_msg_deliver"),
        "influxdb_cpu_us_per_point": pick("influxdb_cpu_us_per_point"),
        "influxdb_points_per_cpu_s": pick("influxdb_points_per_cpu_s"),
        "live_kept_up": all(live.kept_up for live in lives) if lives else None,
        "live_ingester_cpu_us_per_msg": median([live.ingester_cpu_us_per_msg for live in lives]),
        "live_broker_cpu_us_per_msg": median([live.broker_cpu_us_per_msg for live in lives]),
        "live_influxdb_cpu_us_per_point": median([live.influxdb_cpu_us_per_point for live in lives]),
        "lost": sum(r.lost for r in runs),
        "complete": all(r.complete for r in runs),
    }


def table(result: dict[str, Any]) -> str:
    def n0(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    rows = [
        ("", "drain", "w/o", "of", "ingester", "msg/s per", "ingester", "broker", "influxd", "points/s per",
         "live", "live", ""),
        ("N", "msg/s", "start-up", "limit", "µs/msg", "ingester core", "cores", "µs/msg¹", "µs/point",
         "influxd core", "kept", "µs/msg²", "lost"),
    ]  # fmt: skip
    for n, s in result["by_instances"].items():
        broker = (s["broker_cpu_us_per_msg_publish"] or 0) + (s["broker_cpu_us_per_msg_deliver"] or 0)
        rows.append(
            (n, n0(s["msg_per_s"]), n0(s["msg_per_s_after_first_point"]), str(s["of_broker_limit"]),
             str(s["ingester_cpu_us_per_msg"]), n0(s["ingester_msg_per_cpu_s"]),
             str(s["ingester_cores_used"]), f"{broker:.1f}", str(s["influxdb_cpu_us_per_point"]),
             n0(s["influxdb_points_per_cpu_s"]),
             {True: "yes", False: "no", None: "-"}[s["live_kept_up"]],
             str(s["live_ingester_cpu_us_per_msg"]), str(s["lost"]))
        )  # fmt: skip
    lim = result["broker_limit"]
    rows.append(
        ("C sub", n0(lim["msg_per_s"]), "", "1.0", str(lim["cpu_us_per_msg"]), "", "",
         str(lim["broker_cpu_us_per_msg_publish_and_deliver"]), "", "", "", "", "")
    )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.append("¹ Mosquitto's CPU per message while the backlog was published plus while it was delivered")
    lines.append(f"² the instances' CPU per message received at {result['live_rate']:,} msg/s live")
    lines.append("C sub: mosquitto_sub -c -q 1 -C N (its own CPU; the broker's includes publishing)")
    return "\n".join(lines)


# main ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000, help="drain size per N (default 200,000)")
    parser.add_argument(
        "--instances",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2, 3],
        help="instance counts to compare, comma-separated (default 1,2,3)",
    )
    parser.add_argument("--rate", type=int, default=5_000, help="live msg/s after each drain (0: none)")
    parser.add_argument("--warmup", type=float, default=3.0, help="live warm-up, s")
    parser.add_argument("--window", type=float, default=10.0, help="live measuring window, s")
    parser.add_argument("--settle", type=float, default=2.0, help="pause after publishing a backlog, s")
    parser.add_argument("--rounds", type=int, default=1, help="runs per N, the order reversed each round")
    parser.add_argument("--no-enrich", action="store_true", help="registry enrichment off (default: on)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=YAML")
    parser.add_argument("--workdir", type=Path, help="parent of the temp dir (default: system temp)")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error(f"--messages must be at least 1, not {args.messages}")
    if not args.instances or any(n < 1 for n in args.instances):
        parser.error(f"--instances must be counts of 1 or more, not {args.instances}")
    if args.rate < 0 or args.rounds < 1 or args.window <= 0 or args.warmup < 0 or args.settle < 0:
        parser.error("--rate >= 0, --rounds >= 1, --window > 0, --warmup >= 0 and --settle >= 0")
    try:
        args.overrides = setting_overrides(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "bench": "scale",
        "messages": args.messages,
        "instances": args.instances,
        "live_rate": args.rate,
        "rounds": args.rounds,
        "shared_group": SHARED_GROUP,
        "registry_enrichment": not args.no_enrich,
        "machine": machine(),
        "load_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }
    runs: dict[int, list[ScaleRun]] = {n: [] for n in args.instances}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-", dir=args.workdir)))
        mosquitto = stack.enter_context(Mosquitto(workdir / "mosquitto"))
        influxdb = stack.enter_context(InfluxDB(workdir / "influxdb"))
        influx = Influx(influxdb.url)
        stack.callback(influx.close)
        bench = Bench(workdir, mosquitto, influxdb, influx, args)
        if not args.no_enrich:
            # imported here: every spawned publisher process imports this module again, and the registry
            # (SQLAlchemy, alembic, argon2) would cost each of them ~0.6 s CPU
            from bench.registry_seed import seed_registry

            bench.registry_url = seed_registry(workdir / "registry.db", extra=[])
        for round_ in range(args.rounds):
            for n in args.instances if round_ % 2 == 0 else reversed(args.instances):
                runs[n].append(
                    run_instances(
                        bench,
                        n,
                        count=args.messages,
                        rate=args.rate,
                        warmup_s=args.warmup,
                        window_s=args.window,
                        settle_s=args.settle,
                    )
                )
        result["broker_limit"] = limit(bench, args.messages)
    limit_rate = result["broker_limit"]["msg_per_s"]
    result["by_instances"] = {str(n): summarize(runs[n], limit_rate) for n in args.instances}
    result["lost"] = sum(s["lost"] for s in result["by_instances"].values())
    result["runs"] = {str(n): [asdict(r) for r in runs[n]] for n in args.instances}
    result["load_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    log(f"bench.scale: instances {args.instances}, {args.messages:,} messages per drain, live {args.rate}/s")
    try:
        result = run(args)
    except BenchError as exc:
        sys.exit(f"bench.scale: {exc}")
    print(table(result))
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
