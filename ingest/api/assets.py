"""Where the web app finds its browser libraries (uPlot): ``node_modules``, installed by npm from the lock.

In a checkout that is ``node_modules`` beside ``pyproject.toml`` (``make node``); an installed package (the
container image) has no checkout around it, so ``REALLABOR_NODE_MODULES`` names the directory there.
"""

from __future__ import annotations

import os
from pathlib import Path

NODE_MODULES_ENV = "REALLABOR_NODE_MODULES"
CHECKOUT_NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"


def node_modules() -> Path:
    configured = os.environ.get(NODE_MODULES_ENV)
    return Path(configured) if configured else CHECKOUT_NODE_MODULES


def uplot_dist() -> Path:
    """uPlot's ``dist`` directory (``uPlot.iife.min.js``, ``uPlot.min.css``); may be missing."""
    return node_modules() / "uplot" / "dist"
