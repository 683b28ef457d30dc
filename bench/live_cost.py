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
"""

from __future__ import annotations

import argparse
import contextlib
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
                registry = seed_registry(directory / "registry.db", extra=[])
                yield Services(directory, broker, influx, influxdb.url, registry)
            finally:
                influx.close()


def trial(
    env: Services,
    tree: Path,
    rate: int,
    warmup_s: float,
    window_s: float,
    overrides: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """One ingester of ``tree`` at ``rate`` msg/s: CPU over ``window_s`` after ``warmup_s``."""
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
    load = loadavg()
    try:
        if rate:
            seconds = warmup_s + window_s + 1
            publishers = Publishers(
                paced_jobs(env.broker.port, prefix, rate, workers=2, seconds=seconds)
            ).start()
        time.sleep(warmup_s)
        cpu, received, started = (
            cpu_seconds(ingester.pid),
            ingester.metrics()["received_total"],
            time.monotonic(),
        )
        time.sleep(window_s)
        cpu = cpu_seconds(ingester.pid) - cpu
        received = ingester.metrics()["received_total"] - received
        elapsed = time.monotonic() - started
    finally:
        if publishers is not None:
            publishers.stop()
        ingester.stop()
        discard_session(env.broker.port, ingester.client_id)  # no leftover queue for the next trials
    return {
        "rate": rate,
        "received": int(received),
        "msg_per_s": round(received / elapsed, 1),
        "cpu_percent": round(100 * cpu / elapsed, 2),
        "cpu_us_per_msg": round(cpu / received * 1e6, 1) if received else None,
        "load": load,
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over the rounds (with the range), per figure."""
    out: dict[str, Any] = {"rounds": len(runs)}
    for key in ("cpu_percent", "cpu_us_per_msg", "msg_per_s"):
        values = [r[key] for r in runs if r[key] is not None]
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
) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(services())
        trees = {WORK_TREE: REPO}
        if compare is not None:
            trees = {compare: stack.enter_context(worktree(compare)), WORK_TREE: REPO}
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {label: {} for label in trees}
        for n in range(rounds):
            for rate in rates:
                # alternate the order too, so neither tree always runs right after the other's trial
                for label in trees if n % 2 == 0 else reversed(trees):
                    one = trial(env, trees[label], rate, warmup_s, window_s, overrides)
                    print(json.dumps({"tree": label, **one}), file=sys.stderr, flush=True)
                    runs[label].setdefault(str(rate), []).append(one)
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
    args = parser.parse_args(argv)
    try:
        overrides = setting_overrides(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    rates = args.rate or [5_000]
    if any(rate < 0 for rate in rates):
        parser.error("--rate must be 0 or more")
    result = measure(
        rates,
        compare=args.compare,
        rounds=args.rounds,
        warmup_s=args.warmup,
        window_s=args.window,
        overrides=overrides,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
