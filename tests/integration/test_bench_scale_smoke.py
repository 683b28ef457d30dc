"""The scale-out bench on a tiny workload: 1 and 3 instances on one shared subscription (2 adds nothing the
test could see, and ~8 s), its own Mosquitto and InfluxDB; every message drained is written, each instance
got a share, the accounts add up, and every figure of the JSON is there beside the mosquitto_sub limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scale import parse_args

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
MESSAGES = 1_500
RATE = 300
INSTANCES = (1, 3)


def test_bench_scale_tiny(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALLABOR_")}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "bench.scale", "--messages", str(MESSAGES), "--rate", str(RATE)]
    command += [
        "--instances",
        ",".join(map(str, INSTANCES)),
        "--warmup",
        "0",
        "--window",
        "1",
        "--settle",
        "0",
    ]
    command += ["--no-enrich", "--workdir", str(tmp_path)]  # no registry: 4 of ~20 CPU s less
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["bench"] == "scale"
    assert result["instances"] == list(INSTANCES)
    assert result["machine"]["cores"] == os.cpu_count()
    assert result["lost"] == 0
    assert set(result["by_instances"]) == {str(n) for n in INSTANCES}
    for n in INSTANCES:
        summary = result["by_instances"][str(n)]
        assert summary["complete"] is True
        assert summary["lost"] == 0
        assert summary["msg_per_s"] > 0
        # a tiny drain costs a few clock ticks (10 ms) of CPU, less than the start-up's spread: every
        # figure is there, the per-message ones may be 0 or None (not measurable at this size)
        for key in (
            "ingester_cpu_us_per_msg",
            "ingester_msg_per_cpu_s",
            "broker_cpu_us_per_msg_publish",
            "broker_cpu_us_per_msg_deliver",
            "influxdb_cpu_us_per_point",
            "live_ingester_cpu_us_per_msg",
        ):
            assert summary[key] is None or summary[key] >= 0, (n, key, summary[key])
        (run,) = result["runs"][str(n)]
        assert run["written"] == MESSAGES
        # `reallabor ingest --instance K --of N`: a client id (its session) each
        base = run["client_ids"][0].removesuffix("-0")
        assert run["client_ids"] == ([base] if n == 1 else [f"{base}-{k}" for k in range(n)])
        # the broker dealt the drain over every member of the shared subscription
        assert len(run["received_per_instance"]) == n
        assert sum(run["received_per_instance"]) == MESSAGES
        assert min(run["received_per_instance"]) > 0
        # drain and live together: what the instances received is what they wrote, nothing quarantined
        assert run["received_total"] == run["written_total"] > MESSAGES
        assert run["quarantined_total"] == 0
        assert run["ingester_cpu_s"] > 0
        assert run["ingester_startup_cpu_s"] > 0
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


def test_bench_scale_options() -> None:
    args = parse_args([])
    assert (args.instances, args.messages, args.rate, args.rounds) == ([1, 2, 3], 200_000, 5_000, 1)
    assert parse_args(["--instances", "3,1", "--set", "influx.batch_size=100"]).overrides == {
        "influx": {"batch_size": 100}
    }


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--instances", "0,2"], "--instances"),
        (["--messages", "0"], "--messages"),
        (["--rate", "-1"], "--rate"),
        (["--set", "batch_size=1"], "SECTION.KEY=VALUE"),
    ],
)
def test_bench_scale_refuses_bad_options(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err
