"""CPU cost of receiving and acknowledging QoS 1 messages with the ingester's MQTT adapter, without decoding.

A real Mosquitto (the ingester's broker settings) queues N bench-workload messages for a persistent
session; a consumer process then connects with ``ingest.mqtt.MqttSource``, takes every message from its
queue and acknowledges them in batches (as the commit stage does), and reports its own CPU time per
message (``time.process_time``) and the wall time until the last one. ``--compare REF`` runs the same
consumer on a ``git worktree`` of REF (e.g. the paho-based adapter) in the same run, alternating::

    .venv/bin/python -m bench.mqtt_receive --compare HEAD --messages 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.worktree import ROOT, run_json, worktree

ACK_EVERY = 5_000  # messages per ack batch (the ingester's default batch size)


async def consume(port: int, client_id: str, topic: str, count: int) -> dict[str, Any]:
    from ingest.config import MqttSettings
    from ingest.mqtt import MqttSource

    settings = MqttSettings.model_validate({"host": "127.0.0.1", "port": port, "client_id": client_id})
    queue: asyncio.Queue[Any] = asyncio.Queue()
    source = MqttSource(settings, topics=[topic], queue=queue)
    cpu, wall = time.process_time(), time.perf_counter()
    runner = asyncio.create_task(source.run())
    received: list[Any] = []
    pending: list[Any] = []
    try:
        await asyncio.wait_for(source.connected.wait(), 30)
        while len(received) < count:
            item = await asyncio.wait_for(queue.get(), 60)
            items = item if isinstance(item, list) else [item]  # one list per read, or one message
            received += items
            pending += items
            if len(pending) >= ACK_EVERY or queue.empty():
                source.ack(pending)
                pending = []
        source.ack(pending)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await source.disconnect()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return {
        "received": len(received),
        "distinct_payloads": len({m.payload for m in received}),
        "cpu_us_per_msg": round(cpu / max(1, len(received)) * 1e6, 2),
        "wall_s": round(wall, 3),
        "msg_per_s": round(len(received) / wall),
    }


def consumer(tree: Path, port: int, client_id: str, topic: str, count: int) -> dict[str, Any]:
    args = ["--consume", "--port", str(port), "--client-id", client_id, "--topic", topic]
    return run_json(tree, Path(__file__).resolve(), "bench.mqtt_receive", [*args, "--count", str(count)])


def trial(tree: Path, label: str, port: int, count: int, n: int) -> dict[str, Any]:
    from bench.workload import Publishers, drain_jobs, subscription

    prefix = f"recv{n}/"
    client_id = f"bench-recv-{n}"
    consumer(tree, port, client_id, subscription(prefix), 0)  # create the persistent session
    publishers = Publishers(drain_jobs(port, prefix, count, workers=2, base_ms=1_764_320_400_000)).start()
    publishers.join(timeout=120 + count / 2_000)
    result = consumer(tree, port, client_id, subscription(prefix), count)
    result["tree"] = label
    print(json.dumps(result), file=sys.stderr)
    return result


def compare(ref: str, count: int, rounds: int) -> dict[str, Any]:
    from ingest.localservices import Mosquitto

    runs: dict[str, list[dict[str, Any]]] = {ref: [], "work tree": []}
    with (
        tempfile.TemporaryDirectory(prefix="mqtt-receive-") as tmp,
        Mosquitto(Path(tmp) / "mqtt") as broker,
        worktree(ref) as tree,
    ):
        for n in range(rounds):  # alternate, so a change in the machine's load hits both
            runs[ref].append(trial(tree, ref, broker.port, count, 2 * n))
            runs["work tree"].append(trial(ROOT, "work tree", broker.port, count, 2 * n + 1))
    best = {label: min(r["cpu_us_per_msg"] for r in results) for label, results in runs.items()}
    lost = {label: [count - r["distinct_payloads"] for r in results] for label, results in runs.items()}
    return {
        "messages": count,
        "rounds": rounds,
        "cpu_us_per_msg": best,
        "speedup": round(best[ref] / best["work tree"], 2),
        "msg_per_s_best": {label: max(r["msg_per_s"] for r in results) for label, results in runs.items()},
        "missing": lost,
        "runs": runs,
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--compare", metavar="REF", default="HEAD", help="the other revision (default HEAD)")
    parser.add_argument("--consume", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client-id", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.consume:
        print(json.dumps(asyncio.run(consume(args.port, args.client_id, args.topic, args.count))))
        return
    print(json.dumps(compare(args.compare, args.messages, args.rounds)))


if __name__ == "__main__":
    main()
