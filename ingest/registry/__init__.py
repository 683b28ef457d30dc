"""The device registry: buildings, households, users, gateways, devices and their assignments over time.

``models`` the tables; ``migrate`` the schema (Alembic, in ``migrations/``); ``buildings``, ``people``,
``fleet`` and ``assignments`` keyword-only CRUD; ``registration`` a device registered as staff do it;
``snapshot`` the plain-data view the ingester holds in memory; ``cli`` the
``reallabor api|users|gateways|devices`` commands. SQLAlchemy stays inside this package (and
``ingest.api``): errors leave as :mod:`ingest.registry.errors`.
"""
