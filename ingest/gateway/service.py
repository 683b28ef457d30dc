"""The gateway service: the outbox, the uplink, one reader per meter, the local forwarder and health.

Every part runs as its own supervised task: a part that crashes (or returns) is logged and started again
after a backoff, and never takes the others down; the meters keep filling the outbox while the uplink
reconnects, and the other way round. :meth:`GatewayService.stop` (SIGTERM, SIGINT) stops the sources
first, commits the outbox (nothing read is left in memory), then lets the uplink disconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ingest.backoff import Backoff
from ingest.gateway.config import GatewayConfig
from ingest.gateway.frames import Frame
from ingest.gateway.health import Health, HealthSources
from ingest.gateway.outbox import Outbox, OutboxError
from ingest.gateway.serial import PortStats, run_meter
from ingest.gateway.uplink import Uplink

log = logging.getLogger(__name__)

RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
STABLE_S = 60.0  # a part that ran this long before it failed starts again after the shortest delay
UPLINK_STOP_S = 5.0


class GatewayService:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.restarts = 0  # parts started again after they crashed or ended
        self.ports = {meter.device: PortStats() for meter in config.meters}
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Run until :meth:`stop`; the outbox is committed and closed on the way out."""
        config = self.config
        outbox = Outbox(
            config.outbox.directory,
            max_bytes=config.outbox.max_bytes,
            commit_interval_s=config.outbox.commit_interval_s,
        )
        self._requeue_refused(outbox)
        uplink = Uplink(config.central, outbox)
        sources: list[asyncio.Task[None]] = []
        forwarder = None

        def emit(frame: Frame) -> None:
            outbox.put(frame)

        for meter in config.meters:
            stats = self.ports[meter.device]
            sources.append(
                self._task(
                    f"meter {meter.device} on {meter.port}",
                    lambda meter=meter, stats=stats: run_meter(  # type: ignore[misc]
                        meter, gateway=config.gateway, emit=emit, stats=stats
                    ),
                )
            )
        if config.local_broker is not None:
            from ingest.gateway.local import LocalForwarder  # imports the MQTT subscriber only when needed

            forwarder = LocalForwarder(config.local_broker, gateway=config.gateway, outbox=outbox)
            sources.append(self._task("local broker forwarder", forwarder.run))
        health = Health(
            HealthSources(
                gateway=config.gateway,
                outbox_directory=config.outbox.directory,
                outbox=outbox.stats,
                uplink=uplink.stats,
                ports=self.ports,
                local_connected=None if forwarder is None else (lambda: forwarder.connected),
                local_forwarded=None if forwarder is None else (lambda: forwarder.stats.forwarded),
                local_skipped=None if forwarder is None else (lambda: forwarder.stats.skipped),
                task_restarts=lambda: self.restarts,
            ),
            interval_s=config.health_interval_s,
        )
        sources.append(self._task("health", lambda: health.run(outbox.put)))
        committing = self._task("outbox group commit", outbox.run)
        sending = self._task("uplink", uplink.run)
        log.info(
            "gateway %s running: %d meter(s), local broker %s, outbox %s",
            config.gateway,
            len(config.meters),
            "forwarded" if forwarder else "none",
            config.outbox.directory,
        )
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown(outbox, uplink, sources, committing, sending)

    @staticmethod
    def _requeue_refused(outbox: Outbox) -> None:
        """What the central broker refused before goes once more: the account or bundle may be fixed."""
        try:
            count = outbox.requeue_refused()
        except OutboxError as exc:
            log.error("outbox: cannot put the frames the central broker refused back: %s", exc)
            return
        if count:
            log.info(
                "outbox: %d frame(s) the central broker refused before are sent again (refused again, "
                "they return to refused/ until the next start)",
                count,
            )

    async def _shutdown(
        self,
        outbox: Outbox,
        uplink: Uplink,
        sources: list[asyncio.Task[None]],
        committing: asyncio.Task[None],
        sending: asyncio.Task[None],
    ) -> None:
        log.info("gateway %s stopping", self.config.gateway)
        for task in sources:
            task.cancel()
        await asyncio.gather(*sources, return_exceptions=True)
        committing.cancel()  # its last commit makes what the sources put durable
        await asyncio.gather(committing, return_exceptions=True)
        try:
            await uplink.close(wait_s=UPLINK_STOP_S)  # DISCONNECT: the broker keeps our session
        except Exception:  # a failing goodbye must not keep the outbox from closing
            log.exception("uplink: no clean disconnect")
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        depth = outbox.stats().depth
        outbox.close()  # records the acknowledgements that came in meanwhile
        log.info("gateway %s stopped; %d message(s) wait in the outbox", self.config.gateway, depth)

    def _task(self, name: str, start: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        def restarted() -> None:
            self.restarts += 1

        return asyncio.create_task(
            supervise(name, start, stopping=self._stopping, on_restart=restarted), name=name
        )


async def supervise(
    name: str,
    start: Callable[[], Awaitable[None]],
    *,
    stopping: asyncio.Event,
    on_restart: Callable[[], None],
    restart_min_s: float = RESTART_MIN_S,
    restart_max_s: float = RESTART_MAX_S,
) -> None:
    """Run ``start()`` until cancelled; when it raises or returns (and we are not ``stopping``), log it
    and start it again after a backoff that grows while it keeps failing."""
    backoff = Backoff(minimum=restart_min_s, maximum=restart_max_s)
    while True:
        began = time.monotonic()
        try:
            await start()
            if stopping.is_set():  # the uplink returns after its close()
                return
            log.error("%s ended by itself", name)
        except asyncio.CancelledError:
            raise
        except Exception:  # any part's failure: logged, the part restarted, the service stays up
            log.exception("%s crashed", name)
        if time.monotonic() - began > STABLE_S:
            backoff.reset()
        delay = backoff.next_delay()
        on_restart()
        log.warning("%s: starting again in %.1f s", name, delay)
        await asyncio.sleep(delay)
