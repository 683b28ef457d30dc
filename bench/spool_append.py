"""Spool append throughput: group commit (append_many) against one fsync per record. Prints JSON.

.venv/bin/python bench/spool_append.py --dir /var/tmp --record-kb 256 --records 400 --group 8
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from ingest.spool import Spool


def run(directory: Path, *, record: bytes, records: int, group: int) -> dict[str, float]:
    with Spool(directory, max_bytes=8 << 30, segment_bytes=64 << 20) as spool:
        fsyncs = spool.fsync_count
        started = time.perf_counter()
        for _ in range(0, records, group):
            spool.append_many([record] * group)
        elapsed = time.perf_counter() - started
        fsyncs = spool.fsync_count - fsyncs
        megabytes = spool.size_bytes / 1e6
        confirm_started = time.perf_counter()
        for chunk in range(1, spool.next_seq, 64):
            spool.confirm_many(range(chunk, min(chunk + 64, spool.next_seq)))
        confirm_elapsed = time.perf_counter() - confirm_started
    return {
        "group": group,
        "records": records,
        "MB": round(megabytes, 1),
        "seconds": round(elapsed, 3),
        "MB_per_s": round(megabytes / elapsed, 1),
        "records_per_s": round(records / elapsed, 1),
        "fsyncs": fsyncs,
        "confirm_all_seconds": round(confirm_elapsed, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="parent directory (default: system temp)")
    parser.add_argument("--record-kb", type=int, default=256)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--group", type=int, default=8, help="records per append_many")
    args = parser.parse_args()
    record = os.urandom(args.record_kb * 1024)
    results = []
    for group in (1, args.group):
        with tempfile.TemporaryDirectory(dir=args.dir) as name:
            results.append(run(Path(name), record=record, records=args.records, group=group))
    print(json.dumps({"bench": "spool_append", "record_kb": args.record_kb, "runs": results}))


if __name__ == "__main__":
    main()
