"""The registry's HTTP API (FastAPI): :func:`ingest.api.app.create_app`."""
