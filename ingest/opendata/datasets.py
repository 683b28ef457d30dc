"""The open datasets: what each one is, in German and English, and what its columns mean.

One :class:`Dataset` per published dataset (:data:`DATASETS`); the export (:mod:`ingest.opendata.export`)
writes rows with exactly :attr:`Dataset.header` as CSV header / JSON keys, the catalogue
(:mod:`ingest.opendata.catalogue`) describes the same columns to harvesters, and the public page links them.
Column names carry their unit (``grid_import_kwh``) so that a CSV header alone says what a figure is; the
catalogue also states each unit as a UCUM code.

Files: ``<out_dir>/<dataset-id>/<dataset-id>_<YYYY-MM>.csv`` and ``.json`` (:meth:`Dataset.relative_path`);
the export returns one :class:`ExportedFile` for each file it wrote.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

__all__ = [
    "DATASETS",
    "DATASET_IDS",
    "FREQUENCY_DAILY",
    "MEDIA_TYPES",
    "MISSING_CSV",
    "SUPPRESSED_CSV",
    "THEME_ENERGY",
    "THEME_ENVIRONMENT",
    "Column",
    "Dataset",
    "Datatype",
    "ExportedFile",
    "Text",
    "dataset",
]

FREQUENCY_DAILY = "http://publications.europa.eu/resource/authority/frequency/DAILY"
THEME_ENERGY = "http://publications.europa.eu/resource/authority/data-theme/ENER"
THEME_ENVIRONMENT = "http://publications.europa.eu/resource/authority/data-theme/ENVI"

MEDIA_TYPES = {"csv": "text/csv", "json": "application/json"}
"""File extension -> IANA media type of the files the export writes."""

SUPPRESSED_CSV = "."
"""A CSV cell withheld by disclosure control (the sign official statistics use for "geheim zu halten");
in JSON the value is ``null`` and the row's ``suppressed`` list names the column."""
MISSING_CSV = ""
"""A CSV cell without a measurement (sensor without that quantity, no data in the interval)."""

Datatype = Literal["dateTime", "decimal", "integer", "string"]
"""XML Schema datatype of a column's values (CSVW ``datatype``)."""

_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Text:
    """The same text in German and English."""

    de: str
    en: str


@dataclass(frozen=True)
class Column:
    """One column of a dataset: its name (CSV header, JSON key), unit and meaning.

    ``unit`` is written for people (kWh, %, °C, ppm, µg/m³, dB(A)); ``ucum`` is the same unit as a UCUM code
    for machines (None: no unit, e.g. a label or a count). ``suppressible``: disclosure control may withhold
    the cell (:data:`SUPPRESSED_CSV`); only figures summed over households are, and the row's household
    count (withheld when all of its figures are).
    """

    name: str
    datatype: Datatype
    description: Text
    unit: str | None = None
    ucum: str | None = None
    suppressible: bool = False


@dataclass(frozen=True)
class Dataset:
    """One open dataset: metadata for the catalogue and the column layout of its files."""

    id: str
    title: Text
    description: Text
    keywords: Text  # comma-separated lists: "Energie, Photovoltaik" / "energy, photovoltaics"
    themes: tuple[str, ...]  # EU data-theme URIs
    resolution: dt.timedelta  # one row per this interval (dcat:temporalResolution)
    columns: tuple[Column, ...]
    accrual_periodicity: str = FREQUENCY_DAILY  # the daily run adds yesterday to the month's files

    @property
    def header(self) -> tuple[str, ...]:
        """Column names in file order: the CSV header row, the keys of each JSON row."""
        return tuple(column.name for column in self.columns)

    @property
    def suppressible(self) -> tuple[str, ...]:
        """Names of the columns disclosure control may withhold."""
        return tuple(column.name for column in self.columns if column.suppressible)

    def column(self, name: str) -> Column:
        """The column called ``name``; KeyError naming the dataset's columns otherwise."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"dataset {self.id!r} has no column {name!r}; columns: {', '.join(self.header)}")

    def keyword_list(self, language: Literal["de", "en"]) -> tuple[str, ...]:
        """The keywords in one language, one per entry."""
        text = self.keywords.de if language == "de" else self.keywords.en
        return tuple(word.strip() for word in text.split(",") if word.strip())

    def relative_path(self, month: str, extension: str) -> PurePosixPath:
        """``<id>/<id>_<YYYY-MM>.<csv|json>``, relative to ``opendata.out_dir`` (and to ``base_url``)."""
        _check_month(month)
        if extension not in MEDIA_TYPES:
            raise ValueError(f"extension {extension!r} is not one of {', '.join(MEDIA_TYPES)}")
        return PurePosixPath(self.id, f"{self.id}_{month}.{extension}")


@dataclass(frozen=True)
class ExportedFile:
    """A file the export wrote: which dataset and month, where, and the period its rows cover.

    ``path`` is the file on disk (under ``opendata.out_dir``); ``temporal_start``/``temporal_end`` are
    timezone-aware, end exclusive: the start of the first and the end of the last interval exported (the
    month so far while the daily run still fills it).
    """

    dataset_id: str
    month: str
    path: Path
    media_type: str
    temporal_start: dt.datetime
    temporal_end: dt.datetime

    def __post_init__(self) -> None:
        definition = dataset(self.dataset_id)
        _check_month(self.month)
        if self.media_type not in MEDIA_TYPES.values():
            raise ValueError(
                f"media_type {self.media_type!r} of {self.path} is not one of "
                f"{', '.join(MEDIA_TYPES.values())}"
            )
        extension = next(ext for ext, media in MEDIA_TYPES.items() if media == self.media_type)
        expected = definition.relative_path(self.month, extension).name
        if self.path.name != expected:
            raise ValueError(f"path {self.path} of dataset {self.dataset_id!r} should be named {expected!r}")
        for key in ("temporal_start", "temporal_end"):
            value: dt.datetime = getattr(self, key)
            if value.utcoffset() is None:
                raise ValueError(f"{key} {value.isoformat()} has no UTC offset")
        if self.temporal_end <= self.temporal_start:
            raise ValueError(
                f"temporal_end {self.temporal_end.isoformat()} is not after "
                f"temporal_start {self.temporal_start.isoformat()} ({self.path})"
            )


def _check_month(month: str) -> None:
    if not _MONTH.match(month):
        raise ValueError(f"month {month!r} is not YYYY-MM")


# --- the columns ------------------------------------------------------------------------------------------

_START = Column(
    "start",
    "dateTime",
    Text(
        "Beginn des Intervalls, ISO 8601 in Ortszeit (Europe/Berlin) mit UTC-Versatz",
        "start of the interval, ISO 8601 in local time (Europe/Berlin) with UTC offset",
    ),
)
_HOUSEHOLDS = Column(
    "households",
    "integer",
    Text(
        "Anzahl der Haushalte, deren Messwerte in die Zeile eingehen",
        "number of households whose readings the row sums",
    ),
    suppressible=True,  # withheld with the row's figures when all of them are (disclosure.py, L1)
)


def _energy(name: str, de: str, en: str) -> Column:
    return Column(name, "decimal", Text(de, en), unit="kWh", ucum="kW.h", suppressible=True)


_ENERGY = (
    _energy(
        "grid_import_kwh",
        "aus dem Stromnetz bezogene elektrische Energie (Hauptzähler der Haushalte)",
        "electrical energy imported from the grid (households' main meters)",
    ),
    _energy(
        "grid_export_kwh",
        "in das Stromnetz eingespeiste elektrische Energie (Hauptzähler der Haushalte)",
        "electrical energy exported to the grid (households' main meters)",
    ),
    _energy("pv_kwh", "Ertrag der Photovoltaikanlagen", "yield of the photovoltaic systems"),
    _energy(
        "heat_kwh", "gemessene Wärmeenergie (Heizung und Warmwasser)", "metered heat (heating and hot water)"
    ),
    _energy(
        "ev_charging_kwh", "Energie zum Laden von Elektrofahrzeugen", "energy for charging electric vehicles"
    ),
    _energy(
        "self_consumption_kwh",
        "selbst verbrauchter PV-Strom: PV-Ertrag minus Einspeisung (nicht unter 0)",
        "PV electricity used on site: PV yield minus export (not below 0)",
    ),
    Column(
        "self_sufficiency_percent",
        "decimal",
        Text(
            "Autarkiegrad: Anteil des Stromverbrauchs, der nicht von außerhalb (des Quartiers, des Gebäudes) "
            "bezogen wird, je Viertelstunde saldiert: "
            "(1 − Σ max(0, Netzbezug − Einspeisung) / (Netzbezug + PV-Ertrag − Einspeisung)) · 100",
            "self-sufficiency: share of electricity consumption not drawn from outside (the neighbourhood, "
            "the building), netted per quarter hour: "
            "(1 − Σ max(0, grid import − export) / (grid import + PV yield − export)) · 100",
        ),
        unit="%",
        ucum="%",
        suppressible=True,
    ),
)

_BUILDING = Column(
    "building",
    "string",
    Text(
        "öffentliche Bezeichnung des Gebäudes (keine Adresse, keine Kennung aus dem Register)",
        "public label of the building (no address, no identifier from the registry)",
    ),
)


def _measured(name: str, unit: str, ucum: str, de: str, en: str) -> Column:
    return Column(
        name,
        "decimal",
        Text(f"{de}, Mittelwert über 10 Minuten", f"{en}, mean over 10 minutes"),
        unit=unit,
        ucum=ucum,
    )


_STREET = (
    _START,
    Column(
        "station",
        "string",
        Text(
            "öffentliche Bezeichnung der Messstation (keine Geräte- oder Gateway-Kennung)",
            "public label of the sensor station (no device or gateway identifier)",
        ),
    ),
    Column(
        "lat",
        "decimal",
        Text(
            "geografische Breite der Station (WGS 84), leer wenn unbekannt",
            "latitude (WGS 84), empty if unknown",
        ),
        unit="°",
        ucum="deg",
    ),
    Column(
        "lon",
        "decimal",
        Text(
            "geografische Länge der Station (WGS 84), leer wenn unbekannt",
            "longitude (WGS 84), empty if unknown",
        ),
        unit="°",
        ucum="deg",
    ),
    _measured("temperature_c", "°C", "Cel", "Lufttemperatur", "air temperature"),
    _measured("humidity_pct", "%", "%", "relative Luftfeuchte", "relative humidity"),
    _measured("co2_ppm", "ppm", "[ppm]", "CO₂-Konzentration", "CO₂ concentration"),
    _measured("pm25_ugm3", "µg/m³", "ug/m3", "Feinstaub PM2,5", "particulate matter PM2.5"),
    _measured("pm10_ugm3", "µg/m³", "ug/m3", "Feinstaub PM10", "particulate matter PM10"),
    # UCUM has no A-weighting: the code says decibel, the description says dB(A)
    _measured(
        "noise_dba",
        "dB(A)",
        "dB",
        "A-bewerteter Schallpegel (LAeq) in dB(A)",
        "A-weighted sound level (LAeq)",
    ),
)

_DISCLOSURE = Text(
    "Werte werden nur veröffentlicht, wenn mindestens 5 Haushalte beitragen und kein Haushalt mehr als 85 % "
    "des Werts ausmacht; sonst steht in der CSV-Datei ein Punkt (.) und in JSON null.",
    "Figures are published only if at least 5 households contribute and no single household makes up more "
    "than 85 % of the figure; otherwise the CSV cell holds a dot (.) and the JSON value is null.",
)

_ENERGY_KEYWORDS = Text(
    "Energie, Strom, Photovoltaik, Wärme, Elektromobilität, Eigenverbrauch, Autarkie, Reallabor, Quartier",
    "energy, electricity, photovoltaics, heat, electric mobility, self-consumption, self-sufficiency, "
    "living lab, neighbourhood",
)


def _energy_description(de: str, en: str) -> Text:
    return Text(f"{de} {_DISCLOSURE.de}", f"{en} {_DISCLOSURE.en}")


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        id="quarter-energy-15min",
        title=Text("Energie im Quartier je 15 Minuten", "Neighbourhood energy per 15 minutes"),
        description=_energy_description(
            "Summe über alle Haushalte des Reallabor-Quartiers je Viertelstunde: Netzbezug, Einspeisung, "
            "PV-Ertrag, Wärme, Laden von Elektrofahrzeugen, Eigenverbrauch und Autarkiegrad.",
            "Sum over all households of the living-lab neighbourhood per quarter hour: grid import, export, "
            "PV yield, heat, electric vehicle charging, self-consumption and self-sufficiency.",
        ),
        keywords=_ENERGY_KEYWORDS,
        themes=(THEME_ENERGY,),
        resolution=dt.timedelta(minutes=15),
        columns=(_START, _HOUSEHOLDS, *_ENERGY),
    ),
    Dataset(
        id="quarter-energy-daily",
        title=Text("Energie im Quartier je Tag", "Neighbourhood energy per day"),
        description=_energy_description(
            "Summe über alle Haushalte des Reallabor-Quartiers je Kalendertag (Ortszeit): Netzbezug, "
            "Einspeisung, PV-Ertrag, Wärme, Laden von Elektrofahrzeugen, Eigenverbrauch und Autarkiegrad.",
            "Sum over all households of the living-lab neighbourhood per calendar day (local time): "
            "grid import, export, PV yield, heat, electric vehicle charging, self-consumption and "
            "self-sufficiency.",
        ),
        keywords=_ENERGY_KEYWORDS,
        themes=(THEME_ENERGY,),
        resolution=dt.timedelta(days=1),
        columns=(_START, _HOUSEHOLDS, *_ENERGY),
    ),
    Dataset(
        id="building-energy-daily",
        title=Text("Energie je Gebäude und Tag", "Energy per building and day"),
        description=_energy_description(
            "Summe über die Haushalte je Gebäude des Reallabor-Quartiers und Kalendertag (Ortszeit): "
            "Netzbezug, Einspeisung, PV-Ertrag, Wärme, Laden von Elektrofahrzeugen, Eigenverbrauch und "
            "Autarkiegrad.",
            "Sum over the households of each building of the living-lab neighbourhood per calendar day "
            "(local time): grid import, export, PV yield, heat, electric vehicle charging, "
            "self-consumption and self-sufficiency.",
        ),
        keywords=Text(f"Gebäude, {_ENERGY_KEYWORDS.de}", f"building, {_ENERGY_KEYWORDS.en}"),
        themes=(THEME_ENERGY,),
        resolution=dt.timedelta(days=1),
        columns=(_START, _BUILDING, _HOUSEHOLDS, *_ENERGY),
    ),
    Dataset(
        id="street-environment-10min",
        title=Text(
            "Straßenklima im Quartier je 10 Minuten", "Street environment in the neighbourhood per 10 minutes"
        ),
        description=Text(
            "Messwerte der Umweltsensoren im Straßenraum des Reallabor-Quartiers, Mittelwerte je 10 Minuten: "
            "Lufttemperatur, Luftfeuchte, CO₂, Feinstaub (PM2,5, PM10) und Lärm, soweit die Station sie "
            "misst, mit dem Standort der Station. Sensoren in Wohnungen werden nie veröffentlicht.",
            "Readings of the street-side environment sensors of the living-lab neighbourhood, means per 10 "
            "minutes: air temperature, humidity, CO₂, particulate matter (PM2.5, PM10) and noise where the "
            "station measures them, with the station's location. Indoor sensors are never published.",
        ),
        keywords=Text(
            "Umwelt, Klima, Lufttemperatur, Luftfeuchte, CO2, Feinstaub, PM2,5, PM10, Lärm, Reallabor, "
            "Quartier",
            "environment, climate, air temperature, humidity, CO2, particulate matter, PM2.5, PM10, noise, "
            "living lab, neighbourhood",
        ),
        themes=(THEME_ENVIRONMENT,),
        resolution=dt.timedelta(minutes=10),
        columns=_STREET,
    ),
)

DATASET_IDS: tuple[str, ...] = tuple(definition.id for definition in DATASETS)


def dataset(dataset_id: str) -> Dataset:
    """The dataset called ``dataset_id``; KeyError naming the known ids otherwise."""
    for definition in DATASETS:
        if definition.id == dataset_id:
            return definition
    raise KeyError(f"unknown dataset {dataset_id!r}; known: {', '.join(DATASET_IDS)}")
