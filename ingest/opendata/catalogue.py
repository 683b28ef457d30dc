"""The DCAT-AP.de 2.0 catalogue of the open data export: ``<out_dir>/catalog.jsonld``.

One ``dcat:Catalog`` lists one ``dcat:Dataset`` per dataset with files (:mod:`ingest.opendata.datasets`) and
one ``dcat:Distribution`` per file (dataset x month x CSV/JSON), written as JSON-LD with a prefix
``@context`` so that any RDF tool (rdflib, ckanext-dcat, GovData's harvester) reads it as RDF.

What each node carries (DCAT-AP.de 2.0 specification and conventions, "Konvention" numbers in brackets):

- Catalog: ``dct:title``/``dct:description`` in German and English (language-tagged), ``dct:publisher``
  (``foaf:Agent`` with ``foaf:name``), ``foaf:homepage``, ``dct:language``, ``dct:license``,
  ``dcat:themeTaxonomy`` (EU data themes), ``dct:spatial``, ``dct:issued``/``dct:modified``, ``dcat:dataset``.
- Dataset: title and description de/en, ``dcat:keyword`` de/en, ``dcat:theme`` (EU ENER/ENVI),
  ``dct:publisher``, ``dcat:contactPoint`` (vcard with the publisher's URL, when one is set [1]),
  ``dct:accrualPeriodicity`` (EU frequency DAILY), ``dcat:temporalResolution``, ``dct:temporal``
  (``dct:PeriodOfTime`` with ``dcat:startDate``/``dcat:endDate`` over all its files [38]), ``dct:spatial`` (a
  ``dct:Location`` labelled ``opendata.spatial_label``, with ``dcat:bbox`` and ``dcat:centroid`` of the street
  stations when their coordinates are known, CRS84 stated [4-6]) and ``dcatde:geocodingDescription`` (the
  label, as no official regional key is configured [10]), ``dct:license``, ``dct:issued``/``dct:modified``.
  ``dcatde:contributorID`` only when ``opendata.contributor_id`` is set: DCAT-AP.de makes it mandatory for
  data delivered directly to GovData (its Geschäftsstelle assigns ``http://dcat-ap.de/def/contributors/<id>``)
  [12, 13]; a Land or municipal portal that harvests this catalogue adds its own.
- Distribution: title and description de/en, ``dcat:accessURL`` = ``dcat:downloadURL`` (plain downloads [39]),
  ``dct:format`` (EU file type CSV/JSON [31]), ``dcat:mediaType`` (IANA), ``dct:license`` (Datenlizenz
  Deutschland – Namensnennung – 2.0 [32]), ``dcatde:licenseAttributionByText`` (the by-text the licence asks
  for [35]), ``dcatap:availability`` (EU planned availability AVAILABLE), ``dcat:byteSize``, ``spdx:checksum``
  (SHA-256 from DCAT-AP.de's hash list), ``dct:issued`` (first listed, kept across rewrites) /
  ``dct:modified`` (the file's mtime).
- Vocabulary IRIs carry the class DCAT-AP gives their range (``dct:MediaType``, ``skos:Concept``, ...).

Units and columns: portals (GovData, CKAN with ckanext-dcat) display a distribution's ``dct:description``,
so every distribution's description lists its columns with unit and meaning in both languages. For
machines, each CSV distribution also ``dct:conformsTo`` a CSVW table description, the way DCAT-AP.de's
conventions recommend for CSV data: a ``csvw:Table`` with its ``csvw:url`` and ``csvw:dialect`` and a
``csvw:tableSchema`` shared by the dataset's months (per column ``csvw:name`` and ``csvw:title`` = the header
cell, ``dct:description`` de/en, ``csvw:datatype``, ``csvw:null`` for the missing and suppressed marks,
``schema:unitText`` and the UCUM code as ``qudt:ucumCode``). The JSON files hold the same rows under the
same keys.

Addresses: with ``opendata.base_url`` every IRI is absolute (``<base_url>/<dataset-id>/<file>``). Without
it (development) the file links are relative references like ``quarter-energy-daily/
quarter-energy-daily_2026-11.csv`` and no ``@base`` is written: a JSON-LD reader resolves them against the
catalogue's own address, so they point at the files next to ``catalog.jsonld`` wherever the directory is
opened or served from.

Monthly files as distributions of one dataset follow the brief; DCAT-AP.de 2.0 prefers one dataset per
period for time series, and its 3.0 has ``dcat:DatasetSeries`` for exactly this, so a later version may
turn each month into a dataset in a series.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from ingest.opendata.datasets import (
    DATASETS,
    MEDIA_TYPES,
    MISSING_CSV,
    SUPPRESSED_CSV,
    Column,
    Dataset,
    ExportedFile,
    Text,
    dataset,
)
from ingest.opendata.settings import OpenDataSettings

__all__ = [
    "CATALOGUE_NAME",
    "CONTEXT",
    "LICENSE",
    "SHA256",
    "CatalogueError",
    "build_catalogue",
    "write_catalogue",
]

CATALOGUE_NAME = "catalog.jsonld"
LICENSE = "http://dcat-ap.de/def/licenses/dl-by-de/2.0"
SHA256 = "http://dcat-ap.de/def/hashAlgorithms/sha/256"
"""SHA-256 in DCAT-AP.de's list of hash algorithms, which its 2.0 SHACL shapes require for ``spdx:algorithm``
(in place of DCAT-AP's ``spdx:checksumAlgorithm_sha256``)."""
_LICENSE_NAME = "Datenlizenz Deutschland – Namensnennung – Version 2.0"
_LICENSE_TEXT = "https://www.govdata.de/dl-de/by-2-0"
_FILE_TYPES = {
    "text/csv": "http://publications.europa.eu/resource/authority/file-type/CSV",
    "application/json": "http://publications.europa.eu/resource/authority/file-type/JSON",
}
_IANA = "https://www.iana.org/assignments/media-types/"
_LANGUAGES = (
    "http://publications.europa.eu/resource/authority/language/DEU",
    "http://publications.europa.eu/resource/authority/language/ENG",
)
_THEME_TAXONOMY = "http://publications.europa.eu/resource/authority/data-theme"
_AVAILABLE = "http://publications.europa.eu/resource/authority/planned-availability/AVAILABLE"
"""Planned availability "available" (medium term): the files stay while the lab runs, not promised beyond."""
_LOCAL_AUTHORITY = "http://purl.org/adms/publishertype/LocalAuthority"
_CRS84 = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
_STATION_DATASET = "street-environment-10min"

CONTEXT: dict[str, str] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dcatap": "http://data.europa.eu/r5r/",
    "dct": "http://purl.org/dc/terms/",
    "dcatde": "http://dcat-ap.de/def/dcatde/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "spdx": "http://spdx.org/rdf/terms#",
    "locn": "http://www.w3.org/ns/locn#",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "csvw": "http://www.w3.org/ns/csvw#",
    "schema": "http://schema.org/",
    "qudt": "http://qudt.org/schema/qudt/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
"""The JSON-LD ``@context``: prefixes only, every value below states its own type or language."""

_CSV_DIALECT = {"csvw:delimiter": ",", "csvw:header": True, "csvw:encoding": "utf-8"}

JsonObject = dict[str, Any]


class CatalogueError(ValueError):
    """The files handed to the catalogue cannot be described (missing, outside out_dir, listed twice)."""


# --- literals ---------------------------------------------------------------------------------------------


def _texts(text: Text) -> list[JsonObject]:
    return [{"@value": text.de, "@language": "de"}, {"@value": text.en, "@language": "en"}]


def _iri(value: str) -> JsonObject:
    return {"@id": value}


def _term(value: str, rdf_class: str) -> JsonObject:
    """A vocabulary IRI with the class DCAT-AP gives its range, so a validator without the vocabulary loaded
    still finds it (``dct:MediaType``, ``skos:Concept``, ...)."""
    return {"@id": value, "@type": rdf_class}


def _typed(value: str, datatype: str) -> JsonObject:
    return {"@value": value, "@type": datatype}


def _datetime(value: dt.datetime) -> JsonObject:
    return _typed(value.isoformat(), "xsd:dateTime")


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(microsecond=0)


def _duration(value: dt.timedelta) -> str:
    """``xsd:duration`` of a whole number of minutes or days (the datasets' resolutions)."""
    if value.days and not value.seconds:
        return f"P{value.days}D"
    minutes, rest = divmod(int(value.total_seconds()), 60)
    if rest or minutes <= 0:
        raise ValueError(f"resolution {value} is not a whole number of minutes")
    return f"PT{minutes}M"


# --- addresses --------------------------------------------------------------------------------------------


class _Addresses:
    """IRIs of the catalogue's nodes and files: absolute under ``base_url``, else relative references."""

    def __init__(self, base_url: str | None) -> None:
        self._base = base_url.rstrip("/") + "/" if base_url else ""

    def url(self, relative: PurePosixPath | str) -> str:
        return self._base + quote(str(relative))

    @property
    def catalogue(self) -> str:
        return self.url(CATALOGUE_NAME)

    def node(self, fragment: str) -> str:
        return f"{self.catalogue}#{quote(fragment)}"


# --- file facts -------------------------------------------------------------------------------------------


class _FileFacts:
    """What the catalogue states about one file on disk: where, how big, its hash, when it changed."""

    def __init__(self, file: ExportedFile, out_dir: Path) -> None:
        self.file = file
        self.definition = dataset(file.dataset_id)
        try:
            self.relative = PurePosixPath(file.path.resolve().relative_to(out_dir.resolve()).as_posix())
        except ValueError:
            raise CatalogueError(f"file {file.path} is not under out_dir {out_dir}") from None
        extension = next(ext for ext, media in MEDIA_TYPES.items() if media == file.media_type)
        expected = self.definition.relative_path(file.month, extension)
        if self.relative != expected:
            raise CatalogueError(f"file {file.path} should be {out_dir / expected}")
        try:
            stat = file.path.stat()
            digest = hashlib.sha256()
            with file.path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 16), b""):
                    digest.update(block)
        except FileNotFoundError:
            raise CatalogueError(f"file {file.path} of dataset {file.dataset_id!r} does not exist") from None
        self.byte_size = stat.st_size
        self.sha256 = digest.hexdigest()
        self.modified = _utc(dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC))


@dataclass(frozen=True)
class _Box:
    """The rectangle around the street stations (WGS 84 degrees)."""

    west: float
    south: float
    east: float
    north: float

    @property
    def polygon(self) -> str:
        """WKT with its CRS stated (CRS84: longitude first)."""
        west, south, east, north = self.west, self.south, self.east, self.north
        ring = f"{west} {south}, {east} {south}, {east} {north}, {west} {north}, {west} {south}"
        return f"{_CRS84} POLYGON(({ring}))"

    @property
    def centroid(self) -> str:
        return f"{_CRS84} POINT({(self.west + self.east) / 2:.6f} {(self.south + self.north) / 2:.6f})"


def _station_box(facts: Iterable[_FileFacts]) -> _Box | None:
    """The rectangle around the street stations' coordinates in the CSV files; None: no station located."""
    lats: list[float] = []
    lons: list[float] = []
    for fact in facts:
        if fact.file.dataset_id != _STATION_DATASET or fact.file.media_type != MEDIA_TYPES["csv"]:
            continue
        with fact.file.path.open(newline="", encoding="utf-8") as stream:
            for row in csv.DictReader(stream):
                lat, lon = row.get("lat", ""), row.get("lon", "")
                if lat and lon:
                    lats.append(float(lat))
                    lons.append(float(lon))
    if not lats:
        return None
    return _Box(west=min(lons), south=min(lats), east=max(lons), north=max(lats))


# --- nodes ------------------------------------------------------------------------------------------------


def _publisher(settings: OpenDataSettings, addresses: _Addresses) -> JsonObject:
    agent: JsonObject = {
        "@id": addresses.node("publisher"),
        "@type": "foaf:Agent",
        "foaf:name": settings.publisher_name,
        "dct:type": _term(_LOCAL_AUTHORITY, "skos:Concept"),
    }
    if settings.publisher_url:
        agent["foaf:homepage"] = _iri(settings.publisher_url)
    return agent


def _spatial(settings: OpenDataSettings, box: _Box | None) -> JsonObject:
    location: JsonObject = {"@type": "dct:Location", "skos:prefLabel": settings.spatial_label}
    if box:
        location["dcat:bbox"] = _typed(box.polygon, "gsp:wktLiteral")
        location["dcat:centroid"] = _typed(box.centroid, "gsp:wktLiteral")
    return location


def _column_line(column: Column, language: str) -> str:
    text = column.description.de if language == "de" else column.description.en
    unit = f" [{column.unit}]" if column.unit else ""
    mark = ""
    if column.suppressible:
        mark = " (geheim gehalten: .)" if language == "de" else " (withheld: .)"
    return f"{column.name}{unit}: {text}{mark}"


def _distribution_description(definition: Dataset, media_type: str) -> Text:
    if media_type == MEDIA_TYPES["csv"]:
        de_form = "CSV (UTF-8, Komma, Kopfzeile mit den Spaltennamen); leere Zelle: kein Messwert."
        en_form = "CSV (UTF-8, comma, header row with the column names); empty cell: no value."
    else:
        de_form = (
            'JSON: {"dataset", "month", "columns", "rows"}; jede Zeile ein Objekt mit den Spaltennamen als '
            'Schlüsseln, null ohne Wert, "suppressed" nennt geheim gehaltene Spalten.'
        )
        en_form = (
            'JSON: {"dataset", "month", "columns", "rows"}; each row an object keyed by the column names, '
            'null without value, "suppressed" names withheld columns.'
        )
    de_columns = "; ".join(_column_line(column, "de") for column in definition.columns)
    en_columns = "; ".join(_column_line(column, "en") for column in definition.columns)
    return Text(f"{de_form} Spalten: {de_columns}.", f"{en_form} Columns: {en_columns}.")


def _csvw_column(column: Column) -> JsonObject:
    node: JsonObject = {
        "@type": "csvw:Column",
        "csvw:name": column.name,
        "csvw:title": column.name,  # the CSV header cell, which CSVW validators compare with the title
        "dct:description": _texts(column.description),
        "csvw:datatype": _iri(f"xsd:{column.datatype}"),
        "csvw:null": [MISSING_CSV, SUPPRESSED_CSV] if column.suppressible else [MISSING_CSV],
    }
    if column.unit:
        node["schema:unitText"] = column.unit
    if column.ucum:
        node["qudt:ucumCode"] = column.ucum
    return node


def _csvw_schema(definition: Dataset, addresses: _Addresses) -> JsonObject:
    """One ``csvw:Schema`` per dataset, shared by the tables of its monthly CSV files."""
    return {
        "@id": addresses.node(f"{definition.id}-schema"),
        "@type": "csvw:Schema",
        "csvw:column": {"@list": [_csvw_column(column) for column in definition.columns]},
    }


def _csvw_table(definition: Dataset, addresses: _Addresses, url: str, name: str) -> JsonObject:
    return {
        "@id": addresses.node(f"{name}-csvw"),  # an IRI, as DCAT-AP.de wants for dct:conformsTo
        "@type": ["csvw:Table", "dct:Standard"],
        "csvw:url": _iri(url),
        "csvw:dialect": dict(_CSV_DIALECT),
        "csvw:tableSchema": _iri(addresses.node(f"{definition.id}-schema")),
    }


def _attribution(settings: OpenDataSettings, definition: Dataset, dataset_iri: str) -> str:
    """The by-text the licence asks for: provider, licence with its text's address, the dataset."""
    return (
        f"{settings.publisher_name}, {_LICENSE_NAME} ({_LICENSE_TEXT}), {definition.title.de} ({dataset_iri})"
    )


def _distribution(
    fact: _FileFacts, addresses: _Addresses, settings: OpenDataSettings, issued: dict[str, str]
) -> JsonObject:
    definition, file = fact.definition, fact.file
    url = addresses.url(fact.relative)
    iri = addresses.node(fact.relative.name)
    form = "CSV" if file.media_type == MEDIA_TYPES["csv"] else "JSON"
    node: JsonObject = {
        "@id": iri,
        "@type": "dcat:Distribution",
        "dct:title": _texts(
            Text(
                f"{definition.title.de}, {file.month} ({form})",
                f"{definition.title.en}, {file.month} ({form})",
            )
        ),
        "dct:description": _texts(_distribution_description(definition, file.media_type)),
        "dcat:accessURL": _iri(url),
        "dcat:downloadURL": _iri(url),
        "dct:format": _term(_FILE_TYPES[file.media_type], "dct:MediaTypeOrExtent"),
        "dcat:mediaType": _term(_IANA + file.media_type, "dct:MediaType"),
        "dct:license": _term(LICENSE, "dct:LicenseDocument"),
        "dcatap:availability": _term(_AVAILABLE, "skos:Concept"),
        "dcatde:licenseAttributionByText": _attribution(settings, definition, addresses.node(definition.id)),
        "dcat:byteSize": _typed(str(fact.byte_size), "xsd:decimal"),  # DCAT-AP 2's range
        "spdx:checksum": {
            "@type": "spdx:Checksum",
            "spdx:algorithm": _iri(SHA256),
            "spdx:checksumValue": _typed(fact.sha256, "xsd:hexBinary"),
        },
        "dct:issued": _typed(issued.get(iri, fact.modified.isoformat()), "xsd:dateTime"),
        "dct:modified": _datetime(fact.modified),
    }
    if file.media_type == MEDIA_TYPES["csv"]:
        node["dct:conformsTo"] = _csvw_table(definition, addresses, url, fact.relative.name)
    return node


def _dataset(
    definition: Dataset,
    facts: Sequence[_FileFacts],
    addresses: _Addresses,
    settings: OpenDataSettings,
    *,
    box: _Box | None,
    contributor_id: str | None,
    issued: dict[str, str],
) -> JsonObject:
    iri = addresses.node(definition.id)
    start = min(fact.file.temporal_start for fact in facts)
    end = max(fact.file.temporal_end for fact in facts)
    modified = max(fact.modified for fact in facts)
    node: JsonObject = {
        "@id": iri,
        "@type": "dcat:Dataset",
        "dct:identifier": iri if addresses.catalogue.startswith("http") else definition.id,
        "dct:title": _texts(definition.title),
        "dct:description": _texts(definition.description),
        "dcat:keyword": [{"@value": word, "@language": "de"} for word in definition.keyword_list("de")]
        + [{"@value": word, "@language": "en"} for word in definition.keyword_list("en")],
        "dcat:theme": [_term(theme, "skos:Concept") for theme in definition.themes],
        "dct:publisher": _publisher(settings, addresses),
        "dct:accrualPeriodicity": _term(definition.accrual_periodicity, "dct:Frequency"),
        "dcat:temporalResolution": _typed(_duration(definition.resolution), "xsd:duration"),
        "dct:temporal": {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": _datetime(start),
            "dcat:endDate": _datetime(end),
        },
        "dct:spatial": _spatial(settings, box),
        "dcatde:geocodingDescription": settings.spatial_label,
        "dct:language": [_term(language, "dct:LinguisticSystem") for language in _LANGUAGES],
        "dct:license": _term(LICENSE, "dct:LicenseDocument"),
        "dct:issued": _typed(issued.get(iri, modified.isoformat()), "xsd:dateTime"),
        "dct:modified": _datetime(modified),
        "dcat:distribution": [_iri(addresses.node(fact.relative.name)) for fact in facts],
    }
    if settings.publisher_url:
        node["dcat:contactPoint"] = {
            "@type": "vcard:Organization",
            "vcard:fn": settings.publisher_name,
            "vcard:hasURL": _iri(settings.publisher_url),
        }
    if contributor_id:
        node["dcatde:contributorID"] = _iri(f"http://dcat-ap.de/def/contributors/{contributor_id}")
    return node


def _catalogue(
    datasets: Sequence[JsonObject],
    addresses: _Addresses,
    settings: OpenDataSettings,
    now: dt.datetime,
    issued: dict[str, str],
) -> JsonObject:
    node: JsonObject = {
        "@id": addresses.catalogue,
        "@type": "dcat:Catalog",
        "dct:title": _texts(
            Text(f"Offene Daten: {settings.spatial_label}", f"Open data: {settings.spatial_label}")
        ),
        "dct:description": _texts(
            Text(
                "Anonymisierte Energiedaten und Straßenklima des Reallabor-Quartiers als offene Daten "
                "(CSV und JSON, je Datensatz und Monat), täglich aktualisiert.",
                "Anonymised energy figures and street environment of the living-lab neighbourhood as open "
                "data (CSV and JSON, per dataset and month), updated daily.",
            )
        ),
        "dct:publisher": _publisher(settings, addresses),
        "dct:language": [_term(language, "dct:LinguisticSystem") for language in _LANGUAGES],
        "dct:license": _term(LICENSE, "dct:LicenseDocument"),
        "dcat:themeTaxonomy": _term(_THEME_TAXONOMY, "skos:ConceptScheme"),
        "dct:spatial": _spatial(settings, None),
        "dct:issued": _typed(issued.get(addresses.catalogue, now.isoformat()), "xsd:dateTime"),
        "dct:modified": _datetime(now),
        "dcat:dataset": [_iri(node["@id"]) for node in datasets],
    }
    homepage = settings.publisher_url or (addresses.catalogue if settings.base_url else None)
    if homepage:
        node["foaf:homepage"] = _iri(homepage)
    return node


# --- public -----------------------------------------------------------------------------------------------


def _issued_before(path: Path) -> dict[str, str]:
    """``@id`` -> ``dct:issued`` of the catalogue written before, so a rewrite keeps first publication."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    issued: dict[str, str] = {}
    for node in document.get("@graph", []) if isinstance(document, dict) else []:
        value = node.get("dct:issued") if isinstance(node, dict) else None
        if (
            isinstance(value, dict)
            and isinstance(node.get("@id"), str)
            and isinstance(value.get("@value"), str)
        ):
            issued[node["@id"]] = value["@value"]
    return issued


def build_catalogue(
    out_dir: Path,
    files: Sequence[ExportedFile],
    settings: OpenDataSettings,
    *,
    now: dt.datetime | None = None,
    contributor_id: str | None = None,
    issued: dict[str, str] | None = None,
) -> JsonObject:
    """The catalogue as a JSON-LD document: the datasets that have files, in :data:`DATASETS` order.

    ``contributor_id`` overrides ``opendata.contributor_id`` (both None: no ``dcatde:contributorID``).

    Raises :class:`CatalogueError` for a file that is missing, not where its dataset and month put it under
    ``out_dir``, or listed twice.
    """
    seen: set[Path] = set()
    facts: list[_FileFacts] = []
    for file in files:
        resolved = file.path.resolve()
        if resolved in seen:
            raise CatalogueError(f"file {file.path} is listed twice")
        seen.add(resolved)
        facts.append(_FileFacts(file, out_dir))
    facts.sort(key=lambda fact: (fact.file.month, fact.file.media_type))
    addresses = _Addresses(settings.base_url)
    box = _station_box(facts)
    issued = issued or {}
    dataset_nodes: list[JsonObject] = []
    distribution_nodes: list[JsonObject] = []
    schema_nodes: list[JsonObject] = []
    for definition in DATASETS:
        mine = [fact for fact in facts if fact.file.dataset_id == definition.id]
        if not mine:
            continue
        dataset_nodes.append(
            _dataset(
                definition,
                mine,
                addresses,
                settings,
                box=box if definition.id == _STATION_DATASET else None,
                contributor_id=contributor_id or settings.contributor_id,
                issued=issued,
            )
        )
        distribution_nodes.extend(_distribution(fact, addresses, settings, issued) for fact in mine)
        if any(fact.file.media_type == MEDIA_TYPES["csv"] for fact in mine):
            schema_nodes.append(_csvw_schema(definition, addresses))
    moment = _utc(now or dt.datetime.now(dt.UTC))
    catalogue = _catalogue(dataset_nodes, addresses, settings, moment, issued)
    return {
        "@context": dict(CONTEXT),
        "@graph": [catalogue, *dataset_nodes, *distribution_nodes, *schema_nodes],
    }


def write_catalogue(
    out_dir: Path,
    files: Sequence[ExportedFile],
    settings: OpenDataSettings,
    *,
    now: dt.datetime | None = None,
    contributor_id: str | None = None,
) -> Path:
    """Write ``<out_dir>/catalog.jsonld`` describing exactly ``files`` (pass every exported file, all
    months), replacing the previous one atomically; returns its path. ``dct:issued`` of datasets and
    distributions already in the previous catalogue is kept."""
    path = out_dir / CATALOGUE_NAME
    document = build_catalogue(
        out_dir, files, settings, now=now, contributor_id=contributor_id, issued=_issued_before(path)
    )
    temporary = path.with_name(f".{CATALOGUE_NAME}.tmp")
    temporary.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path
