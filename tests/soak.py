"""``make soak``: the fault tests, longer. Publishes at a steady rate while the ingester is SIGKILLed
every few seconds and InfluxDB is stopped once, then counts. Bounded in time; talks only to 127.0.0.1.

Last line: ``sent=<n> written=<n> quarantined=<n> lost=<n>`` (exit 1 when lost != 0).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from pathlib import Path

from ingest.localservices import InfluxDB, Mosquitto, free_port
from ingest.quarantine import QUARANTINE_FILE, Quarantine
from simulators.fleet import make_fleet, samples
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, read_metrics, wait_for

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=2000, help="messages per second")
    parser.add_argument("--kill-every", type=float, default=10)
    parser.add_argument("--bad-every", type=int, default=500, help="one malformed message per N")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="reallabor-soak-") as tmp:
        directory = Path(tmp)
        with Mosquitto(directory / "mosquitto") as broker, InfluxDB(directory / "influxdb") as influxdb:
            target = Target(
                broker.port,
                influxdb.url,
                "soak",
                "soak/",
                "soak-ingest",
                directory / "state",
                REPO / "device_profiles",
            )
            ingester = IngesterProcess(target, directory, env={})
            metrics_port = free_port()
            sections = {"ingest": {"metrics_port": metrics_port}}
            ingester.start(**sections)
            count = int(args.seconds * args.rate)
            batch = list(samples(make_fleet(110), count=count, start_ms=1_764_320_400_000, interval_s=1))
            bad = 0
            done = threading.Event()

            def publish() -> None:
                nonlocal bad
                with Publisher("127.0.0.1", broker.port, window=5000) as publisher:
                    started = time.monotonic()
                    for index, sample in enumerate(batch):
                        delay = started + index / args.rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        publisher.publish(target.topic_prefix + sample.household.topic, sample.payload())
                        if index % args.bad_every == 0:
                            payload = b"\xffnot json %d" % index  # unique: redeliveries can be told apart
                            publisher.publish(f"{target.topic_prefix}lab/gw-x/bad/state", payload)
                            bad += 1
                    publisher.flush()
                done.set()

            thread = threading.Thread(target=publish, daemon=True)
            thread.start()
            kills = 0
            outage_done = False
            while not done.wait(args.kill_every):
                ingester.stop(kill=True)
                kills += 1
                if not outage_done:  # once: InfluxDB away for a while as well
                    influxdb.stop()
                    ingester.start(**sections)
                    time.sleep(args.kill_every / 2)
                    influxdb.start()
                    outage_done = True
                else:
                    ingester.start(**sections)
                print(
                    f"kill {kills}: {read_metrics(metrics_port).get('received_total', 0):.0f} received "
                    "since the last start",
                    file=sys.stderr,
                )
            thread.join()
            influx = InfluxQuery(influxdb.url, target.database)
            with contextlib.suppress(AssertionError):  # counted below either way
                wait_for(lambda: influx.count("electricity", "power_w") >= len(batch), timeout=120)
            written = influx.count("electricity", "power_w")
            ingester.stop()
            with Quarantine(target.state_dir / QUARANTINE_FILE, read_only=True) as q:
                payloads = [record.payload for record in q.list(limit=10**7)]
            quarantined = len(set(payloads))  # a crash between quarantine and ack redelivers: at least once
    sent = len(batch) + bad
    lost = sent - written - quarantined
    print(f"kills={kills} influx_outages=1 seconds={args.seconds:g} rate={args.rate:g}", file=sys.stderr)
    print(f"sent={sent} written={written} quarantined={quarantined} lost={lost}")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
