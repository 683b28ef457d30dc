"""The commissioning check: does a freshly installed device send what its profile expects?

``report`` judges one message (pure), ``listener`` waits for it on the broker, ``pending`` reads the
device's quarantine entries, ``runner`` runs checks and keeps the live ones of the API process,
``status`` a check's state by run id (live or stored). Errors: :mod:`ingest.commissioning.errors`.
"""
