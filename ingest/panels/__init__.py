"""The panel catalogue: every dashboard panel defined once, Grafana dashboards built from it.

``catalogue``  the panels and dashboards as dataclasses (title, InfluxQL with Grafana's variables, unit, …)
``influxql``   query building shared by the panels: energy from cumulative counters, across resets
``grafana``    the Grafana dashboard JSON (``write_dashboards(out_dir)``, deterministic)
``macros``     Grafana's macro and variable expansion, as Grafana does it for InfluxQL (tests, /ops)
"""
