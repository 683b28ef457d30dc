"""The panel bench on a tiny scale (3 households x 2 days, 2 repetitions): its own InfluxDB, the backfill,
the rollups, every panel timed; the JSON names every panel of every dashboard with a number."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.panels.catalogue import dashboards

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_bench_panels_tiny_scale(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REALLABOR_")}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "bench.panels", "--households", "3", "--days", "2"]
    command += ["--repetitions", "2", "--quiet", "2", "--reuse", str(tmp_path / "data")]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env=env, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    expected = {(d.uid, p.key, r) for d in dashboards() for p in d.panels for r in ("default", "30d")}
    got = {(p["dashboard"], p["panel"], p["range"]) for p in result["panels"]}
    assert got == expected
    for panel in result["panels"]:
        assert panel["errors"] == [], panel  # an empty result is an error: it would hide a broken query
        for key in ("p50_ms", "p95_ms", "max_ms", "raw_p95_ms"):
            assert isinstance(panel[key], float), (panel, key)
            assert panel[key] > 0, (panel, key)
        assert panel["rows"] > 0
        assert panel["raw_rows"] > 0
        assert panel["ok"] == (panel["p95_ms"] <= result["goal_ms"])
    rollup_panels = {(p["dashboard"], p["panel"]) for p in result["panels"] if p["reads"] == "rollups"}
    assert ("reallabor-energy", "days-30") in rollup_panels

    # 3 households of the demo's quarter: every meter each minute for two days, and more
    assert result["data"]["households"] == 3
    assert result["backfill"]["points"] >= 3 * 2 * 1440
    assert result["rollups"]["points"] > 0
    assert "seconds" in result["energy"] or "skipped" in result["energy"]
    assert result["summary"]["default"]["panels"] == len(expected) // 2
    assert result["machine"]["cores"] >= 1

    # the default range of the "today" panels: from local midnight of the data's last day
    end = dt.datetime.fromisoformat(result["data"]["end"])
    today = next(p for p in result["panels"] if p["panel"] == "today-15m" and p["range"] == "default")
    start = dt.datetime.fromisoformat(today["from"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert (start.hour, start.minute) == (0, 0)
    assert end - start < dt.timedelta(days=1)

    # a second run reuses the filled data directory
    again = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env=env, timeout=180, check=False
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["reused"] == str(tmp_path / "data")
