"""Where a benchmark keeps its InfluxDB: a directory to reuse between runs (``--reuse DIR``), or a temporary
one removed at the end."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def data_directory(reuse: Path | None, *, prefix: str) -> Iterator[Path]:
    if reuse is not None:
        reuse.mkdir(parents=True, exist_ok=True)
        yield reuse
        return
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
