"""Data protection for a household: export everything stored about it, delete it (a move-out) with a
record of who deleted what and when (docs/privacy.md).

- :mod:`ingest.privacy.influx`: the household's points in InfluxDB 1.x, in every retention policy and
  measurement (raw, rollups, energy ledger): count, drop, verify, read in chunks;
- :mod:`ingest.privacy.registry`: the household's registry facts and rows;
- :mod:`ingest.privacy.delete`: :func:`delete_household`, the steps in a re-runnable order;
- :mod:`ingest.privacy.export`: :func:`export_household`, a ZIP (JSON + CSV) streamed in bounded memory;
- :mod:`ingest.privacy.cli`: ``reallabor households delete|export|deletions``.

A household's points carry the tags ``household`` (its name) and ``building`` (its building's name), as
the enricher writes them: a household's name is unique only in its building, so both tags select it.
"""
