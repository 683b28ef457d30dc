"""The gateway service on a Raspberry-Pi-class host in a building (``reallabor-gateway run``).

It reads meters on serial ports (SML, IEC 62056-21 D0 mode C, DSMR P1) and forwards the Wi-Fi and Zigbee
devices of its local Mosquitto, keeps everything in a durable local outbox, and hands it to the central
broker with MQTT 5 QoS 1, deleting a message only on its PUBACK. Frames travel unchanged, so the central
decoder, quarantine and replay see the exact bytes::

    serial port ─ framer (sml/d0/dsmr) ──┐
    local Mosquitto (native topics) ──────┼─> Frame ─> outbox (spool, group commit) ─> uplink (MQTT 5, QoS 1)
    health, every minute ─────────────────┘                                           └─> central broker

Modules:

- :mod:`.frames`   the :class:`Frame` every source produces, and its topic under ``lab/<gateway>/``
- :mod:`.config`   ``gateway.yaml`` (strict; errors name the key path and value)
- :mod:`.serial`   the framers and the serial-port reader with reconnect
- :mod:`.outbox`   the durable outbox on :class:`ingest.spool.Spool`
- :mod:`.uplink`   the MQTT 5 QoS 1 publisher to the central broker (TLS, several brokers in turn)
- :mod:`.local`    the forwarder from the local Mosquitto (ack after the outbox has it)
- :mod:`.health`   the health message
- :mod:`.service`  wires them together; :mod:`.cli` is ``reallabor-gateway`` (``reallabor gateway``)
- :mod:`.bundle`   the provisioning bundle a technician downloads for one gateway (central side)

The read time travels as the MQTT 5 user property :data:`frames.READ_NS_PROPERTY`; the central ingester
stamps readings without a device time with it, so a backlog drained hours later lands at the right time
and a frame sent twice (a crash between PUBLISH and PUBACK) is the same point twice: it overwrites itself.
"""
