"""Ingester CPU at fixed live rates, idle included, and A/B against another revision in the same run.

Starts Mosquitto, InfluxDB and the bench registry once, then per trial an ingester (as ``bench.ingest``
does: enrichment on, its own database, topic prefix and persistent session), publishes the bench workload
at the trial's rate (0: nothing, the idle ingester), and after a warm-up measures the ingester's CPU
(utime + stime from /proc) over a window: % of one core, and µs per message received. ``--compare REF``
runs the ingester of git REF (a ``git worktree``; this bench, broker and publishers) alternately with the
work tree's, round by round, so a change in the machine's load hits both. The last line is one JSON object::

    .venv/bin/python -m bench.live_cost --rate 5000
    .venv/bin/python -m bench.live_cost --rate 5000 --set influx.flush_interval_s=1.0
    .venv/bin/python -m bench.live_cost --rate 0 --rate 1000 --compare HEAD~3 --rounds 2
    .venv/bin/python -m bench.live_cost --rate 1000 --rate 5000 --latency --drain 100000 --compare HEAD~1

``--latency``: a probe device publishes 20 msg/s beside the load (``bench.ingest``'s probe) and the
window's p50 / p99 from publish to queryable in InfluxDB are reported per trial. ``--drain N``: per round
and tree, N messages queued in a stopped ingester's persistent session are drained (process start until
all are in InfluxDB: msg/s, µs CPU per message, what is called bulk cost), and once per round the same
backlog is drained by ``mosquitto_sub`` (the broker's limit on this machine; the drain as a fraction of it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ingest import PROBE, Bench, Probe, broker_limit, drain, start_stop
from bench.registry_seed import seed_registry
from bench.systems import (
    REPO,
    Influx,
    IngesterSystem,
    cpu_seconds,
    discard_session,
    loadavg,
    setting_overrides,
)
from bench.workload import Publishers, paced_jobs
from bench.worktree import worktree
from ingest.localservices import InfluxDB, Mosquitto

WORK_TREE = "work tree"


@dataclass
class Services:
    directory: Path
    broker: Mosquitto
    influxdb: InfluxDB
    influx: Influx
    influx_url: str
    registry_url: str
    trials: int = 0


@contextlib.contextmanager
def services() -> Iterator[Services]:
    with tempfile.TemporaryDirectory(prefix="live-cost-") as tmp:
        directory = Path(tmp)
        with Mosquitto(directory / "mosquitto") as broker, InfluxDB(directory / "influxdb") as influxdb:
            influx = Influx(influxdb.url)
            try:
                registry = seed_registry(directory / "registry.db", extra=[PROBE])
                yield Services(directory, broker, influxdb, influx, influxdb.url, registry)
            finally:
                influx.close()


def trial(
    env: Services,
    tree: Path,
    rate: int,
    warmup_s: float,
    window_s: float,
    overrides: dict[str, dict[str, Any]],
    *,
    latency: bool = False,
) -> dict[str, Any]:
    """One ingester of ``tree`` at ``rate`` msg/s: CPU over ``window_s`` after ``warmup_s`` (and with
    ``latency`` the probe's p50 / p99 over the same window)."""
    env.trials += 1
    database, prefix = f"live_{env.trials}", f"live{env.trials}/"
    env.influx.create(database)
    ingester = IngesterSystem(
        env.directory / database,
        mqtt_port=env.broker.port,
        influx_url=env.influx_url,
        database=database,
        prefix=prefix,
        registry_url=env.registry_url,
        overrides=overrides,
        tree=tree,
    )
    ingester.start()
    publishers = None
    probe = None
    load = loadavg()
    try:
        if latency and rate:
            probe = Probe(bench_of(env, overrides), database, prefix).start()
        if rate:
            seconds = warmup_s + window_s + 1
            publishers = Publishers(
                paced_jobs(env.broker.port, prefix, rate, workers=2, seconds=seconds)
            ).start()
        time.sleep(warmup_s)
        cpu, received, started, wall = (
            cpu_seconds(ingester.pid),
            ingester.metrics()["received_total"],
            time.monotonic(),
            time.time(),
        )
        time.sleep(window_s)
        cpu = cpu_seconds(ingester.pid) - cpu
        received = ingester.metrics()["received_total"] - received
        elapsed = time.monotonic() - started
        # probe messages published in the window's last second may still be on their way
        time.sleep(2.0 if probe is not None else 0.0)
    finally:
        if probe is not None:
            probe.stop()
        if publishers is not None:
            publishers.stop()
        ingester.stop()
        discard_session(env.broker.port, ingester.client_id)  # no leftover queue for the next trials
    result = {
        "rate": rate,
        "received": int(received),
        "msg_per_s": round(received / elapsed, 1),
        "cpu_percent": round(100 * cpu / elapsed, 2),
        "cpu_us_per_msg": round(cpu / received * 1e6, 1) if received else None,
        "load": load,
    }
    if probe is not None:
        latencies = sorted(probe.latencies(wall, wall + window_s - 1.0))
        result["latency_samples"] = len(latencies)
        result["p50_latency_s"] = _quantile(latencies, 0.5)
        result["p99_latency_s"] = _quantile(latencies, 0.99)
    return result


def _quantile(ordered: list[float], q: float) -> float | None:
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None


def bench_of(env: Services, overrides: dict[str, dict[str, Any]]) -> Bench:
    """``bench.ingest``'s view of the same services (its probe and drains run on them)."""
    args = argparse.Namespace(overrides=overrides)
    return Bench(env.directory, env.broker, env.influxdb, env.influx, args, registry_url=env.registry_url)


def drain_trial(env: Services, bench: Bench, tree: Path, count: int) -> dict[str, Any]:
    """``count`` queued messages drained by an ingester of ``tree`` (``bench.ingest``'s drain)."""

    def make(directory: Path, database: str, prefix: str) -> IngesterSystem:
        return IngesterSystem(
            directory,
            mqtt_port=env.broker.port,
            influx_url=env.influx_url,
            database=database,
            prefix=prefix,
            registry_url=env.registry_url,
            overrides=bench.args.overrides,
            tree=tree,
        )

    load = loadavg()
    done = drain(bench, make, count=count, cap_s=600, precreate=start_stop)
    return {**dataclasses.asdict(done), "load": load}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over the rounds (with the range), per figure."""
    out: dict[str, Any] = {"rounds": len(runs)}
    for key in (
        "cpu_percent",
        "cpu_us_per_msg",
        "msg_per_s",
        "p50_latency_s",
        "p99_latency_s",
        "msg_per_s_after_first_point",
        "all_received_s",
        "of_broker_limit",
    ):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = round(statistics.median(values), 2)
            out[f"{key}_range"] = [min(values), max(values)]
    return out


def revision(tree: Path, ref: str = "HEAD") -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", ref], capture_output=True, text=True
    )
    return done.stdout.strip()


def measure(
    rates: list[int],
    *,
    compare: str | None,
    rounds: int,
    warmup_s: float,
    window_s: float,
    overrides: dict[str, dict[str, Any]],
    latency: bool = False,
    drain_count: int = 0,
) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(services())
        trees = {WORK_TREE: REPO}
        if compare is not None:
            trees = {compare: stack.enter_context(worktree(compare)), WORK_TREE: REPO}
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {label: {} for label in trees}
        drains: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
        limits: list[dict[str, Any]] = []
        bench = bench_of(env, overrides)
        for n in range(rounds):
            for rate in rates:
                # alternate the order too, so neither tree always runs right after the other's trial
                for label in trees if n % 2 == 0 else reversed(trees):
                    one = trial(env, trees[label], rate, warmup_s, window_s, overrides, latency=latency)
                    print(json.dumps({"tree": label, **one}), file=sys.stderr, flush=True)
                    runs[label].setdefault(str(rate), []).append(one)
            if drain_count:
                limit = dataclasses.asdict(broker_limit(bench, count=drain_count))
                limits.append(limit)
                for label in trees if n % 2 == 0 else reversed(trees):
                    done = drain_trial(env, bench, trees[label], drain_count)
                    done["of_broker_limit"] = (
                        round(done["msg_per_s"] / limit["msg_per_s"], 3) if limit["msg_per_s"] else None
                    )
                    print(json.dumps({"tree": label, **done}), file=sys.stderr, flush=True)
                    drains[label].append(done)
    result: dict[str, Any] = {
        "bench": "live_cost",
        "settings": overrides,
        "warmup_s": warmup_s,
        "window_s": window_s,
        "revisions": {
            label: revision(REPO, compare) if label == compare else revision(REPO) for label in trees
        },
        "dirty_work_tree": bool(
            subprocess.run(
                ["git", "-C", str(REPO), "status", "--porcelain", "--", "ingest"], capture_output=True
            ).stdout.strip()
        ),
        "rates": {str(rate): {label: summary(runs[label][str(rate)]) for label in trees} for rate in rates},
        "runs": runs,
    }
    if drain_count:
        result["drain"] = {label: summary(drains[label]) for label in trees}
        result["drain"]["mosquitto_sub"] = summary(limits)
        result["drains"] = {**drains, "mosquitto_sub": limits}
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rate", type=int, action="append", help="msg/s, 0 = idle (repeatable; default 5000)"
    )
    parser.add_argument("--compare", metavar="REF", help="also run the ingester of git REF (a worktree)")
    parser.add_argument("--rounds", type=int, default=1, help="trials per tree and rate, alternating")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--latency", action="store_true", help="probe p50 / p99 (publish -> queryable)")
    parser.add_argument("--drain", type=int, default=0, metavar="N", help="also drain N queued messages")
    args = parser.parse_args(argv)
    try:
        overrides = setting_overrides(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    rates = args.rate or [5_000]
    if any(rate < 0 for rate in rates):
        parser.error("--rate must be 0 or more")
    if args.drain < 0:
        parser.error("--drain must be 0 or more")
    result = measure(
        rates,
        compare=args.compare,
        rounds=args.rounds,
        warmup_s=args.warmup,
        window_s=args.window,
        overrides=overrides,
        latency=args.latency,
        drain_count=args.drain,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
