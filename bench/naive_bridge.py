"""The bridge from the tutorials, as a baseline: paho ``on_message`` -> one InfluxDB write per message.

Deliberately naive (that is the point of the baseline): paho acknowledges each message as soon as
``on_message`` returns, there is no batching and no spool; a crash between ack and write loses data.
It maps the same Tasmota SML keys as the device profile and writes the same points.

    python -m bench.naive_bridge --port 1883 --influx http://127.0.0.1:8086 --database bench --topic '#'
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

BERLIN = ZoneInfo("Europe/Berlin")
KEYS = {
    "total_in": "energy_import_kwh",
    "total_out": "energy_export_kwh",
    "power_curr": "power_w",
    "power_cur": "power_w",
    **{f"volt_p{n}": f"voltage_l{n}_v" for n in (1, 2, 3)},
    **{f"amperage_p{n}": f"current_l{n}_a" for n in (1, 2, 3)},
    **{f"power_p{n}": f"power_l{n}_w" for n in (1, 2, 3)},
}


def to_line(topic: str, payload: bytes) -> str | None:
    document = json.loads(payload)
    fields: dict[str, float] = {}
    for group in document.values():
        if not isinstance(group, dict):
            continue
        for key, raw in group.items():
            name = KEYS.get(key.lower())
            if name is None or name in fields:
                continue
            try:
                fields[name] = float(raw.replace(",", ".")) if isinstance(raw, str) else float(raw)
            except (TypeError, ValueError):
                continue
    if not fields:
        return None
    moment = datetime.fromisoformat(document["Time"]).replace(tzinfo=BERLIN)
    time_ns = round(moment.timestamp() * 1000) * 1_000_000
    parts = topic.split("/")
    tags = f"device={parts[-2]},gateway={parts[-4]},profile=tasmota-sml"
    values = ",".join(f"{k}={v!r}" for k, v in sorted(fields.items()))
    return f"electricity,{tags} {values} {time_ns}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--influx", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--client-id", default="naive-bridge")
    args = parser.parse_args()
    http = httpx.Client(base_url=args.influx, trust_env=False, timeout=10)

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        client.subscribe(args.topic, qos=1)
        print("naive bridge subscribed", file=sys.stderr, flush=True)

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            line = to_line(message.topic, bytes(message.payload))
            if line is not None:
                http.post("/write", params={"db": args.database}, content=line)
        except Exception as exc:
            print(f"error: {exc}", file=sys.stderr)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, clean_session=False)
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(args.host, args.port)
    client.loop_forever()


if __name__ == "__main__":
    main()
