"""The accounting equation as the pipeline dashboard's gap and the "accounting broken" alert compute it,
evaluated on the counters of an ingester at rest (ingest/stats.py): 0, with every outcome present — a
redelivered reject the quarantine held already (review finding 3), a line InfluxDB refused, a replay."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml

from ingest.panels.catalogue import GAP
from ingest.stats import Stats

ALERTS = Path(__file__).resolve().parents[2] / "deploy/grafana/provisioning/alerting/reallabor.yaml"


def at_rest() -> dict[str, int]:
    """The ingest_stats fields after: 3 good messages written (one line of one refused by InfluxDB), a
    reject quarantined, that reject redelivered twice (crashes before its ack), one entry replayed."""
    stats = Stats(received=6, decoded=4, spooled=4, written=4, replayed=1, points_written=3)
    stats.quarantined = Counter(invalid_json=1, influx_rejected=1)
    stats.points_quarantined = 1
    stats.already_quarantined = 2
    return {name: int(value) for name, value in stats.point_fields()}


def evaluate(expression: str, fields: dict[str, int]) -> int:
    """An InfluxQL expression of ``last("field")`` terms, + and -, with the fields' values."""
    arithmetic = re.sub(r'last\("(\w+)"\)', lambda m: str(fields[m[1]]), expression)
    assert re.fullmatch(r"[\d\s+\-()]+", arithmetic), arithmetic
    return int(eval(arithmetic))  # digits, + and - only (checked above)


def alert_expression() -> str:
    (group,) = yaml.safe_load(ALERTS.read_text())["groups"]
    (rule,) = [r for r in group["rules"] if r["uid"] == "reallabor-accounting-broken"]
    (query,) = [d["model"]["query"] for d in rule["data"] if d["refId"] == "A"]
    found = re.fullmatch(r"SELECT (.*) FROM \"ingest_stats\" .*", " ".join(query.split()))
    assert found is not None, query
    return found[1]


def test_the_dashboards_gap_is_zero_at_rest() -> None:
    assert evaluate(GAP, at_rest()) == 0


def test_the_accounting_alerts_expression_is_zero_at_rest() -> None:
    assert evaluate(alert_expression(), at_rest()) == 0


def test_both_count_every_outcome() -> None:
    """One more message received than accounted for shows as +1 in both (so a lost one would)."""
    fields = at_rest()
    fields["received"] += 1
    assert evaluate(GAP, fields) == evaluate(alert_expression(), fields) == 1
