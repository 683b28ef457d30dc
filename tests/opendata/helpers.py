"""Reading the export's files back, as a user of the open data would, and the checks every export passes."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import httpx
import yaml

from ingest.opendata import cli
from ingest.opendata.datasets import DATASETS, SUPPRESSED_CSV, dataset
from tests.helpers import InfluxQuery


def read_json(out: Path, dataset_id: str, month: str) -> list[dict[str, Any]]:
    body = json.loads((out / dataset(dataset_id).relative_path(month, "json")).read_text(encoding="utf-8"))
    assert body["columns"] == list(dataset(dataset_id).header)
    rows: list[dict[str, Any]] = body["rows"]
    return rows


def read_csv(out: Path, dataset_id: str, month: str) -> list[dict[str, str]]:
    path = out / dataset(dataset_id).relative_path(month, "csv")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == dataset(dataset_id).header
        return list(reader)


def assert_csv_equals_json(out: Path, month: str) -> None:
    """Every dataset's CSV and JSON of ``month`` hold the same rows: a withheld cell ``.`` and null (and
    named in the row's ``suppressed``), an unmeasured one empty and null, numbers equal."""
    for definition in DATASETS:
        json_rows, csv_rows = read_json(out, definition.id, month), read_csv(out, definition.id, month)
        assert len(json_rows) == len(csv_rows) > 0, definition.id
        for json_row, csv_row in zip(json_rows, csv_rows, strict=True):
            for name in definition.header:
                value, cell = json_row[name], csv_row[name]
                if name in json_row["suppressed"]:
                    assert (value, cell) == (None, SUPPRESSED_CSV)
                elif value is None:
                    assert cell == ""
                elif isinstance(value, float | int):
                    assert float(cell) == value
                else:
                    assert cell == value


def assert_no_identifiers(out: Path, names: set[str]) -> None:
    """No file under ``out`` (data files, the catalogue, the export's lock and run state) contains any of
    ``names``."""
    files = [path for path in out.rglob("*") if path.is_file()]
    control = {".export.lock", ".daily-run.json"}  # hidden, never served
    assert {path.suffix for path in files if path.name not in control} == {".csv", ".json", ".jsonld"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        found = sorted(name for name in names if name and name in text)
        assert found == [], f"{path.name} names {found}"


def write_lines(influx: InfluxQuery, lines: list[str], **params: str) -> None:
    """Write line protocol (seconds) into ``influx``'s database; ``params`` e.g. ``rp="rollups"``."""
    response = httpx.post(
        f"{influx.url}/write",
        params={"db": influx.database, "precision": "s", **params},
        content="\n".join(lines).encode(),
        trust_env=False,
        timeout=60,
    )
    assert response.status_code == 204, response.text


def parse_opendata(*argv: str) -> argparse.Namespace:
    """``reallabor opendata ARGV`` parsed by the real command line."""
    parser = argparse.ArgumentParser(prog="reallabor")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["opendata", *argv])


def write_settings(path: Path, influx: InfluxQuery, registry_url: str, **sections: object) -> Path:
    """A settings file at ``path``: ``influx``, the registry at ``registry_url`` and ``sections``."""
    settings = {
        "influx": {"url": influx.url, "database": influx.database},
        "registry": {"url": registry_url},
        **sections,
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path
