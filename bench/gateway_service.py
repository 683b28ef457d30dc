"""The whole gateway service as installed: ``reallabor gateway run`` with 10 SML meters at 1 Hz on socat
pseudo-terminals, the local-broker forwarder and health, against a central Mosquitto. Prints one JSON
object: peak RSS (VmHWM) and CPU % of one core of the service's process, and which heavy packages its
imports pull in (none of pandas, FastAPI, SQLAlchemy, httpx, numpy may be).

    .venv/bin/python -m bench.gateway_service [--meters 10] [--seconds 30] [--entry reallabor|module]

``--entry module`` runs ``python -m ingest.gateway.cli run`` (the gateway's own light entry) instead of
the ``reallabor`` console script. (bench/gateway measures outbox + uplink alone, and the backlog drain.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from bench.systems import cpu_seconds, peak_rss_mb
from ingest.localservices import Mosquitto
from simulators.formats import MeterState, sml_frame

HEAVY = ("pandas", "fastapi", "sqlalchemy", "httpx", "numpy")


def _pty_pair(directory: Path, n: int) -> tuple[subprocess.Popen[bytes], Path, int]:
    port, feed = directory / f"meter-{n}", directory / f"feed-{n}"
    process = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={port}", f"pty,raw,echo=0,link={feed}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (port.exists() and feed.exists()):
        if time.monotonic() > deadline:
            raise SystemExit("socat did not make its ptys")
        time.sleep(0.05)
    return process, port, os.open(feed, os.O_WRONLY | os.O_NOCTTY)


def _heavy_imports(entry: str) -> list[str]:
    """The heavy packages among what the service's process imports (its entry module, the service, the
    forwarder, the serial readers), found in a fresh interpreter's sys.modules."""
    first = "ingest.cli" if entry == "reallabor" else "ingest.gateway.cli"
    imports = f"import {first}, ingest.gateway.service, ingest.gateway.local, sys"
    listing = f"print(','.join(n for n in {HEAVY!r} if n in sys.modules))"
    found = subprocess.run(
        [sys.executable, "-c", f"{imports}; {listing}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [name for name in found.stdout.strip().split(",") if name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--meters", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured after 5 s of warm-up")
    parser.add_argument("--entry", choices=("reallabor", "module"), default="reallabor")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with Mosquitto(directory / "central") as central, Mosquitto(directory / "local") as local:
            pairs = [_pty_pair(directory, n) for n in range(args.meters)]
            config = {
                "gateway": "gw-bench",
                "central": {
                    "brokers": [f"127.0.0.1:{central.port}"],
                    "username": "gw-bench",
                    "password": "anonymous-broker",
                    "client_id": "gw-bench",
                },
                "outbox": {"directory": str(directory / "outbox")},
                "meters": [
                    {"device": f"hh-{n:03d}-em", "port": str(port), "protocol": "sml"}
                    for n, (_, port, _) in enumerate(pairs)
                ],
                "local_broker": {"port": local.port},
                "health_interval_s": 5,
            }
            path = directory / "gateway.yaml"
            path.write_text(yaml.safe_dump(config))
            command = (
                [str(Path(sys.executable).parent / "reallabor"), "gateway", "run", "--config", str(path)]
                if args.entry == "reallabor"
                else [sys.executable, "-m", "ingest.gateway.cli", "run", "--config", str(path)]
            )
            service = subprocess.Popen(command, stderr=subprocess.DEVNULL)
            stop = threading.Event()

            def feed() -> None:
                reading = 0
                while not stop.wait(1.0):
                    for n, (_, _, writer) in enumerate(pairs):
                        state = MeterState(
                            int(time.time()),
                            1000.0 + reading,
                            0.0,
                            500.0,
                            (1, 0, 0),
                            230.0,
                            f"0a01454d4800{n:08d}",
                        )
                        os.write(writer, sml_frame(state)[0])
                    reading += 1

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            try:
                time.sleep(5)
                cpu_before, began = cpu_seconds(service.pid), time.monotonic()
                time.sleep(args.seconds)
                cpu_pct = 100 * (cpu_seconds(service.pid) - cpu_before) / (time.monotonic() - began)
                result = {
                    "entry": args.entry,
                    "meters": args.meters,
                    "hz": 1,
                    "seconds": args.seconds,
                    "peak_rss_mb": round(peak_rss_mb(service.pid), 1),
                    "cpu_pct_of_one_core": round(cpu_pct, 2),
                    "heavy_packages_imported": _heavy_imports(args.entry),
                }
            finally:
                stop.set()
                feeder.join(5)
                service.terminate()
                result_code = service.wait(30)
                for process, _, writer in pairs:
                    os.close(writer)
                    process.terminate()
                    process.wait(10)
    result["exit_code_on_sigterm"] = result_code
    print(json.dumps(result))


if __name__ == "__main__":
    main()
