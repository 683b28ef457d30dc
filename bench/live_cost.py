"""Ingester CPU per message at one fixed live rate, for A/B runs of settings (no baselines, no latency).

Starts Mosquitto, InfluxDB, the bench registry and the ingester (as ``bench.ingest`` does), publishes the
bench workload at ``--rate`` msg/s, and after a warm-up measures the ingester's CPU per message received
over a window; prints one JSON line. ``--set SECTION.KEY=VALUE`` changes an ingester setting::

    .venv/bin/python -m bench.live_cost --rate 5000
    .venv/bin/python -m bench.live_cost --rate 5000 --set influx.flush_interval_s=1.0
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.registry_seed import seed_registry
from bench.systems import Influx, IngesterSystem, cpu_seconds, setting_overrides
from bench.workload import Publishers, paced_jobs
from ingest.localservices import InfluxDB, Mosquitto


def measure(
    rate: int, warmup_s: float, window_s: float, overrides: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="live-cost-") as tmp:
        directory = Path(tmp)
        with Mosquitto(directory / "mosquitto") as broker, InfluxDB(directory / "influxdb") as influxdb:
            influx = Influx(influxdb.url)
            influx.create("live")
            ingester = IngesterSystem(
                directory / "ingester",
                mqtt_port=broker.port,
                influx_url=influxdb.url,
                database="live",
                prefix="live/",
                registry_url=seed_registry(directory / "registry.db", extra=[]),
                overrides=overrides,
            )
            ingester.start()
            seconds = warmup_s + window_s + 1
            publishers = Publishers(
                paced_jobs(broker.port, "live/", rate, workers=2, seconds=seconds)
            ).start()
            try:
                time.sleep(warmup_s)
                cpu, received = cpu_seconds(ingester.pid), ingester.metrics()["received_total"]
                time.sleep(window_s)
                cpu = cpu_seconds(ingester.pid) - cpu
                received = ingester.metrics()["received_total"] - received
            finally:
                publishers.stop()
                ingester.stop()
                influx.close()
    return {
        "rate": rate,
        "settings": overrides,
        "received": int(received),
        "cpu_us_per_msg": round(cpu / max(received, 1) * 1e6, 1),
        "cpu_percent": round(100 * cpu / window_s, 1),
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        overrides = setting_overrides(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(measure(args.rate, args.warmup, args.window, overrides)))


if __name__ == "__main__":
    main()
