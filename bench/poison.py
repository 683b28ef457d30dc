"""The most one message can cost the decode stage: crafted payloads up to ``max_payload_bytes`` on every
profile's topics, worst CPU time and peak memory per profile and shape.

Every example payload of every profile is blown up in each of several shapes (duplicate keys, many keys,
long arrays, long strings, deep nesting, many groups; repeated lines or frames for text and binary
formats), each as large as still fits the payload limit, and decoded as the ingester does. A message's
cost must stay far below the broker's keep-alive and the decode loop's time slice; the figures show by
how much::

    .venv/bin/python -m bench.poison            # JSON: per profile the worst shape, its ms and MB
    .venv/bin/python -m bench.poison --examples 1 --compare 069dbe3  # side by side with another commit
"""

from __future__ import annotations

import argparse
import functools
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.worktree import ROOT, run_json, worktree

LIMIT = 256 * 1024  # ingest.max_payload_bytes' default
RECEIVED_NS = 1_764_320_400_000_000_000


def _dumps(value: Any, *, dup: int = 1) -> str:
    """Compact JSON; with ``dup`` the keys of every innermost object (no object inside) are written ``dup``
    times, which json.dumps cannot do (outer ones once: repeating them too would grow exponentially)."""
    if isinstance(value, dict):
        pairs = [f"{json.dumps(k)}:{_dumps(v, dup=dup)}" for k, v in value.items()]
        innermost = not any(isinstance(v, dict) for v in value.values())
        return "{" + ",".join(pairs * dup if innermost else pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dumps(v, dup=dup) for v in value) + "]"
    return json.dumps(value)


def _map_leaves(value: Any, leaf: Callable[[Any], Any]) -> Any:
    if isinstance(value, dict):
        return {k: _map_leaves(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_leaves(v, leaf) for v in value]
    return leaf(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _many_keys(value: Any, n: int) -> Any:
    if isinstance(value, dict):
        grown = {k: _many_keys(v, n) for k, v in value.items()}
        for i in range(n):
            for k, v in value.items():
                if not isinstance(v, dict | list):
                    grown[f"{k}{i}"] = v
        return grown
    if isinstance(value, list):
        return [_many_keys(v, n) for v in value]
    return value


def _many_groups(value: Any, n: int) -> Any:
    if not isinstance(value, dict):
        return value
    grown = dict(value)
    for i in range(n):
        for k, v in value.items():
            if isinstance(v, dict):
                grown[f"{k}{i}"] = v
    return grown


def _many_objects(value: Any, n: int) -> Any:
    """Every object's object members n more times, at every level (Shelly's params: "switch:0" -> "switch:00",
    "switch:01" …, each a component)."""
    if isinstance(value, dict):
        grown = {k: _many_objects(v, n) for k, v in value.items()}
        for i in range(n):
            for k, v in value.items():
                if isinstance(v, dict):
                    grown[f"{k}{i}"] = v
        return grown
    if isinstance(value, list):
        return [_many_objects(v, n) for v in value]
    return value


def _deep(n: int) -> Callable[[Any], Any]:
    def wrap(leaf: Any) -> Any:
        for _ in range(n):
            leaf = {"v": leaf}
        return leaf

    return wrap


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


JSON_SHAPES: dict[str, Callable[[Any, int], str]] = {
    "duplicate_keys": lambda doc, n: _dumps(doc, dup=n),
    "many_keys": lambda doc, n: _compact(_many_keys(doc, n)),
    "many_groups": lambda doc, n: _compact(_many_groups(doc, n)),
    "many_objects": lambda doc, n: _compact(_many_objects(doc, n)),
    "long_arrays": lambda doc, n: _compact(_map_leaves(doc, lambda leaf: [leaf] * n)),
    "long_strings": lambda doc, n: _compact(_map_leaves(doc, lambda leaf: str(leaf) + "0" * n)),
    "long_numbers": lambda doc, n: _compact(_map_leaves(doc, lambda _: int("9" * min(n, 4000)))),
    "deep": lambda doc, n: _compact(_map_leaves(doc, _deep(min(n, 200)))),
    "spaced": lambda doc, n: _compact(doc).replace(",", "," + " " * n),
}
BYTES_SHAPES: dict[str, Callable[[bytes, int], bytes]] = {
    "repeated": lambda payload, n: payload * n,
    "repeated_lines": lambda payload, n: b"".join(
        line * n if index else line for index, line in enumerate(payload.splitlines(keepends=True))
    ),
    "long_tail": lambda payload, n: payload + b"0" * n,
}


def _largest(make: Callable[[int], bytes]) -> bytes | None:
    """``make(n)`` for the largest n whose payload still fits the limit; None if the shape does not grow
    this payload (or even n=1 is too large)."""
    one, two = len(make(1)), len(make(2))
    if two <= one or one > LIMIT:
        return None
    n = max(1, (LIMIT - one) // (two - one))  # sizes grow about linearly in n
    payload = make(n)
    while len(payload) > LIMIT and n > 1:
        n = max(1, n * LIMIT // len(payload) - 1)
        payload = make(n)
    return payload if len(payload) <= LIMIT else None


def _cases(profiles: Any, examples: int | None) -> Iterator[tuple[str, str, str, bytes]]:
    """(profile, shape, topic, payload) for the first ``examples`` examples (None: all) of every profile
    and every shape."""
    for p in profiles:
        for example in p.profile.examples[:examples]:
            payload = example.payload_bytes()
            try:
                document = json.loads(payload)
            except ValueError:
                document = None
            shapes: list[tuple[str, Callable[[int], bytes]]] = []
            if isinstance(document, dict):
                shapes += [(name, _json_shape(make, document)) for name, make in JSON_SHAPES.items()]
            shapes += [(name, functools.partial(grow, payload)) for name, grow in BYTES_SHAPES.items()]
            for shape, make_payload in shapes:
                found = _largest(make_payload)
                if found is not None:
                    yield p.id, shape, example.topic, found


def _json_shape(make: Callable[[Any, int], str], document: Any) -> Callable[[int], bytes]:
    return lambda n: make(document, n).encode()


def measure(root: Path, examples: int | None) -> dict[str, Any]:
    from ingest.decode import MessageDecoder
    from ingest.lineprotocol import reading_line
    from ingest.profiles import load_profiles
    from ingest.readings import DecodeRejected

    profiles = load_profiles(root / "device_profiles")

    def decode(topic: str, payload: bytes) -> str:
        decoder = MessageDecoder(profiles, max_payload_bytes=LIMIT)  # fresh: no cache carried over
        try:
            return f"{len([reading_line(r) for r in decoder.decode(topic, payload, RECEIVED_NS)])} lines"
        except DecodeRejected as exc:
            return exc.reason

    worst: dict[str, dict[str, Any]] = {}
    peak_mb = 0.0
    cases = 0
    for profile, shape, topic, payload in _cases(profiles, examples):
        started = time.process_time()
        outcome = decode(topic, payload)
        cpu_ms = (time.process_time() - started) * 1000
        tracemalloc.start()  # a second run for memory: tracemalloc slows the first one's clock
        decode(topic, payload)
        peak_mb = max(peak_mb, tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
        cases += 1
        entry = worst.get(profile)
        if entry is None or cpu_ms > entry["cpu_ms"]:
            worst[profile] = {"cpu_ms": round(cpu_ms, 2), "shape": shape, "outcome": outcome}
    slowest = max(worst.values(), key=lambda entry: entry["cpu_ms"])
    return {
        "cases": cases,
        "worst_cpu_ms": slowest["cpu_ms"],
        "worst_peak_mb": round(peak_mb, 1),
        "per_profile": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--compare", metavar="REF", help="also measure this commit (git worktree)")
    parser.add_argument("--examples", type=int, help="examples per profile (default: all)")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    result: dict[str, Any] = {"this_tree": measure(args.root, args.examples)}
    if args.compare:
        with worktree(args.compare) as tree:
            found = run_json(
                tree,
                Path(__file__).resolve(),
                "bench.poison",
                ["--root", str(tree), *(["--examples", str(args.examples)] if args.examples else [])],
            )
            result[args.compare] = found["this_tree"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
