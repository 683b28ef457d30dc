"""The production stack's first step (``docker-compose.yml`` service ``preflight``): every secret in the
environment must be set, no placeholder and random-looking, by the rules of production settings
(:mod:`ingest.security.strength`), before any service starts. ``.env.example`` holds placeholders that
``docker compose config`` accepts and this check refuses, so a copied example never starts.

``python -m ingest.deploy_preflight``: exit 0, or 1 naming each refused variable (never its value).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from ingest.security.strength import placeholder_problem, weakness

# the secrets of docker-compose.yml; API_SECRET_KEY by the rule of api.secret_key (32 random bytes)
SECRETS = (
    "API_SECRET_KEY",
    "BROKER_ADMIN_PASSWORD",
    "MQTT_INGEST_PASSWORD",
    "INFLUX_ADMIN_PASSWORD",
    "INFLUX_ADMIN_TOKEN",
    "INFLUX_INGEST_TOKEN",
    "INFLUX_GRAFANA_PASSWORD",
    "INFLUX_READER_PASSWORD",
    "INFLUX_LEDGER_PASSWORD",
    "POSTGRES_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)
# the scale-out override's (docker-compose.scale.yml, EMQX): checked whenever it passes them
SCALE_SECRETS = ("EMQX_NODE_COOKIE", "EMQX_DASHBOARD_PASSWORD")


def problems(environ: Mapping[str, str]) -> list[str]:
    """One line per refused secret, naming the variable and the rule, never the value."""
    found = []
    for name in (*SECRETS, *(name for name in SCALE_SECRETS if name in environ)):
        value = environ.get(name, "")
        if not value:
            found.append(f"{name}: not set")
            continue
        problem = placeholder_problem(value) or weakness(value, api_key=name == "API_SECRET_KEY")
        if problem:
            found.append(f"{name}: {problem}")
    return found


def main() -> int:
    found = problems(os.environ)
    for line in found:
        print(f"reallabor preflight: {line}", file=sys.stderr)
    if found:
        print(
            "reallabor preflight: generate each with `openssl rand -base64 24` (API_SECRET_KEY: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))') and set it in .env",
            file=sys.stderr,
        )
        return 1
    print("reallabor preflight: every secret is set and looks random")
    return 0


if __name__ == "__main__":
    sys.exit(main())
