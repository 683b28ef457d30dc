"""The DCAT-AP.de catalogue as a harvester reads it: parsed with rdflib (JSON-LD), queried with SPARQL, and
every distribution's file fetched from its downloadURL and compared with what the catalogue declares."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection

from ingest.opendata.catalogue import CatalogueError, write_catalogue
from ingest.opendata.datasets import (
    DATASETS,
    SUPPRESSED_CSV,
    Dataset,
    ExportedFile,
    dataset,
)
from ingest.opendata.files import Row, exported_files, write_month
from ingest.opendata.settings import OpenDataSettings
from tests.opendata.catalogue_check import CSVW, DCAT, DCATDE, DCT, check_catalogue, parse_catalogue

SCHEMA = Namespace("http://schema.org/")
QUDT = Namespace("http://qudt.org/schema/qudt/")
SKOS = Namespace("http://www.w3.org/2004/02/skos/core#")
BERLIN = ZoneInfo("Europe/Berlin")
MONTHS = ("2026-10", "2026-11")
STATIONS = (("station-01", "53.1431", "8.2146"), ("station-02", "53.1447", "8.2190"))
BASE_URL = "https://opendata.example.org/quartier"


# --- files written by the export's own writer -------------------------------------------------------------


def _value(definition: Dataset, name: str, index: int, station: int) -> object:
    column = definition.column(name)
    if name == "station":
        return STATIONS[station][0]
    if name == "lat":
        return float(STATIONS[station][1])
    if name == "lon":
        return float(STATIONS[station][2])
    if name == "building":
        return "building-01"
    if column.datatype == "integer":
        return 5 + index
    if column.suppressible and index == 1:
        return None  # withheld (listed in "suppressed" below)
    return 1.25 * (index + 1)


def _write_month(out_dir: Path, definition: Dataset, month: str, count: int = 3) -> list[ExportedFile]:
    """A few rows of one dataset and month, written by the export (ingest.opendata.files.write_month) and
    read back as the export hands them to the catalogue (exported_files)."""
    year, number = (int(part) for part in month.split("-"))
    first = dt.datetime(year, number, 1, tzinfo=BERLIN)
    rows: list[Row] = []
    for index in range(count):
        start = first + index * definition.resolution
        for station in range(2 if definition.id == "street-environment-10min" else 1):
            row: Row = {name: _value(definition, name, index, station) for name in definition.header}
            row["start"] = start.isoformat()
            row["suppressed"] = list(definition.suppressible) if index == 1 else []
            rows.append(row)
    written = write_month(out_dir, definition, month, rows, days={first.date()})
    assert len(written) == 2
    return [file for file in exported_files(out_dir, BERLIN) if file.path in written]


def _export(out_dir: Path) -> list[ExportedFile]:
    for month in MONTHS:
        for definition in DATASETS:
            _write_month(out_dir, definition, month)
    return exported_files(out_dir, BERLIN)


# --- tests ------------------------------------------------------------------------------------------------


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "opendata"


def _settings(**changes: object) -> OpenDataSettings:
    return OpenDataSettings.model_validate(
        {"publisher_name": "Stadt Oldenburg", "spatial_label": "Quartier Helleheide", **changes}
    )


def _graph(path: Path) -> Graph:
    return parse_catalogue(path)


def test_development_catalogue_holds_every_required_property_and_its_files(out_dir: Path) -> None:
    files = _export(out_dir)
    path = write_catalogue(out_dir, files, _settings())

    assert path == out_dir / "catalog.jsonld"
    assert check_catalogue(path, out_dir) == []
    graph = _graph(path)
    assert len(set(graph.subjects(RDF.type, DCAT.Dataset))) == len(DATASETS)
    assert len(set(graph.subjects(RDF.type, DCAT.Distribution))) == len(files) == 16
    # no base_url: the links are written relative and resolve next to the catalogue
    raw = json.loads(path.read_text(encoding="utf-8"))
    links = [
        node["dcat:downloadURL"]["@id"] for node in raw["@graph"] if node["@type"] == "dcat:Distribution"
    ]
    assert "quarter-energy-15min/quarter-energy-15min_2026-10.csv" in links
    assert "@base" not in raw["@context"]


def test_dataset_coverage_spans_both_months(out_dir: Path) -> None:
    files = _export(out_dir)
    graph = _graph(write_catalogue(out_dir, files, _settings(base_url=BASE_URL)))
    node = URIRef(f"{BASE_URL}/catalog.jsonld#quarter-energy-daily")
    temporal = graph.value(node, DCT.temporal)
    start = graph.value(temporal, DCAT.startDate)
    end = graph.value(temporal, DCAT.endDate)
    mine = [file for file in files if file.dataset_id == "quarter-energy-daily"]
    assert isinstance(start, Literal)
    assert isinstance(end, Literal)
    assert start.toPython() == min(file.temporal_start for file in mine)
    assert end.toPython() == max(file.temporal_end for file in mine)
    assert str(graph.value(node, DCAT.temporalResolution)) == "P1D"


def test_base_url_makes_every_link_absolute_and_the_check_holds(out_dir: Path) -> None:
    files = _export(out_dir)
    path = write_catalogue(out_dir, files, _settings(base_url=BASE_URL, publisher_url="https://example.org"))

    assert check_catalogue(path, out_dir, BASE_URL) == []
    graph = _graph(path)
    downloads = {str(url) for url in graph.objects(None, DCAT.downloadURL)}
    assert len(downloads) == 16
    assert all(url.startswith(BASE_URL + "/") for url in downloads)
    assert f"{BASE_URL}/street-environment-10min/street-environment-10min_2026-11.json" in downloads


def test_columns_and_units_are_described_for_harvesters_and_machines(out_dir: Path) -> None:
    files = _export(out_dir)
    graph = _graph(write_catalogue(out_dir, files, _settings(base_url=BASE_URL)))
    distribution = URIRef(f"{BASE_URL}/catalog.jsonld#quarter-energy-15min_2026-11.csv")
    first = graph.value(graph.value(graph.value(distribution, DCT.conformsTo), CSVW.tableSchema), CSVW.column)
    assert first is not None
    by_name = {str(graph.value(column, CSVW.name)): column for column in Collection(graph, first)}
    grid = by_name["grid_import_kwh"]
    assert str(graph.value(grid, SCHEMA.unitText)) == "kWh"
    assert str(graph.value(grid, QUDT.ucumCode)) == "kW.h"
    assert {str(value) for value in graph.objects(grid, CSVW.null)} == {"", SUPPRESSED_CSV}
    descriptions = {
        value.language: str(value)
        for value in graph.objects(distribution, DCT.description)
        if isinstance(value, Literal)
    }
    assert "grid_import_kwh [kWh]" in descriptions["de"]
    assert "grid_import_kwh [kWh]" in descriptions["en"]
    assert "self_sufficiency_percent [%]" in descriptions["en"]


def test_station_coordinates_give_the_street_dataset_a_bounding_box(out_dir: Path) -> None:
    files = _export(out_dir)
    graph = _graph(write_catalogue(out_dir, files, _settings(base_url=BASE_URL)))
    node = URIRef(f"{BASE_URL}/catalog.jsonld#street-environment-10min")
    spatial = graph.value(node, DCT.spatial)
    bbox = str(graph.value(spatial, DCAT.bbox))
    # CRS84 stated, longitude first: west south ... east north of the two stations
    assert bbox.startswith(
        "<http://www.opengis.net/def/crs/OGC/1.3/CRS84> POLYGON((8.2146 53.1431, 8.219 53.1431"
    )
    assert "8.219 53.1447" in bbox
    assert str(graph.value(spatial, DCAT.centroid)).endswith("POINT(8.216800 53.143900)")
    # the stations' box is not the energy datasets' area: those carry the label only
    energy = graph.value(URIRef(f"{BASE_URL}/catalog.jsonld#quarter-energy-daily"), DCT.spatial)
    assert graph.value(energy, DCAT.bbox) is None
    assert str(graph.value(energy, SKOS.prefLabel)) == "Quartier Helleheide"


def test_stations_without_location_stay_out_of_the_bounding_box(out_dir: Path) -> None:
    street = dataset("street-environment-10min")
    start = dt.datetime(2026, 11, 2, tzinfo=BERLIN).isoformat()
    rows: list[Row] = [
        {**dict.fromkeys(street.header), "start": start, "station": "station-01", "lat": 53.1, "lon": 8.2},
        {**dict.fromkeys(street.header), "start": start, "station": "station-02", "lat": None, "lon": None},
    ]
    write_month(out_dir, street, "2026-11", rows, days={dt.date(2026, 11, 2)})
    graph = _graph(write_catalogue(out_dir, exported_files(out_dir, BERLIN), _settings(base_url=BASE_URL)))
    spatial = graph.value(URIRef(f"{BASE_URL}/catalog.jsonld#street-environment-10min"), DCT.spatial)
    assert str(graph.value(spatial, DCAT.bbox)).endswith(
        "POLYGON((8.2 53.1, 8.2 53.1, 8.2 53.1, 8.2 53.1, 8.2 53.1))"
    )


def test_contributor_id_only_when_given(out_dir: Path) -> None:
    files = _export(out_dir)
    without = _graph(write_catalogue(out_dir, files, _settings()))
    assert list(without.objects(None, DCATDE.contributorID)) == []
    given = _graph(write_catalogue(out_dir, files, _settings(contributor_id="stadtOldenburg")))
    ids = set(given.objects(None, DCATDE.contributorID))
    assert ids == {URIRef("http://dcat-ap.de/def/contributors/stadtOldenburg")}
    assert len(list(given.subject_objects(DCATDE.contributorID))) == len(DATASETS)


def test_rewrite_keeps_first_issued_and_moves_modified(out_dir: Path) -> None:
    files = _export(out_dir)
    first = json.loads(write_catalogue(out_dir, files, _settings()).read_text(encoding="utf-8"))
    issued = {node["@id"]: node["dct:issued"]["@value"] for node in first["@graph"] if "dct:issued" in node}
    later = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    newer = [*files, *_write_month(out_dir, dataset("quarter-energy-daily"), "2026-12")]
    for file in newer:
        file.path.touch()
    second = json.loads(write_catalogue(out_dir, newer, _settings(), now=later).read_text(encoding="utf-8"))
    again = {node["@id"]: node["dct:issued"]["@value"] for node in second["@graph"] if "dct:issued" in node}
    assert {key: again[key] for key in issued} == issued
    assert len(again) == len(issued) + 2  # the December CSV and JSON are new
    catalogue = second["@graph"][0]
    assert catalogue["dct:modified"]["@value"] == "2031-01-01T00:00:00+00:00"


def test_check_finds_a_renamed_or_changed_file(out_dir: Path) -> None:
    files = _export(out_dir)
    path = write_catalogue(out_dir, files, _settings())
    moved = out_dir / "quarter-energy-daily" / "quarter-energy-daily_2026-11.csv"
    moved.rename(moved.with_suffix(".old"))
    changed = out_dir / "building-energy-daily" / "building-energy-daily_2026-10.csv"
    changed.write_text("start,building\n", encoding="utf-8")

    problems = check_catalogue(path, out_dir)

    assert any(
        "quarter-energy-daily_2026-11.csv" in problem and "does not resolve" in problem
        for problem in problems
    )
    changed_problems = [
        problem for problem in problems if problem.startswith("building-energy-daily_2026-10.csv")
    ]
    assert {problem.split(":")[1].split()[0] for problem in changed_problems} == {"byteSize", "sha256", "CSV"}


def test_check_finds_a_dataset_without_a_required_property(out_dir: Path) -> None:
    path = write_catalogue(out_dir, _export(out_dir), _settings())
    document = json.loads(path.read_text(encoding="utf-8"))
    for node in document["@graph"]:
        if node["@id"].endswith("#building-energy-daily"):
            del node["dct:temporal"]
            node["dct:title"] = [text for text in node["dct:title"] if text["@language"] == "de"]
        if node["@id"].endswith("#quarter-energy-daily_2026-10.json"):
            del node["dcatde:licenseAttributionByText"]
    path.write_text(json.dumps(document), encoding="utf-8")

    problems = check_catalogue(path, out_dir)

    assert {problem.split("#")[1] for problem in problems} == {
        "building-energy-daily: lacks a required property (publisher, frequency, temporal, ...)",
        f"building-energy-daily: {DCT.title} not in exactly de and en",
        "quarter-energy-daily_2026-10.json: no dcatde:licenseAttributionByText",
    }


def test_check_finds_a_file_not_in_its_declared_format(out_dir: Path) -> None:
    files = _export(out_dir)
    path = write_catalogue(out_dir, files, _settings())
    broken = out_dir / "street-environment-10min" / "street-environment-10min_2026-10.json"
    broken.write_text("start,station\n", encoding="utf-8")  # CSV text under a .json name
    assert any("does not parse as JSON" in problem for problem in check_catalogue(path, out_dir))


@pytest.mark.parametrize("case", ["missing", "outside", "twice"])
def test_write_refuses_files_it_cannot_describe(out_dir: Path, tmp_path: Path, case: str) -> None:
    files: Sequence[ExportedFile] = _write_month(out_dir, dataset("quarter-energy-daily"), "2026-11")
    if case == "missing":
        files[0].path.unlink()
        message = "does not exist"
    elif case == "outside":
        elsewhere = tmp_path / "elsewhere" / files[0].path.name
        elsewhere.parent.mkdir()
        files[0].path.rename(elsewhere)
        first = files[0]
        files = [
            ExportedFile(
                first.dataset_id,
                first.month,
                elsewhere,
                first.media_type,
                first.temporal_start,
                first.temporal_end,
            )
        ]
        message = "is not under out_dir"
    else:
        files = [files[0], files[0]]
        message = "listed twice"
    with pytest.raises(CatalogueError, match=message):
        write_catalogue(out_dir, files, _settings())
    assert not (out_dir / "catalog.jsonld").exists()
