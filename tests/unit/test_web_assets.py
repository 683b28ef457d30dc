"""The web app finds uPlot in the checkout's node_modules, or where REALLABOR_NODE_MODULES says."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.api import assets


def test_checkout_node_modules_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(assets.NODE_MODULES_ENV, raising=False)
    assert assets.uplot_dist() == Path(__file__).resolve().parents[2] / "node_modules" / "uplot" / "dist"


def test_environment_names_the_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(assets.NODE_MODULES_ENV, str(tmp_path))
    assert assets.uplot_dist() == tmp_path / "uplot" / "dist"
