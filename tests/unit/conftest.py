"""Fixtures of the unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.decoders import payloads


@pytest.fixture
def json_parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every payload ``payloads.parse_json`` is called with, in order (the parse itself still runs)."""
    parsed: list[bytes] = []
    real = payloads.parse_json

    def counted(payload: bytes) -> Any:
        parsed.append(payload)
        return real(payload)

    monkeypatch.setattr(payloads, "parse_json", counted)
    return parsed
