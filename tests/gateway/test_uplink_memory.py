"""Draining a backlog of large device messages keeps the uplink's memory bounded (review H4).

A child process opens an outbox holding ~90 MB of 900 KB messages and drains it to a real Mosquitto; it
reports its peak RSS (VmHWM) during the drain. The window is bounded by ``central.window_bytes`` and the
packets are written one by one, so the peak grows by a few window sizes, not by the backlog's size (the
window counted only in messages took the whole backlog at once: 1.67 GB RSS for 229 MB on disk).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingest.gateway.frames import Frame
from ingest.gateway.outbox import Outbox
from ingest.localservices import Mosquitto

REPO = Path(__file__).resolve().parents[2]
MESSAGES = 100
PAYLOAD = 900_000  # below the test broker's message_size_limit (1 MiB)
PEAK_GROWTH_LIMIT = 48 << 20  # 4 MiB window, its packets, the transport's copy, one backlog read

CHILD = r"""
import asyncio, json, sys
from pathlib import Path
from ingest.gateway.config import Central
from ingest.gateway.outbox import Outbox
from ingest.gateway.uplink import Uplink

def status_kb(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)

async def main(directory, port):
    outbox = Outbox(Path(directory), max_bytes=1 << 30, commit_interval_s=0.2)
    central = Central.model_validate({
        "brokers": [f"127.0.0.1:{port}"], "username": "u", "password": "p",
        "client_id": "gw-memory-" + Path(directory).parent.name[-12:], "keepalive_s": 5,
    })
    uplink = Uplink(central, outbox)
    before_kb = status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here on: the drain's peak
    tasks = [asyncio.create_task(uplink.run()), asyncio.create_task(outbox.run())]
    while uplink.stats().acked < int(sys.argv[3]):
        await asyncio.sleep(0.05)
    await uplink.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    outbox.close()
    acked = uplink.stats().acked
    print(json.dumps({"rss_before_kb": before_kb, "hwm_kb": status_kb("VmHWM"), "acked": acked}))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_draining_large_messages_keeps_memory_bounded(mosquitto: Mosquitto, tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    with Outbox(directory, max_bytes=1 << 30) as outbox:
        for n in range(MESSAGES):
            outbox.put(Frame(f"mem{tmp_path.name}/lab/gw-m/dev/big", bytes([n % 256]) * PAYLOAD, n + 1))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(directory), str(mosquitto.port), str(MESSAGES)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["acked"] == MESSAGES
    growth = (figures["hwm_kb"] - figures["rss_before_kb"]) * 1024
    assert growth < PEAK_GROWTH_LIMIT, f"peak RSS grew by {growth >> 20} MiB draining {MESSAGES} x 900 KB"
    with Outbox(directory, max_bytes=1 << 30) as reopened:
        assert reopened.stats().depth == 0
