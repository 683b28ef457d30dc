"""Reallabor ingest: MQTT gateways -> device profiles -> InfluxDB, without losing a message."""

__version__ = "0.1.0"
