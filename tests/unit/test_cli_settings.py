"""``reallabor quarantine`` finds its settings without ``--config``: ``$REALLABOR_CONFIG``, else the demo's
``state/demo/ingest.yaml``, else the defaults, and says on stderr which it used."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.cli import main
from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry


def _quarantine(state_dir: Path, count: int) -> None:
    with Quarantine(state_dir / QUARANTINE_FILE) as quarantine:
        for i in range(count):
            quarantine.add(
                QuarantineEntry(
                    topic=f"lab/gw/t{i}",
                    payload=b"{",
                    received_ns=1_764_320_400_000_000_000 + i,
                    reason="invalid_json",
                    detail="cut short",
                )
            )


def _settings_file(path: Path, state_dir: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"ingest:\n  state_dir: {state_dir}\n", encoding="utf-8")
    return path


@pytest.fixture
def here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REALLABOR_CONFIG", raising=False)
    monkeypatch.delenv("REALLABOR_INGEST__STATE_DIR", raising=False)
    return tmp_path


def test_quarantine_finds_the_demo_then_the_environment_then_config(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _quarantine(here / "demo-state", 1)
    _quarantine(here / "env-state", 2)
    _quarantine(here / "given-state", 3)
    _settings_file(here / "state" / "demo" / "ingest.yaml", here / "demo-state")
    env_file = _settings_file(here / "env.yaml", here / "env-state")
    given = _settings_file(here / "given.yaml", here / "given-state")

    assert main(["quarantine", "stats"]) == 0
    out, err = capsys.readouterr()
    assert "pending 1," in out
    assert err == "reallabor: settings from state/demo/ingest.yaml (the demo's, written by reallabor up)\n"

    monkeypatch.setenv("REALLABOR_CONFIG", str(env_file))
    assert main(["quarantine", "list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert out.count('"id"') == 2
    assert err == f"reallabor: settings from {env_file} (REALLABOR_CONFIG)\n"

    assert main(["quarantine", "show", "3", "--config", str(given)]) == 0
    out, err = capsys.readouterr()
    assert "lab/gw/t2" in out
    assert err == f"reallabor: settings from {given} (--config)\n"


def test_quarantine_without_any_settings_file_says_so(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quarantine", "stats"]) == 1  # the default state dir ./state holds no quarantine
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("reallabor: no settings file (no --config, $REALLABOR_CONFIG or ")
    assert err[1] == f"reallabor: no quarantine database at {Path('state') / QUARANTINE_FILE}"


def test_a_missing_settings_file_in_the_environment_is_a_configuration_error(
    here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REALLABOR_CONFIG", str(here / "gone.yaml"))
    assert main(["quarantine", "stats"]) == 2
    assert "cannot read" in capsys.readouterr().err
