"""Ingest benchmark: the ingester against Node-RED (two flows) and a naive bridge, in one run. Prints a table
and, as the last line, one JSON object.

    make bench                                  # full: 500,000-message drains, 60 s trials, 5 min outage
    .venv/bin/python -m bench.ingest --quick    # a few minutes: 50,000 messages, 10 s trials, 15 s outage
    .venv/bin/python -m bench.ingest --quick --profile /tmp/profile   # + py-spy during an extra drain

Everything runs on 127.0.0.1: Mosquitto and InfluxDB 1.6 from ``ingest.localservices`` in a temp dir,
Node-RED installed there with ``npm ci`` from bench/nodered/package-lock.json. Figures (see
docs/performance.md for the method):

drain     N messages queue in the consumer's persistent session while it is stopped; it is started and
          the clock runs from its process start until ``count(power_w)`` in InfluxDB equals N.
limit     the same N drained by ``mosquitto_sub -c -q 1 -C N`` (C, output discarded), process start to
          exit: what the broker delivers on this machine; every drain is also shown as a fraction of it.
live      paced publishing at fixed rates; a rate is kept when the backlog (acknowledged by the broker
          minus confirmed by InfluxDB) does not grow over the window.
latency   a probe device publishes 20 msg/s alongside the load with its publish time in the payload; a
          poller queries InfluxDB every 50 ms for its new points: latency = first seen - published.
cost      ingester CPU (utime+stime from /proc/<pid>/stat) per message; peak RSS is VmHWM.
recovery  2,000 msg/s, InfluxDB stopped for ``--outage`` s and started again: the rate at which the
          ingester writes its backlog, from the first write after the restart until it has caught up.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.systems import (
    BenchError,
    Influx,
    IngesterSystem,
    NaiveBridge,
    NodeRed,
    System,
    cpu_seconds,
    discard_session,
    install_nodered,
    loadavg,
    precreate_session,
    setting_overrides,
)
from bench.workload import Device, Publishers, drain_jobs, paced_jobs, payload, subscription
from ingest.localservices import InfluxDB, Mosquitto
from simulators.publisher import Publisher

PUBLISHER_PROCESSES = 2  # WirePublisher: one process alone passes ~98k msg/s here
LADDER = (1_000, 5_000, 10_000, 25_000, 30_000)
LATENCY_RATE = 5_000
RECOVERY_RATE = 2_000
PROBE = Device(-1, "gw-probe", "probe-01", "pv")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {loadavg():.2f}] {message}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    directory: Path
    mosquitto: Mosquitto
    influxdb: InfluxDB
    influx: Influx
    args: argparse.Namespace
    registry_url: str | None = None
    phases: int = 0

    def ingester(self, directory: Path, database: str, prefix: str) -> IngesterSystem:
        return IngesterSystem(
            directory,
            mqtt_port=self.mosquitto.port,
            influx_url=self.influxdb.url,
            database=database,
            prefix=prefix,
            registry_url=self.registry_url,
            overrides=self.args.overrides,
        )

    def fresh(self, name: str) -> tuple[Path, str, str]:
        """A directory, database and topic prefix of its own for one phase."""
        self.phases += 1
        database = f"{name}_{self.phases}"
        self.influx.create(database)
        return self.directory / database, database, f"bench{self.phases}/"

    def service_pids(self) -> dict[str, int]:
        pids = {}
        for name, service in (("broker", self.mosquitto), ("influxdb", self.influxdb)):
            if service.process is not None:
                pids[name] = service.process.pid
        return pids


# drain ---------------------------------------------------------------------------------------------


@dataclass
class DrainResult:
    system: str
    messages: int
    written: int
    seconds: float
    msg_per_s: float
    complete: bool
    publish_msg_per_s: float
    first_point_s: float | None = None  # process start -> first point in InfluxDB
    msg_per_s_after_first_point: float | None = None  # the rate without startup and first batch
    cpu_us_per_msg: float = 0.0
    peak_rss_mb: float = 0.0
    all_received_s: float | None = None  # the ingester: process start -> every message received
    note: str = ""


def publish_backlog(bench: Bench, prefix: str, count: int) -> float:
    """Queue ``count`` messages for a stopped consumer; returns the publish rate."""
    started = time.monotonic()
    base_ms = (time.time_ns() // 1_000_000) - 3_600_000  # an hour ago: well in the past, one shard
    publishers = Publishers(
        drain_jobs(bench.mosquitto.port, prefix, count, workers=PUBLISHER_PROCESSES, base_ms=base_ms)
    ).start()
    publishers.join(timeout=120 + count / 2_000)
    if publishers.published != count:
        raise BenchError(f"the broker acknowledged {publishers.published} of {count} messages")
    return count / (time.monotonic() - started)


def drain(
    bench: Bench,
    make: Callable[[Path, str, str], System],
    *,
    count: int,
    cap_s: float,
    precreate: Callable[[System], None],
    on_running: Callable[[System], Any] | None = None,
) -> DrainResult:
    directory, database, prefix = bench.fresh("drain")
    system = make(directory, database, prefix)
    precreate(system)
    publish_rate = publish_backlog(bench, prefix, count)
    log(f"{system.label}: {count} messages queued ({publish_rate:,.0f} msg/s publishing); starting it")
    time.sleep(2)  # let the machine settle after publishing
    # the clock runs from the process start (startup included, the same for every system): a "ready"
    # line comes only after the burst of queued messages that the broker sends right after CONNACK
    system.start(wait_ready=False)
    extra = on_running(system) if on_running is not None else None
    written, done, first, at_first, last_progress, last_written = 0, 0.0, 0.0, 0, time.monotonic(), -1
    note, received_at = "", 0.0
    try:
        while True:
            time.sleep(0.5)
            written = bench.influx.count(database)
            now = time.monotonic()
            if written > 0 and not first:
                first, at_first = now, written
            if not received_at and isinstance(system, IngesterSystem):
                with contextlib.suppress(httpx.HTTPError, KeyError):  # /metrics is up a moment after start
                    if system.metrics()["received_total"] >= count:
                        received_at = now
            if written >= count:
                done = now
                break
            if written != last_written:
                last_progress, last_written = now, written
            if now - system.launched_at > cap_s:
                note = f"capped at {cap_s:.0f} s"
                break
            if now - last_progress > 60:
                note = "stalled (no new points for 60 s)"
                break
            if system.process is not None and system.process.poll() is not None:
                note = f"exited with {system.process.returncode}"
                break
        end = done or time.monotonic()
        seconds = end - system.launched_at
        cpu = system.cpu()
        rss = system.peak_rss()
    finally:
        if extra is not None and hasattr(extra, "stop"):
            extra.stop()
        system.stop()
        discard_session(bench.mosquitto.port, system.client_id)  # its leftovers would burden the broker
    written = max(written, bench.influx.count(database)) if not done else written
    result = DrainResult(
        system=system.label,
        messages=count,
        written=written,
        seconds=round(seconds, 2),
        msg_per_s=round(written / seconds, 1),
        complete=bool(done),
        publish_msg_per_s=round(publish_rate),
        first_point_s=round(first - system.launched_at, 2) if first else None,
        msg_per_s_after_first_point=(
            round((written - at_first) / (end - first), 1) if first and end - first > 1 else None
        ),
        cpu_us_per_msg=round(cpu / max(written, 1) * 1e6, 1),
        peak_rss_mb=round(rss, 1),
        all_received_s=round(received_at - system.launched_at, 2) if received_at else None,
        note=note,
    )
    log(f"{system.label}: {result}")
    return result


def broker_limit(bench: Bench, *, count: int, timeout_s: float = 600) -> DrainResult:
    """What the broker can deliver: the same backlog drained by ``mosquitto_sub`` (C, libmosquitto) from a
    persistent session at QoS 1, output discarded. Clock from its process start to its exit after ``count``
    messages (``-C``); CPU from its rusage."""
    binary = shutil.which("mosquitto_sub")
    if binary is None:
        raise BenchError("mosquitto_sub not found (Debian package mosquitto-clients)")
    _, _, prefix = bench.fresh("limit")
    client_id = f"mosquitto-sub-{bench.phases}"
    base = [binary, "-h", "127.0.0.1", "-p", str(bench.mosquitto.port), "-c", "-i", client_id, "-q", "1"]
    base += ["-t", subscription(prefix)]
    subprocess.run([*base, "-E"], check=True, timeout=30, stdout=subprocess.DEVNULL)  # the session
    publish_rate = publish_backlog(bench, prefix, count)
    log(f"mosquitto_sub: {count} messages queued ({publish_rate:,.0f} msg/s publishing); starting it")
    time.sleep(2)
    started = time.monotonic()
    process = subprocess.Popen([*base, "-C", str(count)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    note = ""
    try:
        _, status, usage = _wait4(process.pid, timeout_s)
    except TimeoutError:
        process.kill()
        _, status, usage = os.wait4(process.pid, 0)
        note = f"capped at {timeout_s:.0f} s"
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode and not note:
        note = f"exited with {process.returncode}"
    discard_session(bench.mosquitto.port, client_id)
    received = count if not note else 0
    result = DrainResult(
        system="mosquitto_sub",
        messages=count,
        written=received,  # received: it writes nothing
        seconds=round(seconds, 2),
        msg_per_s=round(received / seconds, 1),
        complete=not note,
        publish_msg_per_s=round(publish_rate),
        cpu_us_per_msg=round((usage.ru_utime + usage.ru_stime) / max(received, 1) * 1e6, 2),
        peak_rss_mb=0.0,  # rusage's ru_maxrss would be the forking parent's (before the exec)
        all_received_s=round(seconds, 2),
        note=note or "the limit: the broker's delivery to a C client, nothing decoded or written",
    )
    log(f"mosquitto_sub: {result}")
    return result


def _wait4(pid: int, timeout_s: float) -> tuple[int, int, Any]:
    """os.wait4 with a deadline (polled: the exit is what is timed, to within 5 ms)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return done, status, usage
        time.sleep(0.005)
    raise TimeoutError


def start_stop(system: System) -> None:
    """The ingester creates its own persistent session (MQTT 5, session expiry): start it once, stop it."""
    system.start()
    system.stop()


# profile -------------------------------------------------------------------------------------------


class Profiler:
    """py-spy attached to a running process, writing collapsed stacks ("raw" format)."""

    def __init__(self, pid: int, output: Path, seconds: float) -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(py_spy).exists():
            raise BenchError("py-spy is not installed: .venv/bin/pip install py-spy")
        self.output = output
        self.process = subprocess.Popen(
            [
                *(py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking"),
                *("--duration", str(int(seconds)), "--output", str(output)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: py-spy writes what it has
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(30)
        if self.process.poll() is None:
            self.process.kill()


def summarize_profile(path: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive shares of the sampled stacks, by function."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack:
            continue
        samples = int(number)
        frames = [_short(f) for f in stack.split(";")]
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return {"self": [], "inclusive": []}
    return {
        "self": [(name, round(100 * n / total, 1)) for name, n in own.most_common(top)],
        "inclusive": [(name, round(100 * n / total, 1)) for name, n in inclusive.most_common(top + 10)],
    }


def _short(frame: str) -> str:
    """'decode (/x/ingest/decoders/tasmota_sml.py:120)' -> 'decode (ingest/decoders/tasmota_sml.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/lib/python3.11/", "/work/main/", str(Path.cwd()) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


# live, latency, cost ---------------------------------------------------------------------------------


class Probe:
    """20 msg/s from one extra device, its publish times remembered; a poller sees them in InfluxDB."""

    def __init__(self, bench: Bench, database: str, prefix: str, *, rate: float = 20.0) -> None:
        self.bench, self.database, self.prefix, self.rate = bench, database, prefix, rate
        self.sent: dict[int, float] = {}
        self.seen: list[tuple[float, float]] = []  # (published at, latency s)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._publish, name="probe-publish", daemon=True),
            threading.Thread(target=self._poll, name="probe-poll", daemon=True),
        ]

    def start(self) -> Probe:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def latencies(self, since: float, until: float) -> list[float]:
        return [latency for at, latency in self.seen if since <= at <= until]

    def _publish(self) -> None:
        topic = PROBE.topic(self.prefix)
        seq = 0
        with Publisher("127.0.0.1", self.bench.mosquitto.port, window=100) as publisher:
            while not self._stop.wait(1 / self.rate):
                now = time.time()
                ms = int(now * 1000)
                self.sent[ms * 1_000_000] = now
                publisher.publish(topic, payload(PROBE, seq, ms))
                seq += 1

    def _poll(self) -> None:
        after = time.time_ns()
        query = 'SELECT "power_w" FROM "electricity" WHERE "device"=\'probe-01\' AND time > {}'
        while not self._stop.wait(0.05):
            try:
                series = self.bench.influx.query(self.database, query.format(after))
            except Exception:
                continue
            seen = time.time()
            for row in series[0]["values"] if series else []:
                published = self.sent.get(row[0])
                if published is not None:
                    self.seen.append((published, seen - published))
                after = max(after, row[0])


@dataclass
class Trial:
    rate: int
    seconds: float
    achieved: float = 0.0
    backlog_slope: float = 0.0  # msg/s the backlog grew by (least squares over the window)
    backlog_end: int = 0
    kept_up: bool = False
    cpu_us_per_msg: float = 0.0
    cpu_percent: dict[str, float] = field(default_factory=dict)
    p50_latency_s: float | None = None
    p99_latency_s: float | None = None
    latency_samples: int = 0
    settle_s: float = 0.0
    aborted: bool = False  # stopped early: the backlog passed 10 s worth of messages
    load_before: float = 0.0


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var if var else 0.0


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


class LiveIngester:
    """One running ingester for the paced trials; tracks everything the broker acknowledged."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        directory, self.database, self.prefix = bench.fresh("live")
        self.system = bench.ingester(directory, self.database, self.prefix)
        self.published = 0  # load messages acknowledged by the broker over all trials
        self.probe: Probe | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[LiveIngester]:
        self.system.start()
        self.probe = Probe(self.bench, self.database, self.prefix).start()
        try:
            yield self
        finally:
            self.probe.stop()
            self.system.stop()

    def written(self) -> int:
        return int(self.system.metrics()["written_total"])

    def received(self) -> int:
        return int(self.system.metrics()["received_total"])

    def expected(self) -> int:
        return self.published + (len(self.probe.sent) if self.probe else 0)

    def trial(self, rate: int, seconds: float) -> Trial:
        assert self.probe is not None
        bench, trial = self.bench, Trial(rate=rate, seconds=seconds, load_before=loadavg())
        warmup = min(5.0, seconds / 3)
        publishers = Publishers(
            paced_jobs(bench.mosquitto.port, self.prefix, rate, workers=PUBLISHER_PROCESSES, seconds=seconds)
        ).start()
        pids = {"ingester": self.system.pid, **bench.service_pids()}
        samples: list[tuple[float, int, int, int, dict[str, float]]] = []
        before = self.published
        started = time.monotonic()
        while publishers.alive() and time.monotonic() - started < seconds + 30:
            time.sleep(0.5)
            cpus = {name: cpu_seconds(pid) for name, pid in pids.items()}
            cpus["publishers"] = sum(cpu_seconds(pid) for pid in publishers.pids)
            metrics = self.system.metrics()
            # everything the broker acknowledged (load of all trials + probe) minus what InfluxDB confirmed
            acknowledged = before + publishers.published + len(self.probe.sent)
            samples.append(
                (
                    time.monotonic() - started,
                    publishers.published,
                    int(metrics["received_total"]),
                    acknowledged - int(metrics["written_total"]),
                    cpus,
                )
            )
            if samples[-1][3] > max(10 * rate, 20_000) and not trial.aborted:
                trial.aborted = True  # clearly not keeping up: stop early, keep the settling bounded
                publishers.stop_event.set()
        publishers.join(timeout=60)
        self.published += publishers.published
        end = samples[-1][0] if trial.aborted else seconds - 0.5
        window = [s for s in samples if warmup <= s[0] <= end] or samples[-3:]
        if len(window) < 3:
            raise BenchError(f"too few samples in the {rate} msg/s trial")
        first, last = window[0], window[-1]
        elapsed = last[0] - first[0]
        trial.achieved = round((last[1] - first[1]) / elapsed, 1)
        trial.backlog_slope = round(_slope([(t, float(backlog)) for t, _, _, backlog, _ in window]), 1)
        trial.backlog_end = last[3]
        received = last[2] - first[2]
        trial.cpu_percent = {
            name: round(100 * (last[4][name] - first[4][name]) / elapsed, 1) for name in last[4]
        }
        trial.cpu_us_per_msg = round((last[4]["ingester"] - first[4]["ingester"]) / max(received, 1) * 1e6, 1)
        # kept up: the backlog stayed under a second's worth and did not grow by 5 % of the rate per
        # second, and the publishers reached the rate (else the machine, not the ingester, set the pace)
        trial.kept_up = (
            not trial.aborted
            and trial.backlog_end <= max(2_000, rate)
            and trial.backlog_slope < 0.05 * rate
            and trial.achieved >= 0.95 * rate
        )
        wall_start = time.time() - (time.monotonic() - started)
        latencies = self.probe.latencies(wall_start + warmup, wall_start + seconds)
        trial.latency_samples = len(latencies)
        trial.p50_latency_s = _quantile(latencies, 0.5)
        trial.p99_latency_s = _quantile(latencies, 0.99)
        settle_started = time.monotonic()
        deadline = settle_started + min(400, 60 + max(trial.backlog_end, 0) / 2_000)
        while time.monotonic() < deadline:
            metrics = self.system.metrics()
            if metrics["received_total"] >= self.published and metrics["in_spool_messages"] == 0:
                break
            time.sleep(0.2)
        trial.settle_s = round(time.monotonic() - settle_started, 1)
        log(f"trial {rate:,} msg/s: {trial}")
        return trial

    def lost(self) -> int:
        """After the probe stopped and everything settled: published - points in InfluxDB."""
        assert self.probe is not None
        self.probe.stop()
        expected = self.expected()
        deadline = time.monotonic() + 120
        while self.bench.influx.count(self.database) < expected and time.monotonic() < deadline:
            time.sleep(1)
        return expected - self.bench.influx.count(self.database)


def search_live(trials: list[Trial], try_rate: Callable[[int], Trial], *, extra: int) -> list[Trial]:
    """Beyond the ladder: bisect between the highest rate kept and the lowest one missed."""
    for _ in range(extra):
        kept = [t.rate for t in trials if t.kept_up]
        missed = [t.rate for t in trials if not t.kept_up]
        low = max(kept, default=0)
        high = min((r for r in missed if r > low), default=None)
        if high is None:
            rate = int(low * 1.25)
        else:
            rate = (low + high) // 2
            if high - low <= max(1_000, low // 10):
                break
        rate = round(rate / 500) * 500
        if any(t.rate == rate for t in trials):
            break
        trials.append(try_rate(rate))
    return trials


# recovery ---------------------------------------------------------------------------------------------


@dataclass
class Recovery:
    rate: int
    outage_s: float
    backlog_at_restart: int = 0
    resume_delay_s: float = 0.0
    catch_up_s: float = 0.0
    drain_msg_per_s: float = 0.0
    caught_up: bool = False
    lost: int = 0


def recovery(bench: Bench, *, outage_s: float) -> Recovery:
    directory, database, prefix = bench.fresh("recovery")
    system = bench.ingester(directory, database, prefix)
    result = Recovery(rate=RECOVERY_RATE, outage_s=outage_s)
    system.start()
    publishers = Publishers(
        paced_jobs(bench.mosquitto.port, prefix, RECOVERY_RATE, workers=2, seconds=0)
    ).start()
    try:

        def written() -> int:
            return int(system.metrics()["written_total"])

        time.sleep(5)
        log(f"recovery: InfluxDB stopped for {outage_s:.0f} s at {RECOVERY_RATE} msg/s")
        bench.influxdb.stop()
        time.sleep(outage_s)
        bench.influxdb.start()
        restarted = time.monotonic()
        before = written()
        result.backlog_at_restart = publishers.published - before
        resumed, at_resume = 0.0, before
        deadline = restarted + 120 + outage_s * 2
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now, count = time.monotonic(), written()
            if not resumed and count > before:
                resumed, at_resume = now, before
            if resumed and publishers.published - count < RECOVERY_RATE:
                result.caught_up = True
                result.catch_up_s = round(now - resumed, 1)
                result.drain_msg_per_s = round((count - at_resume) / max(now - resumed, 1e-3), 1)
                break
        result.resume_delay_s = round((resumed or time.monotonic()) - restarted, 1)
    finally:
        publishers.stop()
    expected = publishers.published
    deadline = time.monotonic() + 120
    while bench.influx.count(database) < expected and time.monotonic() < deadline:
        time.sleep(1)
    result.lost = expected - bench.influx.count(database)
    system.stop()
    log(f"recovery: {result}")
    return result


# report -----------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    versions = {}
    for name, command in (("mosquitto", ["mosquitto", "-h"]), ("influxd", ["influxd", "version"])):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            binary = shutil.which(name) or f"/usr/sbin/{name}"
            out = subprocess.run([binary, *command[1:]], capture_output=True, text=True, timeout=10)
            versions[name] = (out.stdout or out.stderr).splitlines()[0].strip()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        versions["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": memory,
        "python": platform.python_version(),
        "kernel": platform.release(),
        **versions,
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def table(result: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []

    def row(name: str, value: Any, target: str = "") -> None:
        rows.append((name, str(value), target))

    d = result["drain"]
    row("drain throughput (msg/s)", num(result["drain_msg_per_s"]), ">= 30,000")
    row(
        "  of the broker's limit (mosquitto_sub drain)",
        f"{result['ratios']['of_broker_limit']} of {num(result['broker_limit_msg_per_s'])}",
    )
    row(
        "  messages / seconds / lost",
        f"{d['messages']:,} / {d['seconds']} / {result['drain_lost']}",
        "0 lost",
    )
    row("live throughput (msg/s)", num(result["live_msg_per_s"]), ">= 30,000")
    row(
        "latency p50 / p99 at 5k msg/s (s)",
        f"{result['p50_latency_s']} / {result['p99_latency_s']}",
        "p99 <= 1.0",
    )
    row("CPU per message, drain (µs)", result["cpu_us_per_msg"], "<= 25")
    row("CPU per message at 5k msg/s (µs)", result["cpu_us_per_msg_at_5k"], "<= 25")
    row("peak RSS (MB)", result["peak_rss_mb"], "<= 200")
    rec = result["recovery"]
    if rec:
        row(
            f"recovery drain after {rec['outage_s']:.0f} s outage (msg/s)",
            num(rec["drain_msg_per_s"]),
            ">= 5x live rate",
        )
        row(
            "  backlog at restart / resume delay (s)",
            f"{rec['backlog_at_restart']:,} / {rec['resume_delay_s']}",
        )
    row("lost (all ingester phases)", result["lost"], "0")
    for key, label in (
        ("nodered_msg_per_s", "Node-RED common flow"),
        ("nodered_batch_msg_per_s", "Node-RED join+batch flow"),
        ("naive_msg_per_s", "naive paho bridge"),
    ):
        row(f"{label} drain (msg/s)", num(result[key]))
    r = result["ratios"]
    row("ratio vs Node-RED common", f"{r['vs_nodered']}x", ">= 10x")
    row("ratio vs Node-RED batch", f"{r['vs_nodered_batch']}x", ">= 1.8x")
    row("ratio vs naive bridge", f"{r['vs_naive']}x")
    if rec:  # "the live rate": what arrives during the outage test, and the highest rate kept up with
        row(
            f"ratio recovery drain vs the {rec['rate']:,} msg/s arriving",
            f"{r['recovery_vs_offered']}x",
            ">= 5x",
        )
        row("ratio recovery drain vs live throughput", f"{r['recovery_vs_live']}x", "(>= 5x)")
    width = max(len(n) for n, _, _ in rows)
    value_width = max(len(v) for _, v, _ in rows)
    lines = [f"{n:<{width}}  {v:>{value_width}}  {t}" for n, v, t in rows]
    lines.append("")
    lines.append("drains (same workload and broker; clock from process start to all points in InfluxDB;")
    lines.append("  w/o startup: the rate from the first point in InfluxDB on):")
    lines.append(
        f"  {'system':<15}{'msg/s':>10}{'of limit':>9}{'w/o startup':>12}{'written':>10}{'seconds':>9}"
        f"{'µs CPU/msg':>12}{'RSS MB':>8}  note"
    )
    limit_rate = result["broker_limit_msg_per_s"]
    for drain_row in result["drains"]:
        lines.append(
            f"  {drain_row['system']:<15}{drain_row['msg_per_s']:>10,.0f}"
            f"{ratio(drain_row['msg_per_s'], limit_rate)!s:>9}"
            f"{num(drain_row['msg_per_s_after_first_point']):>12}{drain_row['written']:>10,}"
            f"{drain_row['seconds']:>9}{drain_row['cpu_us_per_msg']:>12}{drain_row['peak_rss_mb']:>8}"
            f"  {drain_row['note']}"
        )
    lines.append("")
    lines.append("cost with load (ingester; CPU % of one core per process):")
    lines.append(
        f"  {'rate':>7}{'achieved':>10}{'kept up':>9}{'backlog/s':>10}{'µs/msg':>8}{'p50 s':>7}{'p99 s':>7}"
        "  CPU% ingester/broker/influx/publishers"
    )
    for t in result["trials"]:
        cpu = t["cpu_percent"]
        lines.append(
            f"  {t['rate']:>7,}{t['achieved']:>10,.0f}{'yes' if t['kept_up'] else 'no':>9}"
            f"{t['backlog_slope']:>10,.0f}{t['cpu_us_per_msg']:>8}{t['p50_latency_s']!s:>7}"
            f"{t['p99_latency_s']!s:>7}  {cpu.get('ingester')}/{cpu.get('broker')}/{cpu.get('influxdb')}"
            f"/{cpu.get('publishers')}"
        )
    if result.get("profile"):
        lines.append("")
        lines.append("ingester profile during a drain (py-spy, share of samples):")
        lines.append("  self time:")
        lines.extend(f"    {share:5.1f}%  {name}" for name, share in result["profile"]["self"])
        lines.append("  inclusive:")
        lines.extend(f"    {share:5.1f}%  {name}" for name, share in result["profile"]["inclusive"])
    lines.append("")
    lines.append(
        "registry enrichment (household/building tags from a 440-device SQLite registry): "
        + ("on" if result["registry_enrichment"] else "OFF")
    )
    return "\n".join(lines)


# main -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small figures in a few minutes")
    parser.add_argument("--messages", type=int, help="drain size (full 500,000; quick 50,000)")
    parser.add_argument("--trial-seconds", type=float, help="length of each live trial (full 60; quick 10)")
    parser.add_argument("--outage", type=float, help="InfluxDB outage in seconds (full 300; quick 15)")
    parser.add_argument(
        "--baseline-cap", type=float, help="longest a baseline may drain, s (full 300; quick 45)"
    )
    parser.add_argument("--skip-baselines", action="store_true", help="only the ingester")
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument(
        "--drain-only", action="store_true", help="only the drain (and --profile): no live trials"
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [int(r) for r in text.split(",")],
        help="live trials at these msg/s only (comma-separated), no search: --rates 5000 for the latency",
    )
    parser.add_argument("--no-enrich", action="store_true", help="registry enrichment off (default: on)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=YAML",
        help="an ingester setting over the bench's, e.g. --set influx.gzip=true (repeatable)",
    )
    parser.add_argument("--profile", type=Path, help="also profile a drain with py-spy; stacks go here")
    parser.add_argument("--workdir", type=Path, help="parent of the temp dir (default: system temp)")
    args = parser.parse_args(argv)
    try:
        args.overrides = setting_overrides(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    quick = args.quick
    args.messages = args.messages or (50_000 if quick else 500_000)
    args.trial_seconds = args.trial_seconds or (10.0 if quick else 60.0)
    args.outage = args.outage if args.outage is not None else (15.0 if quick else 300.0)
    args.baseline_cap = args.baseline_cap or (45.0 if quick else 300.0)
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "bench": "ingest",
        "mode": "quick" if args.quick else "full",
        "messages": args.messages,
        "machine": machine(),
        "load_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "registry_enrichment": not args.no_enrich,
    }
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-", dir=args.workdir)))
        mosquitto = stack.enter_context(Mosquitto(workdir / "mosquitto"))
        influxdb = InfluxDB(workdir / "influxdb").start()
        stack.callback(lambda: influxdb.stop())
        influx = Influx(influxdb.url)
        stack.callback(influx.close)
        bench = Bench(workdir, mosquitto, influxdb, influx, args)
        if not args.no_enrich:
            # imported here: every spawned publisher process imports the bench's main module again, and
            # the registry (SQLAlchemy, alembic, argon2) would cost each of them ~0.6 s CPU
            from bench.registry_seed import seed_registry

            bench.registry_url = seed_registry(workdir / "registry.db", extra=[PROBE])
        make_ingester = bench.ingester

        drains = [drain(bench, make_ingester, count=args.messages, cap_s=1800, precreate=start_stop)]
        ingester_drain = drains[0]
        limit = broker_limit(bench, count=args.messages)
        drains.append(limit)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            stacks = args.profile / "ingester-drain.txt"
            seconds = ingester_drain.seconds * 2 + 30

            def attach(system: System) -> Profiler:
                time.sleep(0.3)  # the interpreter is up; messages flow only after its imports and CONNECT
                return Profiler(system.pid, stacks, seconds)

            drain(
                bench, make_ingester, count=args.messages, cap_s=1800, precreate=start_stop, on_running=attach
            )
            time.sleep(1)
            result["profile"] = dict(summarize_profile(stacks))
            result["profile"]["stacks_file"] = str(stacks)

        baselines: dict[str, DrainResult] = {}
        if not args.skip_baselines:
            install = install_nodered(workdir / "nodered")
            for batch in (False, True):

                def make_nodered(directory: Path, database: str, prefix: str, batch: bool = batch) -> System:
                    return NodeRed(
                        directory,
                        install=install,
                        batch=batch,
                        mqtt_port=mosquitto.port,
                        influx_url=influxdb.url,
                        database=database,
                        prefix=prefix,
                    )

                baselines["nodered-batch" if batch else "nodered"] = drain(
                    bench, make_nodered, count=args.messages, cap_s=args.baseline_cap, precreate=_v311_session
                )

            def make_naive(directory: Path, database: str, prefix: str) -> System:
                return NaiveBridge(
                    directory,
                    mqtt_port=mosquitto.port,
                    influx_url=influxdb.url,
                    database=database,
                    prefix=prefix,
                )

            baselines["naive"] = drain(
                bench, make_naive, count=args.messages, cap_s=args.baseline_cap, precreate=_v311_session
            )
        drains += baselines.values()

        trials: list[Trial] = []
        live_lost, live_rss = 0, 0.0
        if not args.drain_only:
            live = LiveIngester(bench)
            with live.running():
                trials = [live.trial(rate, args.trial_seconds) for rate in args.rates or LADDER]
                if not args.rates:
                    extra = 1 if args.quick else 3
                    seconds = args.trial_seconds
                    trials = search_live(trials, lambda rate: live.trial(rate, seconds), extra=extra)
                live_lost = live.lost()
                live_rss = live.system.peak_rss()
        rec = None if args.skip_recovery or args.drain_only else recovery(bench, outage_s=args.outage)

    kept = [t for t in trials if t.kept_up]
    at_5k = next((t for t in trials if t.rate == LATENCY_RATE), None)
    drain_lost = ingester_drain.messages - ingester_drain.written
    nodered = baselines.get("nodered")
    nodered_batch = baselines.get("nodered-batch")
    naive = baselines.get("naive")
    result.update(
        {
            "drain_msg_per_s": ingester_drain.msg_per_s,
            "broker_limit_msg_per_s": limit.msg_per_s,
            "drain_lost": drain_lost,
            "live_msg_per_s": max((t.achieved for t in kept), default=0.0),
            "lost": drain_lost + live_lost + (rec.lost if rec else 0),
            "p50_latency_s": at_5k.p50_latency_s if at_5k else None,
            "p99_latency_s": at_5k.p99_latency_s if at_5k else None,
            "cpu_us_per_msg": ingester_drain.cpu_us_per_msg,
            "cpu_us_per_msg_at_5k": at_5k.cpu_us_per_msg if at_5k else None,
            "peak_rss_mb": max(ingester_drain.peak_rss_mb, round(live_rss, 1)),
            "nodered_msg_per_s": nodered.msg_per_s if nodered else None,
            "nodered_batch_msg_per_s": nodered_batch.msg_per_s if nodered_batch else None,
            "naive_msg_per_s": naive.msg_per_s if naive else None,
            "recovery_drain_msg_per_s": rec.drain_msg_per_s if rec else None,
            "ratios": {
                # the ingester as a fraction of what the broker delivers to a C client in the same run:
                # all points in InfluxDB, and every message received (its /metrics)
                "of_broker_limit": ratio(ingester_drain.msg_per_s, limit.msg_per_s),
                "received_of_broker_limit": (
                    ratio(ingester_drain.messages / ingester_drain.all_received_s, limit.msg_per_s)
                    if ingester_drain.all_received_s
                    else None
                ),
                "vs_nodered": ratio(ingester_drain.msg_per_s, nodered.msg_per_s) if nodered else None,
                "vs_nodered_batch": (
                    ratio(ingester_drain.msg_per_s, nodered_batch.msg_per_s) if nodered_batch else None
                ),
                "vs_naive": ratio(ingester_drain.msg_per_s, naive.msg_per_s) if naive else None,
                "recovery_vs_live": (
                    ratio(rec.drain_msg_per_s, max((t.achieved for t in kept), default=0.0)) if rec else None
                ),
                "recovery_vs_offered": ratio(rec.drain_msg_per_s, rec.rate) if rec else None,
            },
            "drain": ingester_drain.__dict__,
            "drains": [d.__dict__ for d in drains],
            "trials": [t.__dict__ for t in trials],
            "recovery": rec.__dict__ if rec else None,
            "load_at_end": Path("/proc/loadavg").read_text().split()[:3],
        }
    )
    return result


def _v311_session(system: System) -> None:
    precreate_session(system.mqtt_port, system.client_id, subscription(system.prefix))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    log(f"bench: {'quick' if args.quick else 'full'} run, {args.messages:,} messages per drain")
    result = run(args)
    print(table(result))
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
