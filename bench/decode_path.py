"""CPU cost of the ingester's per-message decode path, without broker, spool or InfluxDB.

Feeds N tasmota-sml messages of the bench workload (110 households x 4 meter readers, device time in
local time) through exactly what ``Ingester._take`` does per message: ``MessageDecoder.decode`` →
``Enricher.enrich`` (an in-memory registry snapshot like ``bench/registry_seed.py`` seeds) →
``reading_line``. Reports CPU µs per message (``time.process_time``) for several repetitions and a hash
of every line produced, so two trees can be checked for byte-identical output.

``--compare REF`` runs the same measurement on a temporary ``git worktree`` of REF (a subprocess with
PYTHONPATH on the worktree, the same profiles and messages) and prints both figures and their ratio::

    .venv/bin/python -m bench.decode_path --compare HEAD
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from bench.worktree import ROOT, run_json, worktree

PREFIX = "rl-bench/"
BASE_MS = 1_764_320_400_000  # 2025-11-28T09:00:00Z: device times one millisecond apart per device


def _enricher() -> Any:
    """An Enricher over an in-memory snapshot: every workload device assigned since 2000."""
    from bench.workload import devices
    from ingest.enrich import Enricher
    from ingest.registry.snapshot import DeviceEntry, RegistrySnapshot, Span

    since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    entries = {}
    for n, device in enumerate(devices(), start=1):
        building = f"Haus {device.gateway}"
        span = Span(since, None, device.device.rsplit("-", 1)[0], building, n, 1)
        entries[(device.gateway, device.device)] = DeviceEntry(
            n, device.gateway, device.device, "tasmota-sml", None, "active", (span,), (since,)
        )
    return Enricher(RegistrySnapshot(entries, dt.datetime.now(dt.UTC)))


def _messages(count: int) -> list[tuple[str, bytes, int]]:
    from bench.workload import devices, payload

    mine = devices()
    topics = [d.topic(PREFIX) for d in mine]
    out: list[tuple[str, bytes, int]] = []
    seq = 0
    while len(out) < count:
        for i, device in enumerate(mine):
            ms = BASE_MS + seq
            out.append((topics[i], payload(device, seq, ms), (ms + 1500) * 1_000_000))
            if len(out) == count:
                break
        seq += 1
    return out


def measure(count: int, repeat: int, profiles_dir: Path) -> dict[str, Any]:
    import ingest
    from ingest.decode import MessageDecoder
    from ingest.lineprotocol import reading_line
    from ingest.profiles import load_profiles

    decoder = MessageDecoder(load_profiles(profiles_dir, tz="Europe/Berlin"), topic_prefix=PREFIX)
    enricher = _enricher()
    messages = _messages(count)
    runs: list[float] = []
    digest = ""
    for _ in range(repeat):
        lines: list[str] = []
        started = time.process_time()
        for topic, body, received_ns in messages:  # the per-message work of Ingester._take
            readings = decoder.decode(topic, body, received_ns)
            enricher.enrich(readings)
            for reading in readings:
                line = reading_line(reading)
                if line:
                    lines.append(line)
        runs.append((time.process_time() - started) / count * 1e6)
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return {
        "ingest": str(Path(ingest.__file__).parent),
        "messages": count,
        "repeat": repeat,
        "cpu_us_per_msg_runs": [round(r, 2) for r in runs],
        "cpu_us_per_msg": round(min(runs), 2),  # the least disturbed run
        "lines": len(lines),
        "lines_sha256": digest,
    }


def compare(ref: str, count: int, repeat: int, profiles_dir: Path) -> dict[str, Any]:
    args = ["--messages", str(count), "--repeat", str(repeat), "--profiles", str(profiles_dir), "--json"]
    with worktree(ref) as tree:
        before = run_json(tree, Path(__file__).resolve(), "bench.decode_path", args)
    after = measure(count, repeat, profiles_dir)
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "speedup": round(before["cpu_us_per_msg"] / after["cpu_us_per_msg"], 2),
        "identical_output": before["lines_sha256"] == after["lines_sha256"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profiles", type=Path, default=ROOT / "device_profiles")
    parser.add_argument("--compare", metavar="REF", help="also measure git REF (e.g. HEAD) in a worktree")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    load = Path("/proc/loadavg").read_text().split()[0]
    if args.compare:
        result = compare(args.compare, args.messages, args.repeat, args.profiles.resolve())
        if not args.json:
            b, a = result["before"], result["after"]
            print(f"load {load}; {args.messages} messages x {args.repeat} runs (best run; all runs in JSON)")
            print(f"{args.compare:>10}: {b['cpu_us_per_msg']:8.2f} µs/msg  ({b['ingest']})")
            print(f"{'working':>10}: {a['cpu_us_per_msg']:8.2f} µs/msg  ({a['ingest']})")
            print(
                f"{'speedup':>10}: {result['speedup']:8.2f}x   identical output: {result['identical_output']}"
            )
    else:
        result = measure(args.messages, args.repeat, args.profiles.resolve())
    result["load_at_start"] = float(load)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
