"""CPU cost per SML frame: the sml decoder with its own parser, and smllib's parse of the same frames.

Frames: the decodable examples of ``device_profiles/sml.yaml`` (a two-way eHZ with 13 entries, a
one-way meter with a timestamp …) and the simulated eHZ frames of the gateway bench
(``bench.gateway_frames``: server id, import register, power, secIndex). Per set: µs per frame of

- ``decode``: the whole decoder (transport CRC, parse, units, readings), as the ingester runs it;
- ``parse``: our transport frame + message parse alone (:mod:`ingest.decoders.sml_parse`);
- ``smllib_parse``: smllib's stream reader + ``parse_frame``, what the decoder ran before (null without
  smllib, which is a dev dependency now).

Best of several repetitions, CPU time::

    .venv/bin/python -m bench.sml_decode [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PROFILE = Path(__file__).resolve().parent.parent / "device_profiles" / "sml.yaml"
RECEIVED_NS = 1_764_320_401_000_000_000


def profile_frames() -> dict[str, bytes]:
    """The profile's examples that decode to readings, by name."""
    examples = yaml.safe_load(PROFILE.read_text())["examples"]
    frames = {}
    for example in examples:
        if "readings" not in example:
            continue
        if "payload_hex" in example:
            frames[example["name"]] = bytes.fromhex("".join(example["payload_hex"].split()))
        else:
            frames[example["name"]] = example["payload"].encode()
    return frames


def gateway_frames(count: int) -> list[bytes]:
    from bench.gateway_frames import SmlMeter

    meters = [SmlMeter(n) for n in range(7)]
    return [
        meters[n % 7].frame(123_456_789 + 37 * n, 400 + n % 3000 - 1500, 1_000_000 + n) for n in range(count)
    ]


def _best_us(run: Callable[[], object], frames: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return round(best / frames * 1e6, 2)


def measure(frames: list[bytes], repeat: int) -> dict[str, Any]:
    from ingest.decoders import DecodeInput
    from ingest.decoders.sml import SPEC, SmlOptions
    from ingest.decoders.sml_parse import parse_messages, transport_frames

    decode = SPEC.build(SmlOptions(), "UTC")
    messages = [DecodeInput("lab/gw/sml/m", frame, {}, RECEIVED_NS) for frame in frames]
    rounds = max(1, 2000 // len(frames))

    def ours_decode() -> None:
        for _ in range(rounds):
            for message in messages:
                decode(message)

    def ours_parse() -> None:
        for _ in range(rounds):
            for frame in frames:
                for body in transport_frames(frame, "x25"):
                    parse_messages(body)

    result: dict[str, Any] = {
        "frames": len(frames),
        "bytes_per_frame": round(sum(map(len, frames)) / len(frames)),
        "decode_us": _best_us(ours_decode, rounds * len(frames), repeat),
        "parse_us": _best_us(ours_parse, rounds * len(frames), repeat),
        "smllib_parse_us": None,
    }
    try:
        from smllib.builder.default_context import create_context
        from smllib.reader import SmlStreamReader
    except ImportError:
        return result
    context = create_context()  # built once, as the decoder did

    def smllib_parse() -> None:
        for _ in range(rounds):
            for frame in frames:
                reader = SmlStreamReader(build_ctx=context)
                reader.add(frame)
                while (sml_frame := reader.get_frame()) is not None:
                    sml_frame.parse_frame()

    result["smllib_parse_us"] = _best_us(smllib_parse, rounds * len(frames), repeat)
    result["speedup_parse"] = round(result["smllib_parse_us"] / result["parse_us"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    for name, frame in profile_frames().items():
        if b"\x1b\x1b\x1b\x1b\x01\x01\x01\x01" in frame:  # not the hex text one (the same frame)
            report[f"profile: {name}"] = measure([frame], args.repeat)
    report["gateway bench eHZ frames"] = measure(gateway_frames(700), args.repeat)
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
