"""Alembic migrations of the registry (run by ingest.registry.migrate)."""
