"""Moved to :mod:`ingest.checksums` (the gateway imports it without loading every decoder); kept for the
importers not yet switched (tests/gateway/feeds.py)."""

from ingest.checksums import bcc as bcc
from ingest.checksums import crc16_arc as crc16_arc
from ingest.checksums import crc_kermit as crc_kermit
from ingest.checksums import crc_x25 as crc_x25
