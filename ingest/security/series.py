"""A budget of distinct series per gateway: one gateway cannot flood InfluxDB with series.

Every new tag value (a Tasmota sensor group, an SML channel, a Shelly component, a device id from the
topic) makes a new series. A gateway inventing thousands of them pushed a tag past InfluxDB 1.x's
``max-values-per-tag`` (100,000), after which InfluxDB refused the new series of *every* gateway. A
building's gateway has some hundreds of series; beyond the budget, messages that would add a series are
quarantined (``too_many_series``) and the gateway's known series go on as before. The count is per process
(it starts anew at a restart) and bounded in memory: 8-byte hashes, for the most recent gateways.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from ingest.readings import DecodeRejected

log = logging.getLogger(__name__)

MAX_GATEWAYS = 10_000  # gateways remembered; beyond, the least recently active is forgotten


@dataclass(slots=True)
class _Gateway:
    series: set[int] = field(default_factory=set)  # hashes of the heads of its lines
    warned: bool = False


class SeriesBudget:
    def __init__(self, per_gateway: int) -> None:
        self.per_gateway = per_gateway
        self._gateways: OrderedDict[str, _Gateway] = OrderedDict()

    def admit(self, head: str, tags: Mapping[str, str]) -> None:
        """Let a series (the escaped head of its lines) through, or raise too_many_series."""
        name = tags.get("gateway", "")
        gateway = self._gateways.get(name)
        if gateway is None:
            gateway = self._gateways[name] = _Gateway()
            if len(self._gateways) > MAX_GATEWAYS:
                self._gateways.popitem(last=False)
        else:
            self._gateways.move_to_end(name)
        key, seen = hash(head), gateway.series
        if key in seen:
            return
        if len(seen) >= self.per_gateway:
            if not gateway.warned:
                gateway.warned = True
                log.warning(
                    "gateway %r has %d series: messages adding more are quarantined", name, self.per_gateway
                )
            raise DecodeRejected(
                "too_many_series", f"gateway {name[:40]!r} has {self.per_gateway} series, the budget"
            )
        seen.add(key)
