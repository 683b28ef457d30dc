"""Screenshots of pages as a phone shows them: each one checked to fit the phone's width, kept in the
test's tmp dir and, when ``$REALLABOR_SCREENSHOTS`` names a directory, copied there to look at."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import Page


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    viewport = page.viewport_size
    width = page.evaluate("document.documentElement.scrollWidth")
    if viewport is not None:
        assert width <= viewport["width"], (
            f"{name}: the page is {width} px wide on a {viewport['width']} px phone"
        )
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("REALLABOR_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path
