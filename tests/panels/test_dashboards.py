"""The committed dashboard JSON: up to date with the catalogue, and structurally sound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.panels.catalogue import DATASOURCE_UID, dashboards
from ingest.panels.grafana import GRID_COLUMNS, write_dashboards
from ingest.panels.macros import variables_used

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
UIDS = [
    "reallabor-energy",
    "reallabor-fleet",
    "reallabor-environment",
    "reallabor-pipeline",
    "reallabor-household",
]


def _load() -> list[dict[str, Any]]:
    return [json.loads((DASHBOARDS / f"{uid}.json").read_text()) for uid in UIDS]


def test_committed_json_is_up_to_date(tmp_path: Path) -> None:
    """Fails when the catalogue changed and `dashboards/` was not rebuilt (write_dashboards)."""
    written = write_dashboards(tmp_path)
    assert [p.name for p in written] == [f"{uid}.json" for uid in UIDS]
    for path in written:
        committed = DASHBOARDS / path.name
        assert committed.exists(), f"{committed} missing: run write_dashboards(Path('dashboards'))"
        assert committed.read_text() == path.read_text(), f"{committed} is out of date: rebuild it"
    assert write_dashboards(tmp_path) == written  # deterministic: a second build writes the same


def test_uids_and_panel_ids_are_unique() -> None:
    boards = _load()
    assert [b["uid"] for b in boards] == UIDS
    for board in boards:
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), board["uid"]
        assert "id" not in board


@pytest.mark.parametrize("uid", UIDS)
def test_datasources_resolve(uid: str) -> None:
    board = json.loads((DASHBOARDS / f"{uid}.json").read_text())
    refs = [p["datasource"] for p in board["panels"]]
    refs += [t["datasource"] for p in board["panels"] for t in p["targets"]]
    refs += [v["datasource"] for v in board["templating"]["list"]]
    assert refs
    for ref in refs:
        assert ref == {"type": "influxdb", "uid": DATASOURCE_UID}
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        assert all(
            t["rawQuery"] and t["query"].lstrip().upper().startswith(("SELECT", "SHOW"))
            for t in panel["targets"]
        )


@pytest.mark.parametrize("uid", UIDS)
def test_panels_inside_the_grid_without_overlaps(uid: str) -> None:
    board = json.loads((DASHBOARDS / f"{uid}.json").read_text())
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert min(grid["x"], grid["y"]) >= 0
        assert min(grid["w"], grid["h"]) > 0
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps"
        taken |= cells


@pytest.mark.parametrize("uid", UIDS)
def test_every_variable_used_is_defined(uid: str) -> None:
    board = json.loads((DASHBOARDS / f"{uid}.json").read_text())
    defined = {v["name"] for v in board["templating"]["list"]}
    used = set()
    for panel in board["panels"]:
        for target in panel["targets"]:
            used |= variables_used(target["query"])
    for variable in board["templating"]["list"]:
        used |= variables_used(variable["query"])
    assert used <= defined, used - defined
    assert defined <= used, defined - used  # no variable left unused


def test_catalogue_keys_unique_and_rollup_panels_have_raw_twins() -> None:
    for dashboard in dashboards():
        keys = [p.key for p in dashboard.panels]
        assert len(keys) == len(set(keys))
        for panel in dashboard.panels:
            for target in panel.targets:
                assert ('"rollups".' in target.query) == (target.raw is not None), (dashboard.uid, panel.key)
