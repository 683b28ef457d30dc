"""The ingester's counters are one list, the fields of :class:`ingest.stats.Stats`: each is on /metrics, in
the ``ingest_stats`` point and in the log line at the end, under the names dashboards, alert rules, the
benchmarks and the tests read."""

from __future__ import annotations

from dataclasses import fields

from ingest.metrics import exposition, parse_exposition
from ingest.stats import Stats


def test_metric_names_stay_as_they_were() -> None:
    stats = Stats()
    stats.quarantined["invalid_json"] = 2
    assert set(parse_exposition(exposition(stats.samples()))) == {
        "received_total",
        "decoded_total",
        'quarantined_total{reason="invalid_json"}',
        "already_quarantined_total",
        "spooled_total",
        "written_total",
        "in_spool_messages",
        "points_written_total",
        "points_quarantined_total",
        "write_retries_total",
        "influx_rejected_batches_total",
        "dropped_total",
        "replayed_total",
        "implausible_read_times_total",
        "sessions_lost_total",
    }


def test_the_ingest_stats_point_keeps_its_field_names() -> None:
    assert set(dict(Stats().point_fields())) == {
        "received",
        "decoded",
        "quarantined",
        "already_quarantined",
        "spooled",
        "written",
        "retried",  # write_retries, as the point has always called it
        "dropped",
        "replayed",
        "implausible_read_times",
        "sessions_lost",
        "points_quarantined",
        "points_written",
        "influx_rejected_batches",
    }


def test_every_counter_is_exported_everywhere() -> None:
    stats = Stats()
    counters = [f.name for f in fields(Stats) if f.name != "quarantined"]
    for value, name in enumerate(counters, start=1):
        setattr(stats, name, value)
    stats.quarantined.update({"invalid_json": 100, "influx_rejected": 200})
    metrics = parse_exposition(exposition(stats.samples()))
    logged = stats.as_dict()
    point = dict(stats.point_fields())
    for value, name in enumerate(counters, start=1):
        assert metrics[f"{name}_total"] == value, name
        assert logged[name] == value, name
        assert point[{"write_retries": "retried"}.get(name, name)] == value, name
    assert point["quarantined"] == 300
    assert metrics['quarantined_total{reason="influx_rejected"}'] == 200
    assert (logged["quarantined"], logged["quarantined_by_reason"]) == (300, dict(stats.quarantined))
    assert metrics["in_spool_messages"] == logged["in_spool"] == stats.spooled - stats.written
