"""Grafana dashboard JSON from the panel catalogue: one file per dashboard, ``dashboards/<uid>.json``.

Deterministic: sorted keys, panel ids from the catalogue's order, grid positions from the panels' sizes
(left to right, a new row when 24 columns are full). For file provisioning into the folder "Reallabor"
(the provisioning files set the folder; the JSON carries no numeric ``id``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.panels.catalogue import DATASOURCE_UID, Dashboard, Panel, Variable, dashboards

DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
GRID_COLUMNS = 24
SCHEMA_VERSION = 39


def _grid(panels: tuple[Panel, ...]) -> list[dict[str, int]]:
    positions, x, y, row_height = [], 0, 0, 0
    for panel in panels:
        if x + panel.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        positions.append({"x": x, "y": y, "w": panel.width, "h": panel.height})
        x += panel.width
        row_height = max(row_height, panel.height)
    return positions


def _options(panel: Panel) -> dict[str, Any]:
    legend = {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []}
    if panel.kind in ("stat", "bargauge"):
        reduce = {"calcs": [panel.reduce], "fields": "", "values": False}
        extra = {"orientation": "horizontal"} if panel.kind == "bargauge" else {"colorMode": "value"}
        return {"reduceOptions": reduce, **extra}
    if panel.kind == "table":
        return {"showHeader": True}
    if panel.kind == "barchart":
        return {"legend": legend, "xField": "Time", "stacking": "none", "barWidth": 0.8}
    return {"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}}


def _custom(panel: Panel) -> dict[str, Any]:
    if panel.kind != "timeseries":
        return {}
    custom: dict[str, Any] = {
        "drawStyle": "bars" if panel.bars else "line",
        "fillOpacity": 60 if panel.bars else 10,
        "thresholdsStyle": {"mode": panel.threshold_style},
    }
    if panel.stack:
        custom["stacking"] = {"group": "A", "mode": "normal"}
    return custom


def panel_json(panel: Panel, panel_id: int, position: dict[str, int]) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": panel.unit,
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": step.color, "value": step.value} for step in panel.steps],
        },
        "custom": _custom(panel),
    }
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.kind in ("stat", "bargauge", "table"):
        defaults["color"] = {"mode": "thresholds"}
    targets = [
        {
            "refId": chr(ord("A") + index),
            "datasource": DATASOURCE,
            "query": target.query,
            "rawQuery": True,
            "resultFormat": "table" if target.table else "time_series",
            "alias": target.alias,
        }
        for index, target in enumerate(panel.targets)
    ]
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": position,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": _options(panel),
        "maxDataPoints": panel.max_data_points,
        "transformations": [dict(t) for t in panel.transformations],
    }
    if panel.time_from:
        out["timeFrom"] = panel.time_from
    if panel.interval:
        out["interval"] = panel.interval
    return out


def variable_json(variable: Variable) -> dict[str, Any]:
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": variable.query,
        "definition": variable.query,
        "multi": variable.multi,
        "includeAll": variable.multi,
        "refresh": 2,
        "sort": 1,
        "current": {},
        "options": [],
        "hide": 0,
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    positions = _grid(dashboard.panels)
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": dashboard.time_from, "to": dashboard.time_to},
        "templating": {"list": [variable_json(v) for v in dashboard.variables]},
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["reallabor"],
                "asDropdown": True,
                "title": "Reallabor",
                "icon": "external link",
            }
        ],
        "panels": [
            panel_json(panel, index, position)
            for index, (panel, position) in enumerate(zip(dashboard.panels, positions, strict=True), start=1)
        ],
    }


def render(dashboard: Dashboard) -> str:
    return json.dumps(dashboard_json(dashboard), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_dashboards(out_dir: Path) -> list[Path]:
    """(Re)write every dashboard as ``out_dir/<uid>.json``; the paths written, in catalogue order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for dashboard in dashboards():
        path = out_dir / f"{dashboard.uid}.json"
        text = render(dashboard)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        paths.append(path)
    return paths
