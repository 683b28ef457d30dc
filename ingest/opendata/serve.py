"""The open-data files on the web: ``/opendata/catalog.jsonld`` and ``/opendata/<id>/<id>_<YYYY-MM>.csv|json``
served read-only from ``opendata.out_dir`` (written by ``reallabor opendata export``/``run``), and the list of
what is there for the public page.

Only names of that shape are served, checked by pattern before the file system is touched: no other path
(``..``, a hidden file, another extension, a directory) can be asked for, and a file that resolves outside
``out_dir`` (a symbolic link) is refused too. Anything else, or a file not (yet) written: 404. Media types
as the catalogue declares them (``datasets.MEDIA_TYPES``; the catalogue is JSON-LD).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ingest.opendata.datasets import DATASET_IDS, DATASETS, MEDIA_TYPES, Dataset

CATALOG = "catalog.jsonld"
CATALOG_TYPE = "application/ld+json"
_IDS = "|".join(re.escape(dataset_id) for dataset_id in DATASET_IDS)
# \Z, not $: "$" also matches before a trailing newline ("…_2025-05.csv%0A")
_FILE = re.compile(rf"^(?P<id>{_IDS})/(?P=id)_(?P<month>[0-9]{{4}}-(?:0[1-9]|1[0-2]))\.(?P<ext>csv|json)\Z")


@dataclass(frozen=True)
class MonthFiles:
    """One month of a dataset as the page links it: its files by extension (relative URLs)."""

    month: str
    files: dict[str, str]  # "csv" / "json" -> path relative to /opendata/


@dataclass(frozen=True)
class Published:
    """A dataset and the months of it that are on disk, newest first."""

    dataset: Dataset
    months: tuple[MonthFiles, ...]


def media_type(relative: str) -> str | None:
    """The media type of an allowed name under ``out_dir`` (None: not a name this server hands out)."""
    if relative == CATALOG:
        return CATALOG_TYPE
    match = _FILE.match(relative)
    if match is None:
        return None
    media = MEDIA_TYPES[match["ext"]]
    return f"{media}; charset=utf-8" if media.startswith("text/") else media


def resolve(out_dir: Path, relative: str) -> tuple[Path, str] | None:
    """The file and its media type for ``relative`` (the URL path after ``/opendata/``), or None: not an
    allowed name, not there, not a regular file, or outside ``out_dir`` once links are followed."""
    media = media_type(relative)
    if media is None:
        return None
    root = out_dir.resolve()
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a loop of links
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path, media


def published(out_dir: Path) -> tuple[tuple[Published, ...], bool]:
    """What the page links: every dataset with the months it has on disk (newest first), and whether the
    catalogue exists. Datasets without a file yet are listed with no months."""
    out: list[Published] = []
    for definition in DATASETS:
        months: dict[str, dict[str, str]] = {}
        directory = out_dir / definition.id
        try:
            names = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        except OSError:  # unreadable: the page lists no files rather than failing
            names = []
        for name in names:
            relative = f"{definition.id}/{name}"
            match = _FILE.match(relative)
            if match is not None and resolve(out_dir, relative) is not None:
                months.setdefault(match["month"], {})[match["ext"]] = relative
        ordered = sorted(months.items(), reverse=True)
        out.append(Published(definition, tuple(MonthFiles(month, files) for month, files in ordered)))
    return tuple(out), resolve(out_dir, CATALOG) is not None
