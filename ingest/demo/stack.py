"""``reallabor up``: the whole product here — Mosquitto with dynamic security, InfluxDB, the registry,
the ingester with enrichment, the API with its pages, and the simulated quarter publishing through its
gateways' own broker accounts; a few of its gateways (``--through-gateways``) run the real gateway service
(:mod:`simulators.gateway_hosts`): their meters' frames through pseudo-terminals, their Wi-Fi and Zigbee
devices through a local Mosquitto each.

Restart-safe: fixed ports, one state directory (locked while running, so a second ``up`` on it refuses
at once), secrets and registry made once, meter counters that continue (the simulator derives them from
time). Exit codes: 0 stopped cleanly, 1 a part failed, 2 refused (port taken, state in use).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import yaml

from ingest.config import INSTANCE_DIR, Settings, load_settings
from ingest.demo.credentials import DemoCredentials
from ingest.demo.influx_users import ADMIN, INGESTER, LEDGER, READER, InfluxSetupError, ensure_users
from ingest.demo.ports import DemoPorts
from ingest.demo.seed import STREET_BUILDING, demo_logins, seed
from ingest.dynsec import DynsecBootstrap, DynsecError, admin_from_settings
from ingest.lifecycle_cli import InfluxV1, LifecycleError, init_with
from ingest.localservices import LOOPBACK, InfluxDB, LocalService, Mosquitto, ServiceError
from ingest.mqtt_session import SessionRecord
from ingest.profiles import ProfileError
from ingest.registry.db import make_engine, session_factory
from ingest.registry.fleet import broker_username, gateway_client_id
from ingest.registry.migrate import upgrade
from ingest.security.files import private_dir, private_file
from ingest.spool import Spool, SpoolError

if TYPE_CHECKING:
    from ingest.ingester import Ingester
    from ingest.opendata.export import ExportReport
    from simulators.gateway_hosts import HostedSink
    from simulators.gateways import GatewayAccount, GatewaySink

EXIT_FAILED = 1
EXIT_REFUSED = 2
CONFIG_FILE = "ingest.yaml"
NEXT_CONFIG_FILE = "ingest.yaml.next"  # a start's settings until they are in force
LOCK_FILE = "up.lock"
SPOOL_DIR = "spool"  # an ingester's spool under its state directory (ingest/ingester.py)
INGESTER_CLIENT_ID = "reallabor-demo-ingest"
BUILDING_SIZE = 10  # households per house: 110 households are the quarter's 11 houses
HISTORY_MAX = dt.timedelta(days=7)  # the longest gap a restart fills in
LEDGER_INTERVAL_S = 30.0  # the demo's energy ledger: /ops shows exact energy within a minute
# the ledger's trailing window: the demo's late data (spool, gateway outboxes) is minutes late, so an
# hour does; a day is final for the open data at 01:15 the day after, and the nightly run publishes it
LEDGER_WINDOW = "1h"
HISTORY_WAIT_S = 600.0  # the longest the ledger waits for the history to be in InfluxDB
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
DEFAULT_STATE = Path("state/demo")
GATEWAYS_DIR = "gateways"  # the hosted gateways' config, outbox and logs, one directory each
OPENDATA_DIR = "opendata"  # the open-data files and their catalogue, served at /opendata/
THROUGH_GATEWAYS = 3  # gateways that run the real gateway service (the first ones with serial meters)
# the profiles of this checkout, wherever `reallabor up` is started from
PROFILES_DIR = Path(__file__).resolve().parents[2] / "device_profiles"


class StateInUse(Exception):
    """Another ``reallabor up`` holds the state directory."""


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Hold the state directory for this process; refuse at once if another one holds it.

    An advisory lock (flock) on a file that stays: it dies with its process, even on SIGKILL, so a
    crashed demo never leaves a stale lock behind.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle: IO[str] = (state_dir / LOCK_FILE).open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StateInUse(f"{state_dir} is in use by a running reallabor up ({holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


class ApiServer(LocalService):
    """``reallabor api`` as a child process: its own log, and a crash of the pages never stops ingestion."""

    name = "api"

    def __init__(self, directory: Path, *, port: int, config: Path) -> None:
        super().__init__(directory, port=port)
        self.config = config

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "ingest.cli", "api", "--config", str(self.config)]

    def is_ready(self) -> bool:
        try:
            with _NO_PROXY.open(f"{self.url}/api/v1/health", timeout=0.5) as response:
                return bool(response.status == 200)
        except OSError:
            return False


def _settings_dict(
    state_dir: Path, ports: DemoPorts, credentials: DemoCredentials, *, ingesters: int = 1
) -> dict[str, Any]:
    several = {"instances": ingesters} if ingesters > 1 else {}  # one: the file as it always was
    return {
        "mode": "development",
        "mqtt": {
            "host": LOOPBACK,
            "port": ports.mqtt,
            "client_id": INGESTER_CLIENT_ID,
            "username": "ingester",
            "password": credentials.ingester,
        },
        "influx": {
            "url": f"http://{LOOPBACK}:{ports.influx}",
            "api": "v1",
            "database": "reallabor",
            "username": INGESTER,  # may write, not read: the database is made by the demo's admin
            "password": credentials.influx_ingester,
            "read_username": READER,  # the /ops charts read as the reader
            "read_password": credentials.influx_reader,
            "create_database": False,
        },
        "ingest": {
            "state_dir": str(state_dir / "ingest"),
            "profiles_dir": str(PROFILES_DIR),
            "metrics_port": ports.metrics,
            "log_level": "WARNING",
            **several,
        },
        "registry": {"url": f"sqlite:///{state_dir / 'registry.db'}", "enrich": True, "refresh_s": 5.0},
        "api": {
            "host": LOOPBACK,
            "port": ports.api,
            "secret_key": credentials.api_secret_key,
            "public_url": f"http://{LOOPBACK}:{ports.api}",  # on the demo's invitations
        },
        "broker_admin": {"username": "admin", "password": credentials.broker_admin},
        # the energy ledger reads raw counters and writes rollups.energy: its own user (READ and WRITE)
        "energy": {
            "interval_s": LEDGER_INTERVAL_S,
            "window": LEDGER_WINDOW,
            "username": LEDGER,
            "password": credentials.influx_ledger,
        },
        # the open data (docs/opendata.md): its files in the state, the seed's street sensors published
        "opendata": {"out_dir": str(state_dir / OPENDATA_DIR), "street_building": STREET_BUILDING},
    }


def write_settings(path: Path, settings: dict[str, Any]) -> None:
    """The demo's settings file (it holds the demo's passwords: owner only)."""
    private_file(path)
    path.write_text(
        "# generated by reallabor up (demo secrets: do not share)\n"
        + yaml.safe_dump(settings, sort_keys=False)
    )


def _seed_registry(settings: Settings, credentials: DemoCredentials, households: int) -> list[str]:
    """Seed or complete the registry; what the user should know about it."""
    from simulators.quarter import make_quarter

    quarter = make_quarter(households, building_size=BUILDING_SIZE)
    engine = make_engine(settings.registry.url)
    broker = admin_from_settings(mqtt=settings.mqtt, admin=settings.broker_admin)
    assert broker is not None  # the demo's settings always name the admin
    notices: list[str] = []
    try:
        upgrade(engine)
        # installed before the history the first start fills in (see _history_from)
        since = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - HISTORY_MAX
        with session_factory(engine)() as session:
            seed(session, broker, quarter, credentials, since=since, notices=notices)
    finally:
        broker.close()
        engine.dispose()
    return notices


def run_stack(
    *,
    state_dir: Path,
    households: int,
    interval_s: float,
    ports: DemoPorts,
    through_gateways: int = THROUGH_GATEWAYS,
    ingesters: int = 1,
) -> int:
    state_dir = state_dir.resolve()
    try:
        with state_lock(state_dir):
            taken = ports.taken(ingesters=ingesters)
            if taken:
                for line in taken:
                    print(f"reallabor up: {line}", file=sys.stderr)
                return EXIT_REFUSED
            return _run_locked(
                state_dir,
                households=households,
                interval_s=interval_s,
                ports=ports,
                through_gateways=through_gateways,
                ingesters=ingesters,
            )
    except StateInUse as exc:
        print(
            f"reallabor up: {exc}; stop it first (Ctrl-C there) or give another --state-dir", file=sys.stderr
        )
        return EXIT_REFUSED


def _run_locked(
    state_dir: Path,
    *,
    households: int,
    interval_s: float,
    ports: DemoPorts,
    through_gateways: int,
    ingesters: int = 1,
) -> int:
    from ingest.profiles import load_profiles

    try:  # before anything starts or is seeded
        load_profiles(PROFILES_DIR)
    except ProfileError as exc:
        print(f"reallabor up: invalid device profiles:\n{exc}", file=sys.stderr)
        return EXIT_REFUSED
    private_dir(state_dir)
    credentials = DemoCredentials.load_or_create(state_dir)
    bootstrap = DynsecBootstrap(
        admin_password=credentials.broker_admin,
        ingester_password=credentials.ingester,
        ingester_client_id=INGESTER_CLIENT_ID,
        ingester_instances=ingesters,
    )
    mosquitto = Mosquitto(state_dir / "mosquitto", port=ports.mqtt, dynsec=bootstrap)
    influxdb = InfluxDB(
        state_dir / "influxdb",
        port=ports.influx,
        rpc_port=ports.influx_rpc,
        auth=True,
        continuous_queries=True,  # the rollups (docs/lifecycle.md)
    )
    config_path = state_dir / CONFIG_FILE
    # this start's settings, in force (config_path) only once the ingesters it does not run are retired
    next_path = state_dir / NEXT_CONFIG_FILE
    write_settings(next_path, _settings_dict(state_dir, ports, credentials, ingesters=ingesters))
    settings = load_settings(next_path)
    api = ApiServer(state_dir / "api", port=ports.api, config=config_path)
    started: list[LocalService] = []
    try:
        services: tuple[LocalService, ...] = (mosquitto, influxdb)
        for service in services:
            service.start()
            started.append(service)
        _ingester_accounts(settings, bootstrap)
        ensure_users(influxdb.url, credentials)
        init_with(settings.influx, auth=(ADMIN, credentials.influx_admin))  # raw retention, rollups
        retiring = _retiring(settings, ingesters)
        if retiring and not asyncio.run(_retire(retiring)):
            return EXIT_FAILED
        next_path.replace(config_path)
        notices = _seed_registry(settings, credentials, households) if households else []
        credentials.save(state_dir)
        api.start(timeout=60)
        started.append(api)
        demo = Demo(
            settings,
            credentials,
            state_dir=state_dir,
            api=api,
            notices=notices,
            through_gateways=through_gateways,
        )
        return asyncio.run(_run(demo, households=households, interval_s=interval_s))
    except (ServiceError, InfluxSetupError, LifecycleError, DynsecError) as exc:
        print(f"reallabor up: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for service in reversed(started):
            service.stop()


def _retiring(settings: Settings, ingesters: int) -> list[Settings]:
    """The ingesters this start must drain before its own run (``settings``: the demo's, ``ingesters``
    instances): every one whose state is under ``settings.ingest.state_dir`` and that this start does not
    run, while its session is not ended or its spool not written (:func:`_unfinished`).

    Found on disk, not from the count the last start ran: a start that was interrupted or failed before
    its drains were done leaves them to the next one, whose count may be the same (review 17, H1).
    The single ingester's session has another client id than instance 0's: several now retire it, one now
    retires every instance (README "Several ingesters")."""
    found = [_with_instances(settings, 1)] if ingesters > 1 else []
    prefix = INSTANCE_DIR.format(instance="")
    for directory in settings.state_dirs()[1:]:  # [0] is ingest.state_dir itself: the single ingester's
        k = int(directory.name.removeprefix(prefix))
        if ingesters == 1 or k >= ingesters:
            # instance K of at least 2: instance 0 of 1 is the single ingester, another identity
            found.append(_with_instances(settings, max(k + 1, 2)).for_instance(k))
    return [instance for instance in found if _unfinished(instance)]


def _with_instances(settings: Settings, count: int) -> Settings:
    return settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"instances": count})})


def _unfinished(instance: Settings) -> bool:
    """Whether the ingester ``instance`` describes left something: a session its record remembers (a
    drain that ended the session forgot it: ingest/mqtt_session.py), or spool records not written."""
    state = instance.ingest.state_dir
    if SessionRecord.of(instance).path.exists():
        return True
    if not (state / SPOOL_DIR).is_dir():
        return False
    try:
        spool = Spool(state / SPOOL_DIR, max_bytes=instance.ingest.spool_max_bytes)
    except SpoolError:  # the drain reports what is wrong with it
        return True
    try:
        return spool.pending_count > 0
    finally:
        spool.close()


def _ingester_accounts(settings: Settings, bootstrap: DynsecBootstrap) -> None:
    """Each ingester's broker account, bound to its client id: a broker made by an earlier start with fewer
    ingesters lacks the others' (its accounts file is made once)."""
    admin = admin_from_settings(mqtt=settings.mqtt, admin=settings.broker_admin)
    password = bootstrap.ingester_password
    assert admin is not None  # the demo's settings name the admin
    assert password is not None
    with admin:
        present = admin.client_ids()
        for username, client_id in bootstrap.ingester_accounts().items():
            if present.get(username, "") != client_id:
                admin.provision_ingester(username=username, password=password, client_id=client_id)


@dataclass
class Demo:
    """What the running demo tells its user."""

    settings: Settings
    credentials: DemoCredentials
    state_dir: Path
    api: ApiServer
    notices: list[str]
    through_gateways: int = 0
    hosted: tuple[str, ...] = ()  # the gateways that run the real gateway service

    def ingester_settings(self) -> list[Settings]:
        """Each ingester's settings: one, or one per instance (its identity: Settings.as_instance)."""
        count = self.settings.ingest.instances
        return [self.settings] if count == 1 else [self.settings.for_instance(k) for k in range(count)]


def _history_from(settings: Settings, reader: tuple[str, str]) -> int:
    """Where the simulated history starts: after the newest reading in InfluxDB (a restart fills the
    time the demo was off, as the gateways' outboxes would), at most :data:`HISTORY_MAX` back; on the
    first start yesterday's local midnight, so today's and yesterday's charts are full at once."""
    now = dt.datetime.now(dt.UTC)
    oldest = int((now - HISTORY_MAX).timestamp())
    client = InfluxV1(settings.influx.url, auth=reader, timeout_s=10)
    try:
        query = "SELECT last(energy_import_kwh) FROM electricity"
        series = client.query(query, database=settings.influx.database)
    except (LifecycleError, ValueError):  # no history to continue from: as on the first start
        series = []
    finally:
        client.close()
    if series:
        return max(int(series[0]["values"][0][0]) // 1_000_000_000 + 1, oldest)
    local = now.astimezone(ZoneInfo(settings.ingest.timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    return int(midnight.timestamp())


def _newest_reading_s(settings: Settings, auth: tuple[str, str]) -> int | None:
    client = InfluxV1(settings.influx.url, auth=auth, timeout_s=10)
    try:
        series = client.query(
            "SELECT last(energy_import_kwh) FROM electricity", database=settings.influx.database
        )
    except LifecycleError:
        return None
    finally:
        client.close()
    return int(series[0]["values"][0][0]) // 1_000_000_000 if series else None


def _ledger(
    settings: Settings,
    *,
    history_from: int | None,
    stop: threading.Event,
    history_in: threading.Event | None = None,
) -> None:
    """The energy ledger (``reallabor energy run``) in the demo: once the simulated history is in
    InfluxDB (its newest reading reaches the present), the ledger of the history's range, then the loop
    (every :data:`LEDGER_INTERVAL_S` the trailing ``energy.window``). ``history_in`` is set once the
    history's ledger is done (or has failed and said so: the loop catches up)."""
    from ingest.energy.cli import rollup_with, run_until
    from ingest.energy.settings import ledger_auth
    from ingest.energy.store import LedgerError

    try:
        if history_from is not None:
            auth = ledger_auth(settings)
            assert auth is not None  # the demo's settings name the ledger's user
            started = time.time()
            while not stop.is_set() and time.time() - started < HISTORY_WAIT_S:
                newest = _newest_reading_s(settings, auth)
                if newest is not None and newest >= started - 2 * 900:  # the history's last quarter hour
                    stop.wait(5)  # the ingester's last batches of it
                    break
                stop.wait(2)
            since = dt.datetime.fromtimestamp(history_from, dt.UTC)
            try:
                report = rollup_with(settings, since, dt.datetime.now(dt.UTC))
                print(f"  {report.line()}", flush=True)
            except LedgerError as exc:
                print(f"reallabor up: energy ledger of the history: {exc}", file=sys.stderr, flush=True)
    finally:
        if history_in is not None:
            history_in.set()
    run_until(settings, stop)


def _open_data(
    settings: Settings, *, history_from: int | None, history_in: threading.Event, stop: threading.Event
) -> None:
    """The open data in the demo (docs/opendata.md), with the functions of ``reallabor opendata export``
    and the loop of ``reallabor opendata run``: once the energy ledger has the simulated history, the
    history's days that are final (yesterday from 01:15 on, :data:`LEDGER_WINDOW`; at least the newest
    final day, so a restart publishes what an earlier one could not yet); then every night at
    ``opendata.daily_at`` the days that have become final since. Never today: a day is published once,
    whole and final, and /quarter shows today live. Failures are printed; the demo goes on."""
    from ingest.opendata.cli import export_with, final_through, ledger_window
    from ingest.opendata.export import FAILURES, run_loop

    tz = ZoneInfo(settings.ingest.timezone)
    out_dir = settings.opendata.out_dir

    def export(first: dt.date, last: dt.date) -> ExportReport:
        report = export_with(settings, first, last, out_dir)
        print(f"  open data: {report.line()}", flush=True)
        return report

    try:
        if history_from is not None:
            while not history_in.wait(1):
                if stop.is_set():
                    return
            last = final_through(settings)
            first = min(dt.datetime.fromtimestamp(history_from, tz).date(), last)
            try:
                export(first, last)  # days already published are left as they are
            except FAILURES as exc:
                print(f"reallabor up: open data of the history: {exc}", file=sys.stderr, flush=True)
        run_loop(  # its failures are logged, and the next night takes the same days again
            export,
            daily_at=settings.opendata.daily_at,
            tz=tz,
            stop=stop,
            out_dir=out_dir,
            window=ledger_window(settings),
        )
    except Exception as exc:  # the demo goes on without its open data, and says so
        print(f"reallabor up: the open-data export stopped: {exc!r}", file=sys.stderr, flush=True)


def _accounts(demo: Demo) -> dict[str, GatewayAccount]:
    from simulators.gateways import GatewayAccount

    return {
        gateway: GatewayAccount(broker_username(gateway), password, gateway_client_id(gateway))
        for gateway, password in demo.credentials.gateways.items()
    }


def _gateway_sink(demo: Demo) -> GatewaySink:
    from simulators.gateways import GatewaySink

    return GatewaySink(LOOPBACK, demo.settings.mqtt.port, _accounts(demo))


def _hosted_sink(demo: Demo, direct: GatewaySink, households: int) -> HostedSink:
    """The first ``demo.through_gateways`` gateways with serial meters run the real gateway service (not
    one whose account the broker refused: it would be refused there too)."""
    from simulators.gateway_hosts import HostedSink, hosted_gateways, make_hosts
    from simulators.quarter import make_quarter

    quarter = make_quarter(households, building_size=BUILDING_SIZE)
    chosen = [g for g in hosted_gateways(quarter, demo.through_gateways) if g not in direct.refused]
    hosts = make_hosts(
        demo.state_dir / GATEWAYS_DIR,
        quarter,
        chosen,
        accounts=_accounts(demo),
        port=demo.settings.mqtt.port,
    )
    demo.hosted = tuple(host.gateway for host in hosts)
    return HostedSink(direct, hosts)


def _go_live(sink: HostedSink) -> None:
    started = time.monotonic()
    sink.go_live()
    if sink.live:
        took = time.monotonic() - started
        print(f"  gateway service running for {', '.join(sink.live)} (started in {took:.1f} s)", flush=True)
    for gateway, reason in sink.failed.items():
        print(
            f"reallabor up: {gateway}: its gateway service did not start, its devices publish directly: "
            f"{reason}",
            file=sys.stderr,
            flush=True,
        )


async def _run(demo: Demo, *, households: int, interval_s: float) -> int:
    from ingest.ingester import Ingester
    from simulators.cli import publish_realtime

    private_dir(demo.settings.ingest.state_dir)  # the ingesters' (several: each one's below it)
    ingesters = [Ingester(settings) for settings in demo.ingester_settings()]

    def stop_ingesters() -> None:
        for ingester in ingesters:
            ingester.stop()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_ingesters)
    runs = [asyncio.create_task(ingester.run(), name=f"ingester-{k}") for k, ingester in enumerate(ingesters)]
    ready = asyncio.create_task(_all_ready(ingesters), name="ingesters-ready")
    await asyncio.wait({*runs, ready}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if any(run.done() for run in runs):
        stop_ingesters()
        await asyncio.gather(*runs, return_exceptions=True)
        for run in runs:
            run.result()
        return EXIT_FAILED

    stop_fleet = threading.Event()
    fleet: threading.Thread | None = None
    ledger: threading.Thread | None = None
    open_data: threading.Thread | None = None
    sink: HostedSink | None = None
    async with contextlib.AsyncExitStack() as stack:
        history_from: int | None = None
        if households:
            reader = (READER, demo.credentials.influx_reader)
            history_from = await asyncio.to_thread(_history_from, demo.settings, reader)
            direct = await asyncio.to_thread(_gateway_sink(demo).__enter__)
            stack.push_async_callback(asyncio.to_thread, direct.__exit__, None, None, None)
            demo.notices += [
                f"{gateway}: {reason}: its simulated devices stay silent"
                for gateway, reason in direct.refused.items()
            ]
            sink = _hosted_sink(demo, direct, households)
            # stopped before the direct sink: the gateway services first, with what their outboxes hold
            stack.push_async_callback(asyncio.to_thread, sink.__exit__, None, None, None)

            def publish() -> None:
                try:
                    publish_realtime(
                        host=LOOPBACK,
                        port=demo.settings.mqtt.port,
                        households=households,
                        interval_s=interval_s,
                        stop=stop_fleet,
                        building_size=BUILDING_SIZE,
                        sink=sink,
                        backfill_from=history_from,
                        before_live=lambda: _go_live(sink),
                    )
                except Exception as exc:  # the demo goes on without its simulation, and says so
                    print(
                        f"reallabor up: the simulated quarter stopped: {exc!r}", file=sys.stderr, flush=True
                    )

            fleet = threading.Thread(target=publish, name="fleet", daemon=True)
            fleet.start()
        history_in = threading.Event()
        ledger = threading.Thread(
            target=_ledger,
            args=(demo.settings,),
            kwargs={"history_from": history_from, "stop": stop_fleet, "history_in": history_in},
            name="energy-ledger",
            daemon=True,
        )
        ledger.start()
        open_data = threading.Thread(
            target=_open_data,
            args=(demo.settings,),
            kwargs={"history_from": history_from, "history_in": history_in, "stop": stop_fleet},
            name="open-data",
            daemon=True,
        )
        open_data.start()

        print(banner(demo, households=households, interval_s=interval_s), flush=True)
        try:
            while not any(run.done() for run in runs):
                await asyncio.wait(runs, timeout=10, return_when=asyncio.FIRST_COMPLETED)
                print(_progress(ingesters), flush=True)
                restarted = await asyncio.to_thread(sink.restart_ended) if sink is not None else []
                for gateway, code in restarted:
                    print(
                        f"reallabor up: the gateway service of {gateway} exited with {code}, started again; "
                        f"see {demo.state_dir / GATEWAYS_DIR / gateway / 'gateway.log'}",
                        file=sys.stderr,
                        flush=True,
                    )
            for run in runs:
                if run.done():
                    run.result()  # one that failed: its error
        finally:
            stop_fleet.set()
            if fleet is not None:
                await asyncio.to_thread(fleet.join, 10)
            if ledger is not None:
                await asyncio.to_thread(ledger.join, 30)
            if open_data is not None:
                await asyncio.to_thread(open_data.join, 30)  # an export under way ends first
            stop_ingesters()  # all of them when one failed
            for run in runs:
                if not run.done():
                    with contextlib.suppress(Exception):
                        await run
    print("stopped cleanly.")
    return 0


async def _retire(retiring: list[Settings]) -> bool:
    """Drain the ingesters ``retiring`` (ingest/drain.py) at once, before this start's run: what their
    sessions and spools held goes to InfluxDB, then the sessions end. True when all are retired; else
    (Ctrl-C or SIGTERM included: a drain gives up keeping its session) the start must not go on, or their
    sessions would keep their shares of the stream until they expire, and lose them then."""
    from ingest.drain import DrainReport, drain

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    reports = await asyncio.gather(
        *(drain(settings, settle_s=1.0, stop=stop) for settings in retiring), return_exceptions=True
    )
    retired = True
    for settings, report in zip(retiring, reports, strict=True):
        client_id = settings.mqtt.client_id
        if isinstance(report, DrainReport) and report.retired:
            print(f"  retired ingester {client_id}: {report.line()}", flush=True)
            continue
        retired = False
        why = report.line() if isinstance(report, DrainReport) else repr(report)
        print(
            f"reallabor up: ingester {client_id} not retired ({why}): its session keeps its share of the "
            f"stream; the demo starts once it is retired: start again to retry (its state: "
            f"{settings.ingest.state_dir})",
            file=sys.stderr,
            flush=True,
        )
    return retired


async def _all_ready(ingesters: list[Ingester]) -> None:
    for ingester in ingesters:
        await ingester.ready.wait()


def _progress(ingesters: list[Ingester]) -> str:
    """The status line every 10 s: the counters of all ingesters, and each one's share of the messages."""
    stats = [ingester.stats for ingester in ingesters]
    line = (
        f"  received {sum(s.received for s in stats)}  replayed {sum(s.replayed for s in stats)}  "
        f"written {sum(s.written for s in stats)}  in spool {sum(s.in_spool for s in stats)}  "
        f"quarantined {sum(s.quarantined_total for s in stats)}  "
        f"points {sum(s.points_written for s in stats)}"
    )
    if len(stats) > 1:
        shares = ", ".join(f"{k}: {s.received}" for k, s in enumerate(stats))
        line += f"  (received by ingester {shares})"
    return line


def banner(demo: Demo, *, households: int, interval_s: float) -> str:
    from ingest.opendata.cli import ledger_window
    from ingest.opendata.export import final_at
    from simulators.quarter import make_quarter

    settings, credentials, state_dir, api = demo.settings, demo.credentials, demo.state_dir, demo.api
    quarter = make_quarter(max(households, 1), building_size=BUILDING_SIZE)
    indent = " " * 16
    roles = {
        "operator": "everything",
        "technician": "gateways, devices, commissioning",
        "resident": "their own household's energy at /portal",
    }
    logins = "\n".join(
        f"{indent}{login.role.value:<11} {login.username:<11} {credentials.logins[login.username]:<17} "
        f"({login.household + ': ' if login.household else ''}{roles[login.role.value]})"
        for login in demo_logins(quarter)
        if login.username in credentials.logins
    )
    influx = settings.influx
    port = influx.url.rsplit(":", 1)[1]
    query = "SELECT last(power_w) AS watts FROM electricity GROUP BY building"
    simulated = (
        f"{households} households in {len(quarter.gateways)} houses, each gateway with its own "
        f"broker account;\n{indent}meters, PV and EV every {max(1, round(interval_s))} s, heat and "
        "room climate every 5 min, street sensors every 10 min;\n"
        f"{indent}first the history since the newest reading (first start: since yesterday), "
        "a quarter hour apart"
        if households
        else "nothing (--simulate 0)"
    )
    config = state_dir / CONFIG_FILE
    default_state = state_dir == DEFAULT_STATE.resolve()
    commands = "" if default_state else f" --config {config}"
    again = "make demo" if default_state else f"reallabor up --state-dir {state_dir}"
    if len(demo.ingester_settings()) > 1:
        again = f"reallabor up --ingesters {len(demo.ingester_settings())}" + (
            "" if default_state else f" --state-dir {state_dir}"
        )
    notes = "".join(f"\n  note        : {notice}" for notice in demo.notices)
    today = dt.datetime.now(ZoneInfo(settings.ingest.timezone)).date()
    final = final_at(today, ledger_window(settings), ZoneInfo(settings.ingest.timezone)).strftime("%H:%M")
    metrics = f"http://{settings.ingest.metrics_host}:{settings.ingest.metrics_port}/metrics"
    instances = demo.ingester_settings()
    ingesters = ""
    if len(instances) > 1:
        ports = [str(instance.ingest.metrics_port) for instance in instances]
        metrics += f" (ingester 0; ports {', '.join(ports)}: ingester K's is the port + K)"
        ingesters = (
            f"\n  ingesters   : {len(instances)} instances share the stream ($share/"
            f"{instances[0].mqtt.shared_group}/…), each with its own broker account,\n"
            f"{indent}session, spool and quarantine: {', '.join(i.mqtt.client_id for i in instances)};\n"
            f"{indent}state in {settings.ingest.state_dir}/instance-K/"
        )
    gateways = ""
    if demo.hosted:
        hosted = ", ".join(demo.hosted)
        verb = "runs" if len(demo.hosted) == 1 else "run"
        gateways = (
            f"\n  gateways    : {hosted} {verb} the real gateway service (reallabor gateway run) after the\n"
            f"{indent}history: meters through socat pseudo-terminals, Wi-Fi/Zigbee through a local Mosquitto;"
            f"\n{indent}config, outbox, logs in {state_dir / GATEWAYS_DIR}/<gateway>/ "
            "(gateway.yaml, outbox/, gateway.log)"
        )
    return f"""
Reallabor is up (state in {state_dir}).
  pages       : {api.url}/ops     (operators: the quarter's charts, households, deletions)
                {api.url}/tech    (technicians and operators; API docs at {api.url}/api/docs)
                {api.url}/portal  (residents: their own household; new ones get an invitation code
                                   from /tech/invitations or `reallabor residents invite hh-002`)
                {api.url}/quarter (anyone, no login: the quarter's electricity now, self-sufficiency,
                                   street climate, the open data)
  open data   : {api.url}/opendata/catalog.jsonld   (DCAT-AP.de catalogue of the CSV/JSON files in
                {settings.opendata.out_dir}/: the history's final days once the ledger has
                them, then nightly at {settings.opendata.daily_at}; a day is final at {final} the day after)
  logins      : role        username    password
{logins}
  MQTT broker : mqtt://{settings.mqtt.host}:{settings.mqtt.port}   (dynamic security: one account per gateway)
  InfluxDB    : {influx.url}   database {influx.database!r}, reader {READER!r} (may only read)
  newest data : INFLUX_USERNAME={READER} INFLUX_PASSWORD={credentials.influx_reader} \\
                influx -port {port} -database {influx.database} -precision rfc3339 -execute \\
                  '{query}'
  energy      : ledger user {LEDGER!r}: rollups.energy, energy_1d every {LEDGER_INTERVAL_S:.0f} s
  metrics     : {metrics}{ingesters}
  simulated   : {simulated}{gateways}
  secrets     : {state_dir / "demo-secrets.json"} (every demo password, owner only)
  commands    : reallabor users|gateways|devices|households|residents|letters|quarantine …{commands}
                reallabor opendata export --from DATE --to DATE{commands}{notes}
Press Ctrl-C to stop; `{again}` continues where it stopped.
"""
