"""The energy ledger: exact energy per device and 15 minutes (and per local day) from cumulative counters,
computed once by :mod:`ingest.consumption`'s rule and written to InfluxDB (``rollups.energy``,
``rollups.energy_1d``), read by the dashboards, /ops and the residents' portal.

``kinds``   which raw counters are which energy (import, export, pv, heat, ev)
``ledger``  the pure computation: readings -> energy per bucket and per local day
``store``   InfluxDB: reading raw counters (InfluxQL), writing the ledger (line protocol, rp rollups)
``job``     ``rollup(range)`` and the loop that recomputes a trailing window
``cli``     ``reallabor energy rollup|run``
"""
