"""Gateway to InfluxDB: a frame without device time lands at the gateway's read time (MQTT 5 user property
read_ns), a frame sent twice is one point, an implausible read time gives way to the arrival time."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

from ingest.gateway.config import Central
from ingest.gateway.frames import Frame, meter_topic
from ingest.gateway.outbox import Outbox
from ingest.gateway.uplink import Uplink
from ingest.localservices import LOOPBACK, Mosquitto, free_port
from tests.helpers import InfluxQuery, IngesterProcess, Target, read_metrics, wait_for
from tests.unit.sml_frames import household_frame  # sensor time is a secIndex: the receive time is used

READ_NS = 1_764_320_400_123_456_789  # 2025-11-28T09:00:00.123456789Z


async def send(port: int, outbox_dir: Path, frames: list[Frame]) -> None:
    outbox = Outbox(outbox_dir, max_bytes=10 << 20, commit_interval_s=0.1)
    for frame in frames:
        outbox.put(frame)
    central = Central(
        brokers=[f"{LOOPBACK}:{port}"], username="gw", password="x", client_id=f"gw-{uuid.uuid4().hex[:8]}"
    )
    uplink = Uplink(central, outbox)
    task = asyncio.create_task(uplink.run())
    try:
        deadline = time.monotonic() + 20
        while uplink.stats().acked < len(frames):
            assert time.monotonic() < deadline, uplink.stats()
            await asyncio.sleep(0.05)
    finally:
        await uplink.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        outbox.close()


def test_a_frame_lands_in_influxdb_at_its_read_time(
    mosquitto: Mosquitto, target: Target, ingester: IngesterProcess, influx: InfluxQuery, tmp_path: Path
) -> None:
    metrics_port = free_port()
    ingester.start(ingest={"metrics_port": metrics_port, "stats_interval_s": 0.2})
    topic = target.topic_prefix + meter_topic("gw-rt", "sml", "m1")
    late = target.topic_prefix + meter_topic("gw-rt", "sml", "m2")
    payload = household_frame()
    frames = [
        Frame(topic, payload, READ_NS),
        Frame(topic, payload, READ_NS),  # sent again (a crash between PUBLISH and PUBACK): the same point
        Frame(topic, payload, READ_NS + 1_000_000_000),
        Frame(late, payload, 86_400_000_000_000),  # 1970-01-02: a gateway without NTP yet
    ]
    before = time.time_ns()
    asyncio.run(send(mosquitto.port, tmp_path / "outbox", frames))

    wait_for(lambda: influx.count("electricity", "power_w") == 3, timeout=30, what="three points")
    rows = influx.rows("SELECT power_w FROM electricity WHERE device = 'm1'")
    assert [row["time"] for row in rows] == [READ_NS, READ_NS + 1_000_000_000]
    assert all(row["power_w"] == -1234.0 for row in rows)
    [row] = influx.rows("SELECT power_w FROM electricity WHERE device = 'm2'")
    assert before <= row["time"] <= time.time_ns()  # the arrival time instead
    assert "implausible read time 86400000000000 ns" in ingester.output()
    wait_for(
        lambda: read_metrics(metrics_port)["implausible_read_times_total"] == 1,
        timeout=10,
        what="the implausible read time counted in /metrics",
    )

    def in_stats() -> bool:
        rows = influx.rows('SELECT last("implausible_read_times") AS "n" FROM "ingest_stats"')
        return bool(rows) and rows[0]["n"] == 1

    wait_for(in_stats, timeout=10, what="the implausible read time in ingest_stats")
