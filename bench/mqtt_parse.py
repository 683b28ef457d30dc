"""CPU cost of turning received bytes into the ingester's messages, without a socket: the parse and hand-over.

A stream of MQTT 5 QoS 1 PUBLISH packets of the bench workload (440 devices, tasmota-sml payloads) is cut
into 64 KiB reads and fed to ``ingest.mqtt_wire.PacketParser`` and ``MqttSource._deliver``, as
``_Connection.data_received`` does. Best of several repetitions, CPU time. Repeatable on a busy machine,
unlike ``bench.mqtt_receive``, whose figure also depends on how many messages each read carries.
``--compare REF`` measures REF in a ``git worktree`` too::

    .venv/bin/python -m bench.mqtt_parse --compare HEAD
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench.worktree import run_json, worktree

READ_SIZE = 64 * 1024


def _stream(count: int) -> bytes:
    from bench.workload import devices, payload
    from ingest.mqtt_wire import varint

    fleet = devices()
    packets = []
    for n in range(count):
        device = fleet[n % len(fleet)]
        topic = device.topic("bench1/").encode()
        body = len(topic).to_bytes(2, "big") + topic + (n % 65_535 + 1).to_bytes(2, "big") + b"\x00"
        body += payload(device, n // len(fleet), 1_764_320_400_000 + n)
        packets.append(b"\x32" + varint(len(body)) + body)
    return b"".join(packets)


async def measure(count: int, repeat: int) -> dict[str, Any]:
    from ingest import mqtt_wire
    from ingest.config import MqttSettings
    from ingest.mqtt import MqttSource

    stream = _stream(count)
    reads = [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]
    queue: asyncio.Queue[Any] = asyncio.Queue()
    source = MqttSource(MqttSettings(), topics=["#"], queue=queue)
    runs = []
    for _ in range(repeat):
        parser = mqtt_wire.PacketParser()
        started = time.process_time()
        for data in reads:
            publishes, _ = parser.feed(data)
            source._deliver(publishes, 1)
        runs.append((time.process_time() - started) / count * 1e6)
        delivered = 0
        while not queue.empty():
            delivered += len(queue.get_nowait())
        if delivered != count:
            raise RuntimeError(f"{delivered} of {count} messages delivered")
    return {
        "messages": count,
        "us_per_msg_runs": [round(r, 3) for r in runs],
        "us_per_msg": round(min(runs), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--compare", metavar="REF", help="also measure git REF (e.g. HEAD) in a worktree")
    args = parser.parse_args(argv)
    after = asyncio.run(measure(args.messages, args.repeat))
    if not args.compare:
        print(json.dumps(after))
        return
    with worktree(args.compare) as tree:
        before = run_json(
            tree,
            Path(__file__).resolve(),
            "bench.mqtt_parse",
            ["--messages", str(args.messages), "--repeat", str(args.repeat)],
        )
    speedup = round(before["us_per_msg"] / after["us_per_msg"], 2)
    print(json.dumps({"ref": args.compare, "before": before, "after": after, "speedup": speedup}))


if __name__ == "__main__":
    main()
