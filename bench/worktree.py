"""Run a bench script on another git revision: a throwaway ``git worktree`` of REF, the script copied in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-ref-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), ref], check=True
        )
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


def run_json(tree: Path, script: Path, module: str, args: list[str]) -> dict[str, Any]:
    """``python -m module args`` inside ``tree`` (with this version of ``script``); its last stdout line."""
    # the script may not exist at REF, or differ: the tree runs this copy of it against its own ingest/
    if tree != ROOT:
        for path in (script, Path(__file__).resolve()):
            shutil.copyfile(path, tree / "bench" / path.name)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-m", module, *args], env=env, cwd=tree, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{module} in {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
