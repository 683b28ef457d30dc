"""A household's messages in large quarantines (:mod:`ingest.privacy.quarantine`): the time to count them
(the deletion's plan, the export's selection) and to erase them, from one file and from the same entries
dealt over N ingester instances' files, side by side in one run.

    .venv/bin/python -m bench.privacy_quarantine --entries 200000 --instances 2

ENTRIES implausible-value entries of 5,000 devices on 50 gateways (a 100-byte payload each); the household
has two devices of one gateway (80 of the entries). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ingest.privacy.influx import Selector
from ingest.privacy.quarantine import Window, count, erase
from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry

BASE_NS = 1_780_000_000 * 10**9
PAYLOAD = b'{"power_w": 1.5, "note": "' + b"y" * 74 + b'"}'


def _fill(paths: list[Path], entries: int) -> None:
    for k, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        with Quarantine(path) as q:
            mine = range(k, entries, len(paths))
            for start in range(0, len(mine), 10_000):
                q.add_many(
                    [
                        QuarantineEntry(
                            f"lab/gw{i % 50}/dev-{i % 5000}/state",
                            PAYLOAD,
                            BASE_NS + i * 10**9,
                            "implausible",
                            "x",
                        )
                        for i in mine[start : start + 10_000]
                    ]
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--instances", type=int, default=2)
    args = parser.parse_args()
    household = [Window("gw7", "dev-7", BASE_NS, None), Window("gw7", "dev-57", BASE_NS, None)]
    selector = Selector("WE 1", "Haus A")
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for label, n in (("one file (baseline)", 1), (f"{args.instances} instances", args.instances)):
            state = Path(directory) / str(n)
            paths = (
                [state / QUARANTINE_FILE]
                if n == 1
                else [state / f"instance-{k}" / QUARANTINE_FILE for k in range(n)]
            )
            _fill(paths, args.entries)
            start = time.perf_counter()
            counted = count(state / QUARANTINE_FILE, household, selector)
            counted_s = time.perf_counter() - start
            start = time.perf_counter()
            erased = erase(state / QUARANTINE_FILE, household, selector)
            erased_s = time.perf_counter() - start
            results[label] = {
                "files": n,
                "household_entries": counted,
                "erased": sum(erased.values()),
                "count_s": round(counted_s, 3),
                "erase_s": round(erased_s, 3),
            }
    print(json.dumps({"entries": args.entries, "results": results}, indent=2))


if __name__ == "__main__":
    main()
