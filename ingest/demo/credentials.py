"""The demo's secrets, made once and kept in the state directory (``demo-secrets.json``, owner only).

The demo runs in development mode, but its broker still has dynamic security and its pages logins: the
passwords are random, never defaults, and the same after a restart (the broker's accounts, the users'
hashes and the signed sessions depend on them). Printed once per start in the banner, never logged.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ingest.security.files import private_file

SECRETS_FILE = "demo-secrets.json"


def _password() -> str:
    return secrets.token_urlsafe(12)


@dataclass
class DemoCredentials:
    broker_admin: str = field(default_factory=_password)
    ingester: str = field(default_factory=_password)
    api_secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    influx_admin: str = field(default_factory=_password)
    influx_ingester: str = field(default_factory=_password)  # writes the database, reads nothing
    influx_reader: str = field(default_factory=_password)  # reads it (the banner's query, dashboards)
    influx_ledger: str = field(default_factory=_password)  # the energy ledger: reads raw, writes rollups
    gateways: dict[str, str] = field(default_factory=dict)  # gateway name -> broker password
    issued: dict[str, str] = field(default_factory=dict)  # gateway name -> when that password was made
    logins: dict[str, str] = field(default_factory=dict)  # demo username -> password

    @staticmethod
    def new_password() -> str:
        return _password()

    def __repr__(self) -> str:  # never show the passwords
        return f"DemoCredentials(gateways={sorted(self.gateways)}, logins={sorted(self.logins)})"

    @classmethod
    def load_or_create(cls, state_dir: Path) -> DemoCredentials:
        path = state_dir / SECRETS_FILE
        if path.exists() and path.stat().st_size:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        credentials = cls()
        credentials.save(state_dir)
        return credentials

    def save(self, state_dir: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        path = state_dir / SECRETS_FILE
        tmp = private_file(path.with_name(f".{SECRETS_FILE}.tmp"))
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
