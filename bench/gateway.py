"""Gateway benchmark: a 24-hour backlog drained to the central InfluxDB, and the gateway's steady-state cost.
Progress on stderr; the last line on stdout is one JSON object.

    make bench-gateway                                   # full: 864,000 frames, paho baseline, 60 s steady
    .venv/bin/python -m bench.gateway --seconds 3600 --steady-s 20 --baseline-seconds 3600   # quick

drain     an outbox filled with ``--seconds`` of 10 meters at 1 Hz (7 eHZ with binary SML, 3 EasyMeter D0
          telegrams: real frames, bench/gateway_frames.py) is reopened (the gateway restarted after the
          outage), then the uplink starts against a central Mosquitto (the project's loss-free settings),
          the real ingester and InfluxDB 1.6. Timed from the uplink's start until the ingester wrote every
          message (its /metrics), then the points are counted in InfluxDB: lost must be 0, and they must
          lie at the read times. ``acked_s``: until the central broker acknowledged the whole backlog (the
          gateway's part). Meanwhile 10 live meters put a frame a second: ``live_age`` is put -> PUBACK of
          those (are the newest starved by the drain?). CPU seconds of every process: which one is the
          bottleneck.
baseline  paho-mqtt (MQTT 5, QoS 1, the same window, read_ns as a user property) publishing the same
          frames of another gateway name through the same path.
steady    outbox + uplink + 10 simulated meters at 1 Hz in a child process for ``--steady-s`` seconds:
          peak RSS (VmHWM), CPU % of one core, and the writes an SD card would see, per hour (bytes from
          /proc/self/io write_bytes, fsyncs from the outbox's counters).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.gateway_frames import backlog
from bench.gateway_steady import METERS, OUTBOX_BYTES, LiveMeters, TimedOutbox, ages, central
from bench.systems import BenchError, Influx, IngesterSystem, cpu_seconds, loadavg, peak_rss_mb
from ingest.gateway.outbox import Outbox
from ingest.gateway.uplink import Uplink
from ingest.localservices import LOOPBACK, InfluxDB, Mosquitto

START_NS = 1_764_288_000_000_000_000  # 2025-11-28T00:00:00Z: the day of the backlog
DATABASE = "gateway_bench"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {loadavg():.2f}] {message}", file=sys.stderr, flush=True)


# -- drain -------------------------------------------------------------------------------------------


def fill(directory: Path, gateway: str, seconds: int) -> dict[str, Any]:
    started = time.perf_counter()
    with Outbox(directory, max_bytes=OUTBOX_BYTES) as outbox:
        for frame in backlog(gateway, meters=METERS, seconds=seconds, start_ns=START_NS):
            outbox.put(frame)
        stats = outbox.stats()
    elapsed = time.perf_counter() - started
    log(f"outbox filled: {stats.depth:,} frames, {stats.bytes / 1e6:.0f} MB in {elapsed:.1f} s")
    return {"frames": stats.depth, "MB": round(stats.bytes / 1e6, 1), "fill_s": round(elapsed, 1)}


class Ingesters:
    """One ingester, or several sharing the subscription (``$share/bench/...``): the central scale-out."""

    def __init__(self, directory: Path, count: int, **options: Any) -> None:
        overrides = {"mqtt": {"shared_group": "bench"}} if count > 1 else None
        self.systems = [
            IngesterSystem(directory / f"ingester{n}", overrides=overrides, **options) for n in range(count)
        ]
        for n, system in enumerate(self.systems):
            system.client_id = f"ingester{n}-{DATABASE}"  # each its own session

    def start(self) -> None:
        for system in self.systems:
            system.start()

    def stop(self) -> None:
        for system in self.systems:
            system.stop()

    def cpu(self) -> float:
        return sum(system.cpu() for system in self.systems)

    def peak_rss_mb(self) -> float:
        return max(peak_rss_mb(system.pid) for system in self.systems)

    def written(self) -> float:
        """Messages written to InfluxDB by all of them (their /metrics); -1 while one does not answer."""
        try:
            return sum(system.metrics().get("written_total", 0.0) for system in self.systems)
        except Exception:  # polling: an unanswered request is "not yet"
            return -1.0


async def drain(
    outbox_dir: Path, port: int, ingester: Ingesters, *, frames: int, window: int, timeout_s: float
) -> dict[str, Any]:
    outbox = TimedOutbox(outbox_dir, max_bytes=OUTBOX_BYTES)
    uplink = Uplink(central(port, client_id="gw-bench", window=window), outbox)
    live = LiveMeters("gw-bench-live", outbox.put_live)
    written_before = ingester.written()
    cpu_before, ingester_cpu_before = time.process_time(), ingester.cpu()
    started = time.monotonic()
    tasks = [asyncio.create_task(c) for c in (uplink.run(), outbox.run(), live.run())]
    acked_s: float | None = None
    try:
        while True:
            await asyncio.sleep(0.25)
            elapsed = time.monotonic() - started
            if acked_s is None and uplink.stats().acked >= frames:
                acked_s = elapsed
                tasks[2].cancel()  # the live meters stop: their count is final
                log(f"central broker acknowledged the backlog after {acked_s:.1f} s")
            if acked_s is not None and outbox.stats().depth == 0:
                done = await asyncio.to_thread(ingester.written)
                if done >= written_before + frames + live.count:
                    break
            if elapsed > timeout_s:
                raise BenchError(f"drain not done after {timeout_s} s: {uplink.stats()}")
            if int(elapsed * 4) % 40 == 0:
                log(f"{elapsed:.0f} s: {uplink.stats().acked:,} acknowledged, depth {outbox.stats().depth:,}")
        drain_s = time.monotonic() - started
        gateway_cpu = time.process_time() - cpu_before
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(uplink.close(), 5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outbox.close()
    return {
        "frames": frames,
        "window": window,
        "drain_s": round(drain_s, 1),
        "msg_per_s": round(frames / drain_s),
        "acked_s": round(acked_s or drain_s, 1),
        "acked_msg_per_s": round(frames / (acked_s or drain_s)),
        "uplink": {k: v for k, v in vars_of(uplink.stats()).items() if k != "last_error"},
        "live_frames": live.count,
        "live_age_s": ages(outbox.live_ages),
        "cpu_s": {
            "gateway": round(gateway_cpu, 1),
            "ingester": round(ingester.cpu() - ingester_cpu_before, 1),
        },
    }


def service_pid(service: Mosquitto | InfluxDB) -> int:
    if service.process is None:
        raise BenchError(f"{service.name} is not running")
    return service.process.pid


def vars_of(stats: Any) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in stats.__slots__}


def paho_baseline(port: int, ingester: Ingesters, *, seconds: int, window: int) -> dict[str, Any]:
    """The same frames (another gateway name) published by paho-mqtt, MQTT 5 QoS 1, read_ns property."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    frames = list(backlog("gw-paho", meters=METERS, seconds=seconds, start_ns=START_NS))
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="gw-paho", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(window)
    acked = 0
    lock = threading.Condition()

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        with lock:
            acked += 1
            lock.notify_all()

    client.on_publish = on_publish
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect(LOOPBACK, port, keepalive=60)
    client.loop_start()
    if not connected.wait(10):
        raise BenchError("paho: no CONNACK")
    written_before = ingester.written()
    cpu_before, ingester_cpu_before = time.process_time(), ingester.cpu()
    started = time.monotonic()
    try:
        for published, frame in enumerate(frames, 1):
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = ("read_ns", str(frame.read_ns))
            client.publish(frame.topic, frame.payload, qos=1, properties=properties)
            if published - acked > 10 * window:  # paho queues without bound: keep its memory in check
                with lock:
                    lock.wait_for(lambda: published - acked <= 5 * window, 30)  # noqa: B023
        with lock:
            lock.wait_for(lambda: acked >= len(frames), 600)
        acked_s = time.monotonic() - started
        gateway_cpu = time.process_time() - cpu_before
        while ingester.written() < written_before + len(frames):
            if time.monotonic() - started > 900:
                raise BenchError("paho baseline: the ingester did not write everything in 900 s")
            time.sleep(0.25)
        drain_s = time.monotonic() - started
    finally:
        client.disconnect()
        client.loop_stop()
    return {
        "frames": len(frames),
        "drain_s": round(drain_s, 1),
        "msg_per_s": round(len(frames) / drain_s),
        "acked_s": round(acked_s, 1),
        "acked_msg_per_s": round(len(frames) / acked_s),
        "cpu_s": {
            "publisher": round(gateway_cpu, 1),
            "ingester": round(ingester.cpu() - ingester_cpu_before, 1),
        },
    }


def count_points(influx: Influx, gateway: str) -> tuple[int, int, int]:
    series = influx.query(
        DATABASE, f"SELECT count(power_w), min(power_w) FROM electricity WHERE gateway = '{gateway}'"
    )
    count = int(series[0]["values"][0][1]) if series else 0
    first = influx.query(DATABASE, f"SELECT first(power_w) FROM electricity WHERE gateway = '{gateway}'")
    last = influx.query(DATABASE, f"SELECT last(power_w) FROM electricity WHERE gateway = '{gateway}'")
    return count, int(first[0]["values"][0][0]) if first else 0, int(last[0]["values"][0][0]) if last else 0


def run_drain(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"outbox": fill(directory / "outbox", "gw-bench", args.seconds)}
    frames = result["outbox"]["frames"]
    with (
        Mosquitto(directory / "mosquitto") as mosquitto,
        InfluxDB(directory / "influxdb") as influxdb,
    ):
        influx = Influx(influxdb.url)
        ingester = Ingesters(
            directory,
            args.ingesters,
            mqtt_port=mosquitto.port,
            influx_url=influxdb.url,
            database=DATABASE,
            prefix="",
        )
        ingester.start()
        try:
            log(f"drain: {frames:,} frames, window {args.window}, {args.ingesters} ingester(s)")
            broker_cpu = cpu_seconds(service_pid(mosquitto))
            influx_cpu = cpu_seconds(service_pid(influxdb))
            result["drain"] = asyncio.run(
                drain(
                    directory / "outbox",
                    mosquitto.port,
                    ingester,
                    frames=frames,
                    window=args.window,
                    timeout_s=args.timeout,
                )
            )
            result["drain"]["cpu_s"]["mosquitto"] = round(cpu_seconds(service_pid(mosquitto)) - broker_cpu, 1)
            result["drain"]["cpu_s"]["influxdb"] = round(cpu_seconds(service_pid(influxdb)) - influx_cpu, 1)
            cpu = result["drain"]["cpu_s"]
            busiest = max(cpu, key=cpu.get)  # CPU s per drain s near 1 per ingester: that is the limit
            result["drain"]["busiest"] = {busiest: round(cpu[busiest] / result["drain"]["drain_s"], 2)}
            count, first, last = count_points(influx, "gw-bench")
            expected_last = START_NS + (args.seconds - 1) * 1_000_000_000 + (METERS - 1) * 1000
            result["drain"].update(
                {
                    "points": count,
                    "lost": frames - count,
                    "at_read_times": first == START_NS and last == expected_last,
                }
            )
            log(f"drain: {json.dumps(result['drain'])}")
            if args.baseline_seconds:
                log(f"baseline: paho-mqtt, {args.baseline_seconds * METERS:,} frames")
                result["baseline_paho"] = paho_baseline(
                    mosquitto.port, ingester, seconds=args.baseline_seconds, window=args.window
                )
                result["baseline_paho"]["lost"] = (
                    result["baseline_paho"]["frames"] - count_points(influx, "gw-paho")[0]
                )
                log(f"baseline: {json.dumps(result['baseline_paho'])}")
            result["ingesters"] = args.ingesters
            result["ingester_peak_rss_mb"] = round(ingester.peak_rss_mb(), 1)
        finally:
            ingester.stop()
            influx.close()
    return result


# -- steady state --------------------------------------------------------------------------------------


def run_steady(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    with Mosquitto(directory / "steady-mosquitto") as mosquitto:
        command = [sys.executable, "-m", "bench.gateway_steady", str(directory / "steady-outbox")]
        command += [str(mosquitto.port), str(args.steady_s)]
        log(f"steady state: outbox + uplink + 10 meters at 1 Hz for {args.steady_s} s")
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.steady_s + 120, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"steady-state child failed:\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        log(f"steady: {json.dumps(result)}")
        return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=86_400, help="backlog length (10 frames a second)")
    parser.add_argument("--window", type=int, default=1000, help="QoS 1 messages in flight")
    parser.add_argument("--ingesters", type=int, default=1, help="central ingesters sharing the subscription")
    parser.add_argument("--baseline-seconds", type=int, default=86_400, help="paho baseline (0: none)")
    parser.add_argument("--steady-s", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="give the drain up after this")
    parser.add_argument("--skip-drain", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="parent directory (default: /var/tmp)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"bench": "gateway", "cpus": os.cpu_count(), "load_at_start": loadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-", dir=args.dir or "/var/tmp") as name:
        directory = Path(name)
        if not args.skip_drain:
            results.update(run_drain(directory, args))
        results["steady"] = run_steady(directory, args)
    drain_result = results.get("drain", {})
    steady = results["steady"]
    results["goals"] = {
        "drain_le_120_s": drain_result.get("drain_s", 0) <= 120 if drain_result else None,
        "lost_0": drain_result.get("lost") == 0 if drain_result else None,
        "rss_le_50_mb": steady["peak_rss_mb"] <= 50,
        "cpu_le_3_percent": steady["cpu_percent"] <= 3,
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
