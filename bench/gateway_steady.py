"""The gateway side of ``bench.gateway``: live meters, an outbox that times them, and the steady-state run.

Imports only what the gateway service does (its outbox, uplink and config), so that the steady-state child
process (``python -m bench.gateway_steady DIR PORT SECONDS``) measures the gateway's own memory and CPU,
not the bench's (httpx, paho, ...). Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.gateway_frames import SmlMeter, d0_telegram
from ingest.gateway.config import Central
from ingest.gateway.frames import Frame, meter_topic
from ingest.gateway.outbox import Outbox
from ingest.gateway.uplink import Uplink

LOOPBACK = "127.0.0.1"

METERS = 10
OUTBOX_BYTES = 2_000_000_000  # gateway.yaml's default


def central(port: int, *, client_id: str, window: int) -> Central:
    return Central.model_validate(
        {
            "brokers": [f"{LOOPBACK}:{port}"],
            "username": client_id,
            "password": "bench",
            "client_id": client_id,
            "window": window,
        }
    )


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ages(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(statistics.median(ordered), 3),
        "p99": round(ordered[int(len(ordered) * 0.99)], 3),
        "max": round(ordered[-1], 3),
    }


class TimedOutbox(Outbox):
    """Notes when live frames were put and when their PUBACK came."""

    def __init__(self, directory: Path, **options: Any) -> None:
        super().__init__(directory, **options)
        self.live_put: dict[int, float] = {}
        self.live_ages: list[float] = []

    def put_live(self, frame: Frame) -> None:
        self.live_put[self.put(frame)] = time.monotonic()

    def confirm(self, seqs: Iterable[int]) -> None:
        seqs = list(seqs)
        now = time.monotonic()
        for seq in seqs:
            put = self.live_put.pop(seq, None)
            if put is not None:
                self.live_ages.append(now - put)
        super().confirm(seqs)


class LiveMeters:
    """10 meters (7 SML, 3 D0) each putting a frame every second, on the second, as a gateway reads them."""

    def __init__(self, gateway: str, put: Callable[[Frame], None]) -> None:
        self.gateway = gateway
        self.put = put
        self.count = 0
        self._sml = [SmlMeter(n) for n in range(METERS)]

    async def run(self) -> None:
        await asyncio.gather(*(self._meter(n) for n in range(METERS)))

    async def _meter(self, n: int) -> None:
        sml = n < METERS * 7 // 10
        topic = meter_topic(self.gateway, "sml" if sml else "d0", f"m{n:02d}")
        energy = 10**8 + n
        while True:
            await asyncio.sleep(1 - time.time() % 1 + n * 0.001)
            energy += 3
            read_ns = time.time_ns()
            if sml:
                payload = self._sml[n].frame(energy, 500 + n, int(time.monotonic()))
            else:
                payload = d0_telegram(60_327_000 + n, energy / 10_000, 500.0 + n)
            self.put(Frame(topic, payload, read_ns))
            self.count += 1


def proc_io_write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


async def steady(directory: Path, port: int, seconds: float, warmup: float) -> dict[str, Any]:
    outbox = TimedOutbox(directory, max_bytes=OUTBOX_BYTES, commit_interval_s=1.0)
    uplink = Uplink(central(port, client_id="gw-steady", window=1000), outbox)
    live = LiveMeters("gw-steady", outbox.put_live)
    tasks = [asyncio.create_task(c) for c in (uplink.run(), outbox.run(), live.run())]
    try:
        await asyncio.sleep(warmup)
        os.sync()  # what the warm-up wrote is on disk: write_bytes counts the measured period only
        cpu, io, stats, frames = time.process_time(), proc_io_write_bytes(), outbox.stats(), live.count
        started = time.monotonic()
        await asyncio.sleep(seconds)
        os.sync()
        elapsed = time.monotonic() - started
        cpu, io = time.process_time() - cpu, proc_io_write_bytes() - io
        after = outbox.stats()
        per_hour = 3600 / elapsed
        return {
            "seconds": round(elapsed, 1),
            "frames": live.count - frames,
            "acked": uplink.stats().acked,
            "cpu_percent": round(cpu / elapsed * 100, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "live_age_s": ages(outbox.live_ages),
            "sd_writes_per_hour": {
                "bytes": round(io * per_hour),
                "MB": round(io * per_hour / 1e6, 1),
                "fsyncs": round((after.fsyncs - stats.fsyncs) * per_hour),
                "record_bytes": round((after.bytes_written - stats.bytes_written) * per_hour),
            },
        }
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(uplink.close(), 5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outbox.close()


def main() -> None:
    directory, port, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(steady(directory, port, seconds, warmup=5.0))))


if __name__ == "__main__":
    main()
