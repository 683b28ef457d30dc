"""deploy/grafana/provisioning as Grafana reads it: the InfluxQL datasource with the fixed uid, the
dashboard provider on the mounted dashboards/, and the alert rules (structure, references, the
ingest_stats fields they read exist in what the ingester writes, no $ that Grafana would expand)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ingest.stats import Stats

REPO = Path(__file__).resolve().parents[2]
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
DATASOURCE_UID = "reallabor-influx"
ALERTS = {
    "reallabor-silent-gateway",
    "reallabor-silent-meter",
    "reallabor-quarantine-spike",
    "reallabor-spool-half-full",
    "reallabor-broker-dropped",
    "reallabor-accounting-broken",
    "reallabor-ingester-dropped",
    "reallabor-silent-ingester",
    "reallabor-session-lost",
}


def load(kind: str) -> dict[str, Any]:
    files = sorted((PROVISIONING / kind).glob("*.yaml"))
    assert len(files) == 1, files
    document: dict[str, Any] = yaml.safe_load(files[0].read_text())
    assert document["apiVersion"] == 1
    return document


def test_datasource() -> None:
    (source,) = load("datasources")["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["jsonData"]["dbName"] == "reallabor"
    assert source["secureJsonData"]["password"] == "${INFLUX_GRAFANA_PASSWORD}"
    assert source["user"] == "grafana"  # the read-only v1 user of deploy/influx2/10-dbrp.sh
    first_start = (REPO / "deploy" / "influx2" / "10-dbrp.sh").read_text()
    assert 'user grafana "${INFLUX_GRAFANA_PASSWORD' in first_start
    grafana = first_start.split("user grafana ", 1)[1].split("\nuser ", 1)[0]
    assert "--read-bucket" in grafana
    assert "--write-bucket" not in grafana


def test_dashboard_provider() -> None:
    (provider,) = load("dashboards")["providers"]
    assert provider["type"] == "file"
    assert (provider["folder"], provider["folderUid"]) == ("Reallabor", "reallabor")
    assert (
        provider["options"]["path"] == "/var/lib/grafana/dashboards"
    )  # docker-compose.yml mounts dashboards/


def ingest_stats_fields() -> set[str]:
    """The counters (ingest/stats.py) and the gauges the ingester adds to the ingest_stats point."""
    source = (REPO / "ingest" / "ingester.py").read_text()
    return set(re.findall(r'fields\["(\w+)"\]', source)) | {name for name, _ in Stats().point_fields()}


def test_alert_rules() -> None:
    document = load("alerting")
    (group,) = document["groups"]
    assert group["folder"] == "Reallabor"
    rules = {rule["uid"]: rule for rule in group["rules"]}
    assert set(rules) == ALERTS
    written = ingest_stats_fields()
    assert {"received", "quarantined", "spool_bytes", "broker_dropped", "dropped"} <= written
    for uid, rule in rules.items():
        refs = {item["refId"]: item for item in rule["data"]}
        assert rule["condition"] in refs, uid
        for ref, item in refs.items():
            model = item["model"]
            assert model["refId"] == ref
            if item["datasourceUid"] == "__expr__":
                assert model["expression"] in refs, uid  # reduce/threshold of an earlier result
            else:
                assert item["datasourceUid"] == DATASOURCE_UID
                assert item["relativeTimeRange"]["from"] > 0
                query = model["query"]
                if '"ingest_stats"' in query:
                    fields = set(re.findall(r'"(\w+)"', query)) - {"ingest_stats", "client_id", "d"}
                    assert fields <= written, (uid, fields - written)
        # Grafana expands $VAR in everything but annotations: a $ here would vanish at provisioning
        assert "$" not in yaml.safe_dump({k: v for k, v in rule.items() if k != "annotations"}), uid
        assert rule["annotations"]["summary"]
    (contact,) = document["contactPoints"]
    (receiver,) = contact["receivers"]
    assert receiver["settings"]["url"] == "${GRAFANA_ALERT_WEBHOOK_URL}"
    (policy,) = document["policies"]
    assert policy["receiver"] == contact["name"]
