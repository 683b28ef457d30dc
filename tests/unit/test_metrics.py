"""/metrics: what the server exposes is what :func:`read_metrics` (the tests' and the benchmarks' one reader)
gives back, labels included."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ingest.localservices import free_port
from ingest.metrics import MetricsServer, Sample, exposition, parse_exposition, read_metrics

SAMPLES: list[Sample] = [
    ("received_total", "counter", {}, 12345.0),
    ("quarantined_total", "counter", {"reason": "invalid_json"}, 3.0),
    ("quarantined_total", "counter", {"reason": 'odd "one" \\ with space'}, 1.0),
    ("in_spool_messages", "gauge", {}, 0.0),
    ("spool_bytes", "gauge", {}, 1.5e9),
]


def test_parse_gives_back_what_exposition_wrote() -> None:
    assert parse_exposition(exposition(SAMPLES)) == {
        "received_total": 12345.0,
        'quarantined_total{reason="invalid_json"}': 3.0,
        'quarantined_total{reason="odd \\"one\\" \\\\ with space"}': 1.0,
        "in_spool_messages": 0.0,
        "spool_bytes": 1.5e9,
    }


def test_other_prefix_is_kept() -> None:
    text = exposition([("up", "gauge", {}, 1.0)], prefix="other_")
    assert parse_exposition(text) == {"other_up": 1.0}
    assert parse_exposition(text, prefix="other_") == {"up": 1.0}


def test_read_metrics_from_a_running_server() -> None:
    async def scenario() -> dict[str, float]:
        server = MetricsServer(lambda: SAMPLES, host="127.0.0.1", port=0)
        await server.start()
        try:
            return await asyncio.to_thread(read_metrics, server.port)
        finally:
            await server.close()

    metrics = asyncio.run(scenario())
    assert metrics["received_total"] == 12345.0
    assert metrics['quarantined_total{reason="invalid_json"}'] == 3.0


def test_read_metrics_raises_when_nobody_answers() -> None:
    with pytest.raises(httpx.HTTPError):
        read_metrics(free_port(), timeout=1.0)
