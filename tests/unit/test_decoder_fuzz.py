"""No payload, however broken, makes a decoder raise anything but DecodeRejected."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decode import MessageDecoder
from ingest.profiles import load_profiles
from ingest.readings import DecodeRejected
from tests.unit.decoder_contract import decoded_or_rejected

PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "device_profiles")
DECODER = MessageDecoder(PROFILES, max_payload_bytes=64 * 1024)
EXAMPLES = [(e.topic, e.payload_bytes()) for p in PROFILES for e in p.profile.examples]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)


def _decode_or_reject(topic: str, payload: bytes) -> None:
    decoded_or_rejected(DECODER.decode, topic, payload, 1_764_320_400_000_000_000)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(example=st.sampled_from(EXAMPLES), payload=st.binary(max_size=300))
def test_random_bytes_on_every_profile_topic(example: tuple[str, bytes], payload: bytes) -> None:
    _decode_or_reject(example[0], payload)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(example=st.sampled_from(EXAMPLES), document=json_values)
def test_random_json_on_every_profile_topic(example: tuple[str, bytes], document: object) -> None:
    _decode_or_reject(example[0], json.dumps(document, allow_nan=True).encode())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(example=st.sampled_from(EXAMPLES), data=st.data())
def test_mutated_examples(example: tuple[str, bytes], data: st.DataObject) -> None:
    """Real payloads with bytes flipped, cut or repeated: the nastiest inputs are almost valid."""
    payload = bytearray(example[1])
    for _ in range(data.draw(st.integers(1, 4))):
        if not payload:
            break
        position = data.draw(st.integers(0, len(payload) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "dup"]))
        if action == "flip":
            payload[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del payload[position:]
        else:
            payload[position:position] = payload[position : position + 8]
    _decode_or_reject(example[0], bytes(payload))


def test_oversized_payload_is_rejected() -> None:
    topic = EXAMPLES[0][0]
    try:
        DECODER.decode(topic, b"{" + b" " * 70_000 + b"}", 0)
    except DecodeRejected as exc:
        assert exc.reason == "oversized_payload"
    else:
        raise AssertionError("oversized payload accepted")
