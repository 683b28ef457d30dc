"""The serial side of the gateway: meters on optical heads and P1 cables, read raw and framed.

- :mod:`.framing` counters and the size bound the framers share
- :mod:`.sml`     SML 1.04 transport frames (escape sequences, CRC16 X-25/KERMIT)
- :mod:`.p1`      DSMR P1 telegrams and pushed D0 telegrams (``/`` … ``!`` CRC16/ARC)
- :mod:`.d0`      IEC 62056-21 mode C readout sessions (request, option select, baud switch, BCC)
- :mod:`.tty`     one raw termios port on the event loop; :class:`PortGone`, :class:`PortError`
- :mod:`.port`    :func:`run_meter`, the reader of one meter with reconnect, and its :class:`PortStats`
"""

from ingest.gateway.serial.port import PortStats, run_meter
from ingest.gateway.serial.tty import PortError, PortGone

__all__ = ["PortError", "PortGone", "PortStats", "run_meter"]
