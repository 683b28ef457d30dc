"""Peak RSS of the gateway service while its local-broker forwarder takes a backlog of large device
messages: the forwarder's session is made, the service stays away while a device queues ``--count``
QoS 1 messages of ``--size`` bytes in the local Mosquitto, then ``python -m ingest.gateway.cli run`` starts
(the central broker unreachable: everything goes into the outbox). Prints one JSON object.

    .venv/bin/python -m bench.gateway_local_backlog [--count 240] [--size 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.localservices import LOOPBACK, Mosquitto, free_port

REPO = Path(__file__).resolve().parents[1]
CLIENT_ID = "bench-forwarder"


def _vmhwm_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])


def _queue_backlog(port: int, count: int, size: int) -> None:
    session = paho.Client(CallbackAPIVersion.VERSION2, client_id=CLIENT_ID, protocol=paho.MQTTv5)
    expiry = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    expiry.SessionExpiryInterval = 3600
    session.connect(LOOPBACK, port, clean_start=False, properties=expiry)
    session.loop_start()
    time.sleep(0.3)
    session.subscribe("tele/#", qos=1)
    time.sleep(0.3)
    session.disconnect()
    session.loop_stop()
    device = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-device", protocol=paho.MQTTv311)
    device.connect(LOOPBACK, port)
    device.loop_start()
    for _ in range(count):
        device.publish("tele/big/SENSOR", b"x" * size, qos=1).wait_for_publish(10)
    device.disconnect()
    device.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--size", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "local") as local:
        config = {
            "gateway": "bench-backlog",
            "central": {
                "brokers": [f"127.0.0.1:{free_port()}"],  # nobody listens: the uplink stays down
                "username": "bench",
                "password": "unused",
                "client_id": "bench",
            },
            "outbox": {"directory": str(Path(tmp) / "outbox"), "max_bytes": 4_000_000_000},
            "local_broker": {"port": local.port, "client_id": CLIENT_ID, "topics": ["tele/#"]},
            "log_level": "WARNING",
        }
        path = Path(tmp) / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
        _queue_backlog(local.port, args.count, args.size)
        started = time.monotonic()
        service = subprocess.Popen(
            [sys.executable, "-m", "ingest.gateway.cli", "run", "--config", str(path)],
            cwd=REPO,
            stderr=subprocess.DEVNULL,
        )
        try:
            outbox = 0
            while time.monotonic() - started < 60 and outbox < args.count * args.size:
                time.sleep(0.5)
                outbox = sum(f.stat().st_size for f in (Path(tmp) / "outbox").glob("*") if f.is_file())
            taken_s = time.monotonic() - started
            time.sleep(1.0)
            peak_kb = _vmhwm_kb(service.pid)
        finally:
            service.terminate()
            service.wait(20)
    print(
        json.dumps(
            {
                "messages": args.count,
                "bytes_each": args.size,
                "outbox_bytes": outbox,
                "taken_s": round(taken_s, 1),
                "peak_rss_mb": round(peak_kb / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
