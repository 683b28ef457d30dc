"""The discovery list (:mod:`ingest.discovery.listing`) over one quarantine file and over the same entries
split across N ingester instances' files (:mod:`ingest.discovery.merged`), side by side in one run.

    .venv/bin/python -m bench.discovery_instances --devices 9500 --messages 2 --instances 2 4

A SQLite registry in a temp dir with GATEWAYS gateways (one flooded by most of the devices, as in
tests/registry/test_discovery_fair.py), DEVICES unregistered devices with MESSAGES ``unknown_device``
entries each, and one ``no_profile`` topic per 5 devices; the entries of a device are dealt round-robin
over the instances (as shared subscriptions do). Best of REPEAT for: the overview (``discover``, 10 per
gateway), one gateway with 100, the fleet page's counts and one first contact. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from ingest.decode import MessageDecoder
from ingest.discovery.listing import discover, first_contact, unregistered_counts
from ingest.profiles import load_profiles
from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry
from ingest.registry.db import make_engine, session_factory
from ingest.registry.migrate import upgrade
from ingest.registry.models import Gateway, GatewayStatus

REPO = Path(__file__).resolve().parents[1]
NOW_NS = 1_780_000_000 * 10**9
SECOND = 10**9


def _entries(gateways: list[str], devices: int, messages: int) -> list[QuarantineEntry]:
    out = []
    payload = orjson.dumps({"power_w": 230.5})
    for n in range(devices):
        gw = gateways[0] if n % 10 else gateways[1 + n // 10 % (len(gateways) - 1)]  # one flooded gateway
        for m in range(messages):
            at = NOW_NS + (n * messages + m) * SECOND
            topic = f"lab/{gw}/dev-{n}/state"
            out.append(
                QuarantineEntry(topic, payload, at, "unknown_device", "", "generic-json", gw, f"dev-{n}")
            )
        if n % 5 == 0:
            out.append(QuarantineEntry(f"lab/{gw}/junk/{n}", b"47.5", NOW_NS + n * SECOND, "no_profile", "x"))
    return out


def _write(path: Path, entries: list[QuarantineEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with Quarantine(path) as q:
        for start in range(0, len(entries), 5000):
            q.add_many(entries[start : start + 5000])


def _best(repeat: int, action: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return round(min(times) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=9500)
    parser.add_argument("--messages", type=int, default=2, help="entries per device")
    parser.add_argument("--gateways", type=int, default=5)
    parser.add_argument("--instances", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    decoder = MessageDecoder(load_profiles(REPO / "device_profiles"))
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        engine = make_engine(f"sqlite:///{root / 'registry.db'}")
        upgrade(engine)
        names = [f"gw{k}" for k in range(args.gateways)]
        with session_factory(engine)() as session:
            for name in names:
                session.add(Gateway(name=name, status=GatewayStatus.active, broker_username=name, notes=""))
            session.commit()
        entries = _entries(names, args.devices, args.messages)
        layouts = {"one file (baseline)": 1, **{f"{n} instances": n for n in args.instances}}
        results: dict[str, Any] = {}
        for label, n in layouts.items():
            state = root / label.replace(" ", "_")
            if n == 1:
                _write(state / QUARANTINE_FILE, entries)
            else:
                for k in range(n):
                    _write(state / f"instance-{k}" / QUARANTINE_FILE, entries[k::n])
            path = state / QUARANTINE_FILE
            with session_factory(engine)() as session:
                overview = discover(path, session, decoder)
                results[label] = {
                    "files": n,
                    "overview_ms": _best(args.repeat, lambda: discover(path, session, decoder)),  # noqa: B023
                    "one_gateway_100_ms": _best(
                        args.repeat,
                        lambda: discover(path, session, decoder, gateway=names[0], per_gateway=100),  # noqa: B023
                    ),
                    "counts_ms": _best(args.repeat, lambda: unregistered_counts(path, session, decoder)),  # noqa: B023
                    "first_contact_ms": _best(
                        args.repeat,
                        lambda: first_contact(path, (names[0], "dev-1"), decoder),  # noqa: B023
                    ),
                    "devices_total": sum(g.devices_total for g in overview),
                    "topics_total": sum(g.topics_total for g in overview),
                }
        engine.dispose()
    print(
        json.dumps(
            {
                "devices": args.devices,
                "entries": len(entries),
                "gateways": args.gateways,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
