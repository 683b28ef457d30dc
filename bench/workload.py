"""The benchmark workload: 110 households x 4 Tasmota SML meter readers on 11 gateways, published over QoS 1.

Every message is one point (measurement ``electricity``, tags gateway/device) with a device timestamp in
the payload (``Time``: local time Europe/Berlin, millisecond resolution, as Tasmota formats it plus a
fraction). Timestamps are unique per device, so no point overwrites another in InfluxDB and
``count(power_w)`` counts messages.

Publishing runs in several worker processes with :class:`bench.wire_publisher.WirePublisher` (~5 µs CPU
per message; paho's publisher needed ~40 and topped out near 13k msg/s per process), each with a bounded
window of unacknowledged messages far below the 16-bit packet id space.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.synchronize
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bench.wire_publisher import WirePublisher

HOUSEHOLDS = 110
HOUSEHOLDS_PER_GATEWAY = 10
DEVICE_KINDS = ("sml", "pv", "wp", "ev")  # main meter, PV meter, heat pump meter, wallbox meter
BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = 5_000  # unacknowledged QoS 1 messages per publisher process (paho's mid is 16 bits)


@dataclass(frozen=True, slots=True)
class Device:
    index: int
    gateway: str
    device: str
    kind: str

    def topic(self, prefix: str) -> str:
        return f"{prefix}lab/{self.gateway}/tele/{self.device}/SENSOR"


def devices() -> list[Device]:
    out: list[Device] = []
    for household in range(1, HOUSEHOLDS + 1):
        gateway = f"gw-{(household - 1) // HOUSEHOLDS_PER_GATEWAY + 1:02d}"
        for kind in DEVICE_KINDS:
            out.append(Device(len(out), gateway, f"hh-{household:03d}-{kind}", kind))
    return out


def subscription(prefix: str) -> str:
    """The topic filter a baseline subscribes to (the ingester subscribes through its profiles)."""
    return f"{prefix}lab/+/tele/+/SENSOR"


def local_time(ms: int) -> str:
    """Tasmota's ``Time``: local wall time without zone (plus milliseconds)."""
    moment = datetime.fromtimestamp(ms / 1000, BERLIN)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}"


def payload(device: Device, seq: int, ms: int) -> bytes:
    """One SENSOR message in one of four script styles (group names and key spellings vary)."""
    t = local_time(ms)
    n = device.index
    energy = 1000.0 + n * 13.7 + seq * 0.001
    power = (n * 37 + seq * 11) % 4000 + 50
    if device.kind == "sml":  # three-phase main meter (Hager EHZ363 style)
        v = 229.0 + (seq % 30) / 10
        a = (power / 690.0) + 0.1
        text = (
            f'{{"Time":"{t}","SML":{{"Total_in":{energy:.4f},"Total_out":{n * 0.5:.4f},"Power_curr":{power},'
            f'"Volt_p1":{v:.1f},"Volt_p2":{v + 0.4:.1f},"Volt_p3":{v - 0.3:.1f},"Amperage_p1":{a:.2f},'
            f'"Amperage_p2":{a + 0.1:.2f},"Amperage_p3":{a + 0.2:.2f},"Meter_Id":"0a01454d4800{n:08x}"}}}}'
        )
    elif device.kind == "pv":  # PV meter: negative power is export
        text = (
            f'{{"Time":"{t}","E320":{{"Total_in":{energy / 10:.4f},"Total_out":{energy:.4f},'
            f'"Power_curr":{-power}}}}}'
        )
    elif device.kind == "wp":  # heat pump meter with per-phase power (Iskra MT681 style)
        p = power // 3
        text = (
            f'{{"Time":"{t}","MT681":{{"Total_in":{energy:.3f},"Power_cur":{power},"Power_p1":{p},'
            f'"Power_p2":{p + 1},"Power_p3":{power - 2 * p - 1}}}}}'
        )
    else:  # wallbox meter whose script sends numbers as strings with decimal commas and no group name
        e = f"{energy:.4f}".replace(".", ",")
        text = f'{{"Time":"{t}","":{{"Total_in":"{e}","Total_out":"0,0000","Power_curr":"{power}"}}}}'
    return text.encode()


@dataclass(frozen=True)
class PublishJob:
    """What one worker process publishes: its share of the devices, ``count`` messages or ``rate`` msg/s."""

    port: int
    prefix: str
    worker: int
    workers: int
    count: int = 0  # drain mode: exactly this many messages, as fast as the broker takes them
    rate: float = 0.0  # paced mode: msg/s until stopped or ``seconds`` passed
    seconds: float = 0.0
    base_ms: int = 0  # drain mode: device time of the first message (ms since the epoch)


def _messages(job: PublishJob) -> Iterator[tuple[str, bytes]]:
    mine = [d for d in devices() if d.index % job.workers == job.worker]
    topics = [d.topic(job.prefix) for d in mine]
    last_ms = [0] * len(mine)
    seq = 0
    while True:
        for i, device in enumerate(mine):
            if job.rate:  # live: the publish time, kept unique per device
                ms = max(time.time_ns() // 1_000_000, last_ms[i] + 1)
                last_ms[i] = ms
            else:  # drain: one millisecond apart per device
                ms = job.base_ms + seq
            yield topics[i], payload(device, seq, ms)
        seq += 1


def publish_worker(
    job: PublishJob, published: multiprocessing.sharedctypes.Synchronized[int], stop: mp.synchronize.Event
) -> None:
    """Entry point of a publisher process; ``published`` counts messages the broker acknowledged."""
    messages = _messages(job)
    with WirePublisher("127.0.0.1", job.port, window=WINDOW) as publisher:
        if job.count:
            for n in range(job.count):
                publisher.publish(*next(messages))
                if n % 2000 == 0:
                    published.value = publisher.published
                    if stop.is_set():
                        break
        else:
            started = time.monotonic()
            sent = 0
            while not stop.is_set():
                elapsed = time.monotonic() - started
                if job.seconds and elapsed >= job.seconds:
                    break
                due = int(job.rate * elapsed) - sent
                for _ in range(min(due, 5_000)):
                    publisher.publish(*next(messages))
                sent += max(0, min(due, 5_000))
                publisher.push()
                published.value = publisher.published
                time.sleep(0.005)
        publisher.flush()
        published.value = publisher.published


class Publishers:
    """Several publisher processes (spawned, not forked: the parent runs threads)."""

    def __init__(self, jobs: list[PublishJob]) -> None:
        context = mp.get_context("spawn")
        self.stop_event = context.Event()
        self.counters = [context.Value("q", 0) for _ in jobs]
        self.processes = [
            context.Process(target=publish_worker, args=(job, counter, self.stop_event), daemon=True)
            for job, counter in zip(jobs, self.counters, strict=True)
        ]
        self.pids: list[int] = []

    def start(self) -> Publishers:
        for process in self.processes:
            process.start()
        self.pids = [p.pid for p in self.processes if p.pid is not None]
        return self

    @property
    def published(self) -> int:
        return sum(int(c.value) for c in self.counters)

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.processes)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
        failed = [p.exitcode for p in self.processes if p.exitcode not in (0, None)]
        if failed or self.alive():
            self.terminate()
            raise RuntimeError(f"publisher processes failed or hung (exit codes {failed})")

    def stop(self, timeout: float = 60) -> None:
        self.stop_event.set()
        self.join(timeout)

    def terminate(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(5)


def drain_jobs(port: int, prefix: str, count: int, *, workers: int, base_ms: int) -> list[PublishJob]:
    shares = [count // workers + (1 if w < count % workers else 0) for w in range(workers)]
    return [
        PublishJob(port, prefix, w, workers, count=share, base_ms=base_ms)
        for w, share in enumerate(shares)
        if share
    ]


def paced_jobs(port: int, prefix: str, rate: float, *, workers: int, seconds: float) -> list[PublishJob]:
    return [
        PublishJob(port, prefix, w, workers, rate=rate / workers, seconds=seconds) for w in range(workers)
    ]
