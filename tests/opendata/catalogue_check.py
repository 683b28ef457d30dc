"""The check a harvester would make of ``catalog.jsonld``: parse it with rdflib (JSON-LD), query the
required DCAT-AP.de properties with SPARQL, and fetch every distribution's file from its downloadURL to
compare it with what the catalogue declares (size, SHA-256, format, CSV header). Shared by the catalogue's
and the export's tests."""

from __future__ import annotations

import csv
import hashlib
import json
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.query import ResultRow
from rdflib.term import Node

from ingest.opendata.catalogue import LICENSE, SHA256
from ingest.opendata.datasets import FREQUENCY_DAILY

__all__ = ["CSVW", "DCAT", "DCATDE", "DCT", "SPDX", "check_catalogue"]

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
DCATDE = Namespace("http://dcat-ap.de/def/dcatde/")
SPDX = Namespace("http://spdx.org/rdf/terms#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")


def _file_of(url: str, out_dir: Path, base_url: str | None) -> Path | None:
    """The local file a downloadURL names: under base_url -> out_dir, or a file: URL (relative links
    resolved by rdflib against the catalogue's own file: address)."""
    if base_url and url.startswith(base_url + "/"):
        return out_dir / unquote(url[len(base_url) + 1 :])
    parts = urlsplit(url)
    return Path(url2pathname(parts.path)) if parts.scheme == "file" else None


def _literals(graph: Graph, node: Node, predicate: URIRef) -> list[Literal]:
    return [value for value in graph.objects(node, predicate) if isinstance(value, Literal)]


def _languages(graph: Graph, node: Node, predicate: URIRef) -> set[str | None]:
    return {value.language for value in _literals(graph, node, predicate) if str(value).strip()}


def _check_file(graph: Graph, distribution: Node, path: Path) -> list[str]:
    problems: list[str] = []
    content = path.read_bytes()
    size = graph.value(distribution, DCAT.byteSize)
    if not isinstance(size, Literal) or int(size) != len(content):
        problems.append(f"{path.name}: byteSize {size} != {len(content)}")
    checksum = graph.value(distribution, SPDX.checksum)
    algorithm = graph.value(checksum, SPDX.algorithm) if checksum is not None else None
    value = graph.value(checksum, SPDX.checksumValue) if checksum is not None else None
    if algorithm != URIRef(SHA256) or str(value) != hashlib.sha256(content).hexdigest():
        problems.append(f"{path.name}: sha256 {value} does not match the file")
    media = str(graph.value(distribution, DCAT.mediaType))
    file_format = str(graph.value(distribution, DCT["format"]))
    if path.suffix == ".csv":
        if not (media.endswith("/text/csv") and file_format.endswith("/file-type/CSV")):
            problems.append(f"{path.name}: declared {media} / {file_format}, not CSV")
        table = graph.value(distribution, DCT.conformsTo)
        schema = graph.value(table, CSVW.tableSchema) if table is not None else None
        columns = graph.value(schema, CSVW.column) if schema is not None else None
        declared = (
            [str(graph.value(column, CSVW.name)) for column in Collection(graph, columns)] if columns else []
        )
        header = next(csv.reader(content.decode("utf-8").splitlines()), [])
        if header != declared:
            problems.append(f"{path.name}: CSV header {header} != declared columns {declared}")
    elif path.suffix == ".json":
        if not (media.endswith("/application/json") and file_format.endswith("/file-type/JSON")):
            problems.append(f"{path.name}: declared {media} / {file_format}, not JSON")
        try:
            json.loads(content)
        except ValueError as error:
            problems.append(f"{path.name}: does not parse as JSON ({error})")
    else:
        problems.append(f"{path.name}: neither .csv nor .json")
    return problems


REQUIRED_DATASET = """
PREFIX dcat: <http://www.w3.org/ns/dcat#>
PREFIX dct: <http://purl.org/dc/terms/>
PREFIX foaf: <http://xmlns.com/foaf/0.1/>
SELECT ?dataset WHERE {
  ?catalog a dcat:Catalog ; dcat:dataset ?dataset .
  ?dataset a dcat:Dataset ;
    dct:publisher [ a foaf:Agent ; foaf:name ?publisher ] ;
    dct:accrualPeriodicity ?frequency ;
    dct:temporal [ a dct:PeriodOfTime ; dcat:startDate ?start ; dcat:endDate ?end ] ;
    dct:spatial [ a dct:Location ] ;
    dcat:theme ?theme ;
    dcat:keyword ?keyword ;
    dcat:distribution ?distribution .
  FILTER(STRSTARTS(STR(?theme), "http://publications.europa.eu/resource/authority/data-theme/"))
  FILTER(?start < ?end)
}
"""


def parse_catalogue(path: Path) -> Graph:
    """The catalogue as rdflib reads JSON-LD (its parser's own use of the deprecated ConjunctiveGraph in
    rdflib 7.6 is not ours to warn about)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return Graph().parse(path, format="json-ld")


def check_catalogue(path: Path, out_dir: Path, base_url: str | None = None) -> list[str]:
    """Everything wrong with the catalogue at ``path``, as a harvester would find it; [] when it holds.
    ``base_url``: the ``opendata.base_url`` it was written with (its files are looked up in ``out_dir``)."""
    graph = parse_catalogue(path)
    problems: list[str] = []
    result = graph.query(REQUIRED_DATASET, initBindings={"frequency": URIRef(FREQUENCY_DAILY)})
    complete = {row[0] for row in result if isinstance(row, ResultRow)}
    for node in graph.subjects(RDF.type, DCAT.Dataset):
        if node not in complete:
            problems.append(f"{node}: lacks a required property (publisher, frequency, temporal, ...)")
        for predicate in (DCT.title, DCT.description):
            if _languages(graph, node, predicate) != {"de", "en"}:
                problems.append(f"{node}: {predicate} not in exactly de and en")
    for distribution in graph.subjects(RDF.type, DCAT.Distribution):
        if graph.value(distribution, DCT.license) != URIRef(LICENSE):
            problems.append(f"{distribution}: licence is not {LICENSE}")
        if not _literals(graph, distribution, DCATDE.licenseAttributionByText):
            problems.append(f"{distribution}: no dcatde:licenseAttributionByText")
        if _languages(graph, distribution, DCT.title) != {"de", "en"}:
            problems.append(f"{distribution}: dct:title not in de and en")
        download = graph.value(distribution, DCAT.downloadURL)
        file = _file_of(str(download), out_dir, base_url) if download is not None else None
        if file is None or not file.is_file():
            problems.append(f"{distribution}: downloadURL {download} does not resolve to a file")
            continue
        if graph.value(distribution, DCAT.accessURL) != download:
            problems.append(f"{distribution}: accessURL differs from downloadURL")
        problems.extend(_check_file(graph, distribution, file))
    return problems
