"""``reallabor energy``: bad ranges and bad settings refused with a clear message (exit 2)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.config import ConfigError, load_settings
from ingest.energy.cli import aware
from ingest.energy.settings import ledger_auth, parse_window


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("yesterday", "2025-06-19", "argument --since: not an ISO-8601 date or date-time"),
        ("2025-06-18", "2025-13-01", "argument --until: not an ISO-8601 date or date-time"),
        ("2025-06-18T25:00", "2025-06-19", "argument --since: not an ISO-8601"),
        ("2025-06-19", "2025-06-18", "--since (2025-06-19T00:00:00+02:00) must be before --until"),
        ("2025-06-18", "2025-06-18", "must be before --until"),
    ],
)
def test_bad_ranges_exit_2(
    since: str, until: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("influx: {url: 'http://127.0.0.1:9'}\n")
    args = ["energy", "rollup", "--config", str(config), "--since", since, "--until", until]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's refusal
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


def test_bad_settings_exit_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("energy: {window: 3 days}\n")
    assert main(["energy", "run", "--config", str(config)]) == 2
    assert "energy.window: a whole number of hours or days" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("energy: {window: 0d}", "energy.window: a whole number"),
        ("energy: {window: 40d}", "energy.window: from 1h to 31d"),
        ("energy: {window: 30m}", "energy.window: a whole number"),
        ("energy: {interval_s: 1}", "energy.interval_s"),
        ("energy: {intervall_s: 60}", "energy.intervall_s: unknown key"),
        ("energy: {username: ledger, password: changeme}", "energy.password"),
    ],
)
def test_settings_refused_with_key_path(yaml_text: str, problem: str, tmp_path: Path) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text(yaml_text + "\n")
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_settings(config)


def test_production_ledger_needs_its_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("mode: production\nenergy: {username: ledger}\n")
    with pytest.raises(ConfigError, match=r"energy\.password: required in mode 'production'"):
        load_settings(config).check_production("energy")
    assert main(["energy", "run", "--config", str(config)]) == 2  # refused before the loop starts
    assert "energy.password: required in mode 'production'" in capsys.readouterr().err


def test_window_and_ledger_user(tmp_path: Path) -> None:
    assert parse_window("36h") == dt.timedelta(hours=36)
    assert parse_window("1d") == dt.timedelta(days=1)
    config = tmp_path / "ingest.yaml"
    config.write_text("influx: {username: ingester, password: pw-ingester-x1}\n")
    assert ledger_auth(load_settings(config)) == ("ingester", "pw-ingester-x1")
    config.write_text(
        "influx: {username: ingester, password: pw-ingester-x1}\n"
        "energy: {username: ledger, password: pw-ledger-x2}\n"
    )
    assert ledger_auth(load_settings(config)) == ("ledger", "pw-ledger-x2")


def test_dates_are_local_midnights_and_naive_times_local() -> None:
    assert aware(dt.date(2025, 6, 18), "Europe/Berlin").isoformat() == "2025-06-18T00:00:00+02:00"
    assert aware(dt.datetime(2025, 1, 5, 6), "Europe/Berlin").isoformat() == "2025-01-05T06:00:00+01:00"
    given = dt.datetime(2025, 1, 5, 6, tzinfo=dt.UTC)
    assert aware(given, "Europe/Berlin") == given
