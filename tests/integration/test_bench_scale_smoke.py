"""The scale-out bench on a tiny workload: 1, 2 and 3 instances on one shared subscription, its own Mosquitto
and InfluxDB; every message drained is written, each instance got a share, the accounts add up, and every
figure of the JSON is there beside the mosquitto_sub limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
MESSAGES = 1_500
RATE = 300


def test_bench_scale_tiny(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALLABOR_")}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "bench.scale", "--messages", str(MESSAGES), "--rate", str(RATE)]
    command += ["--warmup", "0", "--window", "1", "--settle", "0", "--workdir", str(tmp_path)]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["bench"] == "scale"
    assert result["instances"] == [1, 2, 3]
    assert result["machine"]["cores"] == os.cpu_count()
    assert result["lost"] == 0
    assert set(result["by_instances"]) == {"1", "2", "3"}
    for n in (1, 2, 3):
        summary = result["by_instances"][str(n)]
        assert summary["complete"] is True
        assert summary["lost"] == 0
        assert summary["msg_per_s"] > 0
        # a tiny drain may take less than a clock tick (10 ms) of a process' CPU: present, not positive
        for key in (
            "ingester_cpu_us_per_msg",
            "ingester_msg_per_cpu_s",
            "broker_cpu_us_per_msg_publish",
            "broker_cpu_us_per_msg_deliver",
            "influxdb_cpu_us_per_point",
            "live_ingester_cpu_us_per_msg",
        ):
            assert isinstance(summary[key], int | float), (n, key, summary[key])
        (run,) = result["runs"][str(n)]
        assert run["written"] == MESSAGES
        # the broker dealt the drain over every member of the shared subscription
        assert len(run["received_per_instance"]) == n
        assert sum(run["received_per_instance"]) == MESSAGES
        assert min(run["received_per_instance"]) > 0
        # drain and live together: what the instances received is what they wrote, nothing quarantined
        assert run["received_total"] == run["written_total"] > MESSAGES
        assert run["quarantined_total"] == 0
        assert run["ingester_cpu_s"] > run["ingester_startup_cpu_s"] > 0
        assert run["live"]["rate"] == RATE
        assert run["live"]["achieved_msg_per_s"] > 0
        assert set(run["live"]["cpu_percent"]) == {"ingesters", "broker", "influxdb"}

    limit = result["broker_limit"]
    assert limit["system"] == "mosquitto_sub"
    assert limit["complete"] is True
    assert limit["written"] == MESSAGES
    assert limit["broker_cpu_us_per_msg_publish_and_deliver"] > 0
    assert result["by_instances"]["1"]["of_broker_limit"] == pytest.approx(
        result["by_instances"]["1"]["msg_per_s"] / limit["msg_per_s"], abs=0.01
    )
