"""Files and directories only the service's own user may read: state, spool, quarantine, registry.

Readings are personal data (whose household used how much, when) and the registry holds password hashes,
so nothing of the state is readable by other users of the machine, whatever the umask. A directory made
by an older version with wider rights is narrowed, and the change is logged.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` as a directory (parents created as needed) that only its owner can enter."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    _narrow(path, PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only its owner can read, created empty if missing (never truncated).

    For SQLite: a database created on an empty file takes that file's mode for its -wal and -shm files.
    """
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE))
    _narrow(path, PRIVATE_FILE)
    return path


def _narrow(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode:
        try:
            os.chmod(path, current & mode)
        except PermissionError:  # someone else's: say so, the service may still work in it
            log.warning("%s is open to others (%04o) and not ours to change", path, current)
            return
        log.warning("%s was open to others (%04o); now %04o", path, current, current & mode)
