"""The monthly letters against a real InfluxDB and a real SQLite registry.

Seven households of one building: daily counter readings (12:00 local) from October 2025 to November
2026 go through the real energy ledger (``ingest.energy.job.rollup``) into ``rollups.energy_1d``; the
letters are rendered from it and read back with pypdf. Every figure the test expects is computed here from
the counter readings it wrote: a day's energy is the counter's rise since the day before's reading.
"""

from __future__ import annotations

import datetime as dt
import io
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from pypdf import PdfReader

from ingest.cli import main
from ingest.config import InfluxSettings
from ingest.energy.job import rollup
from ingest.energy.store import LedgerWriter, RawReader
from ingest.letters import wording
from ingest.letters.figures import Month
from ingest.letters.recipients import recipients
from ingest.letters.render import Renderer
from ingest.letters.source import letter_figures
from ingest.lifecycle_cli import InfluxV1
from ingest.lineprotocol import format_line
from ingest.localservices import InfluxDB
from ingest.portal.data import PortalData
from ingest.portal.reader import Reader
from ingest.registry.db import make_engine, session_factory
from ingest.registry.migrate import upgrade
from ingest.registry.models import Building, Household

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")
BUILDING = "Haus Am Deich"
ADDRESS = "Am Deich 7, 26135 Oldenburg"
FIRST_DAY = dt.date(2025, 10, 31)
LAST_DAY = dt.date(2026, 11, 30)
MONTH = Month(2026, 11)
SHORT = ["Dez", "Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov"]
MONTH_NAMES = {10: "Oktober", 11: "November"}


@dataclass
class Meter:
    """One counter of a household: its kind and the readings written (local day -> kWh)."""

    kind: str
    measurement: str
    field_name: str
    tags: dict[str, str]
    daily_kwh: float
    since: dt.date = FIRST_DAY
    readings: dict[dt.date, float] = field(default_factory=dict)


@dataclass
class World:
    database: str
    influx_url: str
    registry_url: str
    meters: dict[str, list[Meter]]  # household -> its meters

    def rises(self, household: str, kind: str, month: Month) -> dict[dt.date, float]:
        """The household's ``kind`` per day of ``month``: its counters' rises since the day before."""
        out: dict[dt.date, float] = {}
        for meter in self.meters[household]:
            if meter.kind != kind:
                continue
            for day, value in meter.readings.items():
                before = meter.readings.get(day - dt.timedelta(days=1))
                if before is not None and (day.year, day.month) == (month.year, month.month):
                    out[day] = out.get(day, 0.0) + value - before
        return out

    def expected(self, household: str, kind: str, month: Month) -> float | None:
        """kWh of ``kind`` in ``month`` (None: nothing measured)."""
        rises = self.rises(household, kind, month)
        return sum(rises.values()) if rises else None


HOUSEHOLDS = {  # name -> (meters: kind, daily kWh, first day)
    "EG links": [("import", 5.1, FIRST_DAY)],
    "EG rechts": [("import", 7.4, FIRST_DAY)],
    "1. OG links": [("import", 6.2, FIRST_DAY)],
    "1. OG rechts": [("import", 9.8, FIRST_DAY)],
    "2. OG links": [
        ("import", 4.3, FIRST_DAY),
        ("export", 3.0, FIRST_DAY),
        ("pv", 6.5, FIRST_DAY),
        ("heat", 21.0, FIRST_DAY),
        ("ev", 8.2, FIRST_DAY),
    ],
    "2. OG rechts": [("import", 6.9, dt.date(2026, 3, 10))],  # meter fitted in March
    "Dachgeschoss": [],  # no meter: the letter says so
}
SOURCES = {  # kind -> measurement, field, extra tags
    "import": ("electricity", "energy_import_kwh", {}),
    "export": ("electricity", "energy_export_kwh", {}),
    "pv": ("pv", "energy_kwh", {}),
    "heat": ("heat", "energy_kwh", {}),
    "ev": ("electricity", "energy_import_kwh", {"channel": "ev"}),
}


def _noon_ns(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(12), BERLIN).timestamp()) * 1_000_000_000


def _meters() -> dict[str, list[Meter]]:
    rng = random.Random(14)
    out: dict[str, list[Meter]] = {}
    for number, (household, specs) in enumerate(HOUSEHOLDS.items()):
        meters = []
        for kind, daily, since in specs:
            measurement, field_name, extra = SOURCES[kind]
            device = f"m{number}-{kind}" if kind != "export" else f"m{number}-import"  # one meter, two fields
            tags = {"device": device, "household": household, "building": BUILDING, **extra}
            meter = Meter(kind, measurement, field_name, tags, daily, since)
            value = round(rng.uniform(1000, 20000), 3)
            day = since
            while day <= LAST_DAY:
                winter = 1.0 + 0.35 * (
                    1 if day.month in (11, 12, 1, 2) else -0.4 if day.month in (6, 7) else 0
                )
                value = round(value + daily * winter * rng.uniform(0.5, 1.5), 3)
                meter.readings[day] = value
                day += dt.timedelta(days=1)
            meters.append(meter)
        out[household] = meters
    return out


def _registry(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine)() as session:
        building = Building(name=BUILDING, address=ADDRESS)
        session.add(building)
        session.flush()
        for household in HOUSEHOLDS:
            session.add(Household(building_id=building.id, name=household))
        session.commit()
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def world(influxdb: InfluxDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The building's raw counters written, the real ledger run over the chart's twelve months."""
    database = f"letters_{uuid.uuid4().hex[:8]}"
    client = InfluxV1(influxdb.url, auth=None)
    client.query(f'CREATE DATABASE "{database}"')
    client.query(f'CREATE RETENTION POLICY "rollups" ON "{database}" DURATION INF REPLICATION 1')
    meters = _meters()
    lines = [
        format_line(meter.measurement, meter.tags, {meter.field_name: value}, _noon_ns(day))
        for household in meters.values()
        for meter in household
        for day, value in meter.readings.items()
    ]
    response = httpx.post(
        f"{influxdb.url}/write",
        params={"db": database, "precision": "ns"},
        content="\n".join(lines).encode(),
        timeout=60,
        trust_env=False,
    )
    assert response.status_code == 204, response.text
    writer = LedgerWriter(influxdb.url, database, auth=None)
    started = time.monotonic()
    report = rollup(
        RawReader(client, database),
        writer,
        since=dt.datetime(2025, 12, 1, tzinfo=BERLIN),
        until=dt.datetime(2026, 12, 1, tzinfo=BERLIN),
    )
    writer.close()
    print(f"ledger: {len(lines)} readings in, {report.line()} ({time.monotonic() - started:.1f} s)")
    registry_url = _registry(tmp_path_factory.mktemp("letters") / "registry.db")
    yield World(database, influxdb.url, registry_url, meters)
    client.query(f'DROP DATABASE "{database}"')
    client.close()


def _kwh(value: float) -> str:
    """The letter's way, written out again: whole kWh (half up), one decimal below 10, German marks."""
    places = Decimal("0.1") if abs(value) < 10 else Decimal(1)
    figure = Decimal(repr(value)).quantize(places, rounding=ROUND_HALF_UP)
    whole, _, decimals = f"{figure:f}".partition(".")
    text = f"{int(whole):,}".replace(",", ".") + (f",{decimals}" if decimals.strip("0") else "")
    return f"{text} kWh"


def _text(pdf: bytes) -> list[str]:
    """Each page's text, every run of white space (line breaks, no-break spaces) as one space."""
    return [re.sub(r"\s+", " ", page.extract_text()) for page in PdfReader(io.BytesIO(pdf)).pages]


@pytest.fixture(scope="module")
def letters(world: World) -> dict[str, bytes]:
    """Every household's letter, from the portal's data layer over the ledger the real job wrote."""
    reader = Reader(InfluxSettings(url=world.influx_url, database=world.database))
    texts = wording.Texts(sender="Quartiersbüro Am Deich", help_text="Telefon 0441 000000", privacy_text="P")
    renderer = Renderer()
    try:
        found = recipients(world.registry_url)
        return {
            figures.household: renderer.pdf(wording.document(figures, texts, date="1. Dezember 2026"))
            for figures in letter_figures(PortalData(reader, BERLIN), found, MONTH, BERLIN)
        }
    finally:
        reader.close()


def test_a_letter_says_the_months_kwh_and_the_comparisons(world: World, letters: dict[str, bytes]) -> None:
    household = "EG rechts"
    page1, page2 = _text(letters[household])
    used = world.expected(household, "import", MONTH)
    before = world.expected(household, "import", MONTH.shift(-1))
    assert used is not None
    assert before is not None
    assert f"Ihr Stromverbrauch im November 2026: {_kwh(used)}" in page1
    # the difference between the two figures as shown, so that the letter's arithmetic adds up
    shown = Decimal(_kwh(used).split()[0].replace(".", "")) - Decimal(
        _kwh(before).split()[0].replace(".", "")
    )
    more_less = "mehr" if shown > 0 else "weniger"
    assert f"Das sind {abs(shown)} kWh {more_less} als im Oktober 2026 ({_kwh(before)})." in page1
    november = [world.expected(name, "import", MONTH) for name in HOUSEHOLDS]
    typical = _typical([v for v in november if v is not None])
    ratio = used / typical
    words = next(
        w
        for bound, w in (
            (0.75, "deutlich weniger"),
            (0.95, "etwas weniger"),
            (1.05, "etwa so viel"),
            (1.25, "etwas mehr"),
            (99, "deutlich mehr"),
        )
        if ratio < bound
    )
    assert f"Sie haben {words} Strom verbraucht" in page1
    assert f"ein typischer Haushalt im Quartier ({_kwh(typical)})" in page1
    assert all(_kwh(v) not in page1 for v in november if v is not None and v != used)  # nobody else's
    assert "Ihr Strom im November 2026" in page1
    assert "Seite 1 von 2" in page1
    assert ADDRESS.split(",")[0] in page1
    assert "26135 Oldenburg" in page1
    assert household in page1
    # the chart: twelve German month labels in order, each month's figure
    assert " ".join(SHORT) in page1
    for k in range(-11, 1):
        month = MONTH.shift(k)
        value = world.expected(household, "import", month)
        assert value is not None
        assert _kwh(value).removesuffix(" kWh") in page1, month
    assert "Telefon 0441 000000" in page2
    assert "Hilfe" in page2
    assert "Ihre Daten" in page2
    assert "Seite 2 von 2" in page2


def _percent(share: float) -> str:
    return f"{Decimal(repr(share * 100)).quantize(Decimal(1), rounding=ROUND_HALF_UP)} %"


def _typical(values: list[float]) -> float:
    """docs/portal.md: the mean of the middle values without the lowest and highest quarter, rounded."""
    ordered = sorted(values)
    cut = len(ordered) // 4
    middle = ordered[cut : len(ordered) - cut]
    mean = sum(middle) / len(middle)
    return round(mean, 1) if mean < 10 else float(round(mean))


def test_the_quarters_figures(world: World, letters: dict[str, bytes]) -> None:
    """Page 2 shows the quarter like the portal: a typical household's consumption (import plus PV not
    exported), no total and no count; with one PV installation in the quarter, no PV figure of it."""
    _, page2 = _text(letters["EG rechts"])
    consumptions = []
    for household in HOUSEHOLDS:
        used = world.expected(household, "import", MONTH)
        if used is not None:
            pv = world.expected(household, "pv", MONTH) or 0.0
            consumptions.append(used + max(0.0, pv - (world.expected(household, "export", MONTH) or 0.0)))
    assert len(consumptions) >= 5
    typical = _typical(consumptions)
    assert f"Ein typischer Haushalt im Quartier hat {_kwh(typical)} Strom verbraucht." in page2
    assert "Haushalte im Quartier haben zusammen" not in page2
    assert f"{len(consumptions)} Haushalte" not in page2
    assert wording.TOO_FEW_PV in " ".join(page2.split())
    assert "Selbstversorgung" not in page2
    assert "Bei Ihrem Haushalt waren es" not in page2


def test_pv_heat_and_ev_lines_only_where_measured(world: World, letters: dict[str, bytes]) -> None:
    page1, _ = _text(letters["2. OG links"])
    used = world.expected("2. OG links", "import", MONTH)
    pv, export, heat, ev = (
        world.expected("2. OG links", kind, MONTH) for kind in ("pv", "export", "heat", "ev")
    )
    assert used is not None
    assert pv is not None
    assert export is not None
    assert heat is not None
    assert ev is not None
    assert f"Strom aus dem Netz im November 2026: {_kwh(used)}" in page1
    assert f"Ihre Solaranlage hat {_kwh(pv)} Strom erzeugt." in page1
    assert f"Ins Netz eingespeist haben Sie {_kwh(export)}." in page1
    assert f"Wärme für Heizung und Warmwasser: {_kwh(heat)}." in page1
    assert f"Für Ihr Elektroauto geladen: {_kwh(ev)}." in page1
    plain, _ = _text(letters["EG links"])
    for absent in ("Solaranlage hat", "eingespeist", "Wärme für", "Elektroauto"):
        assert absent not in plain


def test_months_without_measurements(world: World, letters: dict[str, bytes]) -> None:
    page1, _ = _text(letters["Dachgeschoss"])
    assert "Für November 2026 liegen keine Messwerte vor." in page1
    assert "kWh" not in page1  # no chart, no zero figures
    late, _ = _text(letters["2. OG rechts"])  # meter since 10 March: December to February show a dash
    labels = late.index(" ".join(SHORT))
    assert late[:labels].count("–") == 3
    march = world.expected("2. OG rechts", "import", Month(2026, 3))
    assert march is not None
    assert _kwh(march).removesuffix(" kWh") in late


def test_page_renders_to_png(letters: dict[str, bytes], tmp_path: Path) -> None:
    pdf = tmp_path / "letter.pdf"
    pdf.write_bytes(letters["2. OG links"])
    done = subprocess.run(
        ["pdftoppm", "-png", "-r", "60", str(pdf), str(tmp_path / "page")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 2
    assert all(page.read_bytes().startswith(b"\x89PNG") and page.stat().st_size > 10_000 for page in pages)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command line in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "ingest.cli", "letters", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command line in this process (no second start-up): exit code, stdout, stderr."""
    code = main(["letters", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_one_letter_per_household_and_the_print_file(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "influx": {"url": world.influx_url, "database": world.database},
                "registry": {"url": world.registry_url},
                "letters": {"help_text": "Quartiersbüro: Telefon 0441 123456, Mo-Fr 9-12 Uhr"},
            }
        )
    )
    out = tmp_path / "out"
    done = _cli("--config", str(config), "--month", "2026-11", "--out", str(out), "--date", "2026-12-01")
    assert done.returncode == 0, done.stderr
    combined = out / "letters-2026-11-all.pdf"
    letters = sorted(out.glob("letter-2026-11-*.pdf"))
    assert len(letters) == len(HOUSEHOLDS)
    assert {str(path) for path in [*letters, combined]} == set(done.stdout.split("\n")) - {""}
    assert out / "letter-2026-11-1-og-links.pdf" in letters
    assert (out / "letter-2026-11-eg-rechts.pdf").stat().st_mode & 0o077 == 0  # personal data
    pages = PdfReader(combined).pages
    assert len(pages) == 2 * len(HOUSEHOLDS)  # one sheet per household, printed on both sides
    first_pages = [re.sub(r"\s+", " ", pages[i].extract_text()) for i in range(0, len(pages), 2)]
    order = [next(h for h in HOUSEHOLDS if f"{h} ({BUILDING}) · November 2026" in p) for p in first_pages]
    assert order == sorted(HOUSEHOLDS)
    assert "1. Dezember 2026" in first_pages[0]
    assert "Telefon 0441 123456, Mo-Fr 9-12 Uhr" in pages[1].extract_text()

    code, _, err = _main(
        capsys,
        "--config",
        str(config),
        "--month",
        "2026-11",
        "--out",
        str(tmp_path / "one"),
        "--household",
        "EG links",
    )
    assert code == 0, err
    assert len(PdfReader(tmp_path / "one" / "letters-2026-11-all.pdf").pages) == 2


@pytest.mark.parametrize(
    ("month", "says"),
    [("2026-13", "no such month"), ("11/2026", "expected YYYY-MM"), ("2026-1", "expected YYYY-MM")],
)
def test_cli_refuses_a_bad_month(
    month: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _main(capsys, "--month", month, "--out", str(tmp_path))
    assert code == 2
    assert says in err
    assert repr(month) in err
    assert not list(tmp_path.iterdir())


def test_cli_refuses_an_unknown_household(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "influx": {"url": world.influx_url, "database": world.database},
                "registry": {"url": world.registry_url},
            }
        )
    )
    code, _, err = _main(
        capsys, "--config", str(config), "--month", "2026-11", "--household", "Keller", "--out", str(tmp_path)
    )
    assert code == 2
    assert "no household named 'Keller'" in err
