"""The API with the public quarter page in a process of its own, for the load test: its requests then do
not share the interpreter's lock with the load generator.

``python -m tests.portal.quarter_server --influx URL --database DB --port P --cache-s S --dir DIR``: a
registry on SQLite in DIR, the quarter page reading DB with cache period S, the per-client rate limit set
high (the load comes from one address on purpose).
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

import uvicorn

from ingest.api.app import create_app
from ingest.api.rate_limit import ClientRateLimit
from ingest.config import Settings
from ingest.localservices import LOOPBACK
from ingest.registry.db import make_engine
from ingest.registry.migrate import upgrade


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--influx", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cache-s", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    engine = make_engine(f"sqlite:///{args.dir / 'registry.db'}")
    upgrade(engine)
    settings = Settings(
        api={"secret_key": secrets.token_urlsafe(32)},
        influx={"url": args.influx, "database": args.database},
        opendata={"out_dir": args.dir / "opendata", "cache_s": args.cache_s},
    )
    app = create_app(settings, engine=engine, migrate=False)
    app.state.public_rate_limit = ClientRateLimit(per_s=100_000, burst=100_000)
    uvicorn.run(app, host=LOOPBACK, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
