"""The contract every decoder's fuzz test checks, and the payloads it draws (one copy for all of them).

Whatever the payload, a decoder returns readings, each with fields whose values are finite floats,
booleans or short text (gateway-health's ``version``, at most 64 characters), or raises
:class:`DecodeRejected` with a reason of the vocabulary.
Nothing else may escape: an exception in the decode stage would stop the ingester on one bad message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from ingest.readings import REASONS, DecodeRejected, Reading

TEXT_MAX_CHARS = 64  # a text field's bound (ingest/decoders/gateway_health.py)

#: what devices put where a number belongs: numbers, text, null, short arrays and objects, NaN and ±inf
values: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.lists(st.floats() | st.integers() | st.none() | st.text(max_size=4), max_size=4)
    | st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), max_size=3)
)


def dump(document: Any) -> bytes:
    """JSON of ``document`` as firmwares write it, NaN and Infinity included."""
    return json.dumps(document, allow_nan=True).encode()


def json_payloads(keys: st.SearchStrategy[str], *, max_size: int = 6) -> st.SearchStrategy[bytes]:
    """Objects of ``keys`` -> :data:`values`, bare values, and short random bytes."""
    documents = st.dictionaries(keys, values, max_size=max_size) | values
    return st.binary(max_size=20) | documents.map(dump)


def decoded_or_rejected(
    decode: Callable[..., list[Reading]], *args: Any, floats_only: bool = False
) -> list[Reading]:
    """The readings of ``decode(*args)`` checked against the contract; [] when it rejected (a known
    reason).

    ``floats_only``: the decoder writes no booleans or text either (the meter decoders: sml, dsmr, obis-json).
    """
    try:
        readings = decode(*args)
    except DecodeRejected as exc:
        assert exc.reason in REASONS, exc.reason
        return []
    assert readings, "neither readings nor a rejection"
    for reading in readings:
        assert reading.fields, f"a reading without fields: {reading}"
        for name, value in reading.fields.items():
            if type(value) is bool and not floats_only:
                continue
            if type(value) is str and not floats_only:  # a text field (gateway-health's version)
                assert len(value) <= TEXT_MAX_CHARS, f"{reading.measurement}.{name}={value!r}"
                continue
            assert type(value) is float, f"{reading.measurement}.{name}={value!r}"
            assert math.isfinite(value), f"{reading.measurement}.{name}={value!r}"
    return readings
