"""State, spool, quarantine and registry are readable by the service's own user only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ingest.quarantine import Quarantine, QuarantineEntry
from ingest.registry.db import make_engine
from ingest.security.files import private_dir
from ingest.spool import Spool


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most systems start services with: files 0644, directories 0755 unless asked otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _everything_private(root: Path) -> list[str]:
    """What under ``root`` (itself included) others may read or enter: [] when all is private."""
    return [
        f"{path.relative_to(root)} {_mode(path):04o}"
        for path in [root, *root.rglob("*")]
        if _mode(path) & 0o077
    ]


def test_spool_is_private(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool", max_bytes=1024**2) as spool:
        spool.append_many([b"m f=1 1\n", b"m f=2 2\n"])
        spool.confirm_many([1])
    assert len(list((tmp_path / "spool").iterdir())) >= 2  # lock, segment, checkpoint
    assert _everything_private(tmp_path / "spool") == []


def test_quarantine_is_private_with_its_wal(tmp_path: Path) -> None:
    with Quarantine(tmp_path / "state" / "quarantine.sqlite3") as quarantine:
        quarantine.add_many([QuarantineEntry("t", b"x", 1, "invalid_json", "detail")])
        names = sorted(path.name for path in (tmp_path / "state").iterdir())
        assert names == ["quarantine.sqlite3", "quarantine.sqlite3-shm", "quarantine.sqlite3-wal"]
        assert _everything_private(tmp_path / "state") == []


def test_registry_sqlite_file_is_private(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state' / 'registry.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        assert (tmp_path / "state" / "registry.db-wal").exists()
        assert _everything_private(tmp_path / "state") == []
    finally:
        engine.dispose()


def test_a_state_dir_open_to_others_is_narrowed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    assert _mode(state) == 0o755
    private_dir(state)
    assert _mode(state) == 0o700
    assert "was open to others (0755); now 0700" in caplog.text
