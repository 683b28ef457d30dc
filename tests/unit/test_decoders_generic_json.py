"""generic-json reads its payload as every JSON profile does (payloads.message_object): strict UTF-8,
duplicate keys kept apart, one parse per message on a shared topic."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.decoders import DecodeInput
from ingest.decoders.generic_json import SPEC, GenericJsonOptions
from ingest.readings import DecodeRejected, Reading
from tests.unit.decoder_contract import decoded_or_rejected, json_payloads

RECEIVED = 1_764_320_401_000_000_000
FIELDS: dict[str, Any] = {
    "p": {"measurement": "electricity", "field": "power_w", "unit": "W"},
    "p#2": {"measurement": "electricity", "field": "power_l1_w", "unit": "W"},
    "e": {"measurement": "electricity", "field": "energy_import_kwh", "unit": "Wh"},
}


def decode(payload: bytes, message: DecodeInput | None = None) -> list[Reading]:
    fn = SPEC.build(GenericJsonOptions.model_validate({"time_key": "ts", "fields": FIELDS}), "Europe/Berlin")
    return fn(message or DecodeInput("lab/gw/m/state", payload, {"device": "m"}, RECEIVED))


def test_invalid_utf8_is_invalid_utf8_not_invalid_json() -> None:
    """Before: orjson's parse error, reported as invalid_json."""
    with pytest.raises(DecodeRejected) as caught:
        decode(b'{"p": "\xff"}')
    assert caught.value.reason == "invalid_utf8"


def test_a_repeated_key_is_kept_apart_not_overwritten() -> None:
    """Before: orjson kept the last "p" (2000 W) and dropped the first without a word."""
    (reading,) = decode(b'{"p": 1000, "p": 2000, "e": 5}')
    assert reading.fields == {"power_w": 1000.0, "power_l1_w": 2000.0, "energy_import_kwh": 0.005}


@pytest.mark.parametrize(
    ("payload", "key", "repeat"),
    [
        (b'{"e": 5, "e": 7}', "e", "e#2"),
        (b'{"p#2": 99, "p": 1, "p": 2}', "p", "p#3"),  # a sent "p#2" is not the repeat's name
        (b'{"m": {"e": 5}, "m": {"e": 7}}', "m", "m#2.e"),
        (b'{"m": {"e": 5, "e": null}}', "m.e", "m.e#2"),
    ],
)
def test_a_mapped_key_sent_twice_with_different_values_is_refused(
    payload: bytes, key: str, repeat: str
) -> None:
    """Before: the first value was kept, the second ("e#2", mapped by nobody) dropped without a word."""
    fields = {**FIELDS, "m.e": FIELDS["e"]}
    fn = SPEC.build(GenericJsonOptions.model_validate({"fields": fields}), "Europe/Berlin")
    with pytest.raises(DecodeRejected) as caught:
        fn(DecodeInput("lab/gw/m/state", payload, {"device": "m"}, RECEIVED))
    assert caught.value.reason == "invalid_payload"
    assert caught.value.detail.startswith(f"duplicate key {key!r} with different values")
    assert caught.value.detail.endswith(f"map {repeat!r} to keep both")


@pytest.mark.parametrize(
    "payload",
    [b'{"e": 5, "e": 5}', b'{"e": 5, "x": 1, "x": 2}', b'{"e": 5, "p#2": 3}'],
    ids=["same value twice", "an unmapped key twice", "a sent p#2 without a repeat"],
)
def test_what_is_not_a_conflict_is_read(payload: bytes) -> None:
    (reading,) = decode(payload)
    assert reading.fields["energy_import_kwh"] == 0.005


def test_the_parse_is_shared_with_the_other_profiles_of_the_message(json_parses: list[bytes]) -> None:
    message = DecodeInput("lab/gw/m/state", b'{"p": 5}', {"device": "m"}, RECEIVED)
    decode(message.payload, message)
    decode(message.payload, message)
    assert json_parses == [b'{"p": 5}']


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"p": 1' + b"0" * 400 + b"}", "invalid_value"),  # beyond float range: before, an OverflowError
        (b'{"p": NaN}', "invalid_value"),
        (b"[1]", "invalid_payload"),
        (b"{", "invalid_json"),
        (b'{"x": 1}', "no_readings"),
    ],
)
def test_rejected(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeRejected) as caught:
        decode(payload)
    assert caught.value.reason == reason


@settings(max_examples=300)
@given(payload=json_payloads(st.sampled_from(["p", "e", "ts", "x"])))
def test_fuzz_only_decode_rejected_escapes(payload: bytes) -> None:
    decoded_or_rejected(lambda: decode(payload))
