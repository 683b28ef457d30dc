"""Several ingesters on one stream (issue 17): an instance that went away keeps receiving its share into its
session; ``reallabor ingest --drain`` brings it in and ends the session. Real Mosquitto 2.0 and InfluxDB."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest import mqtt_wire as wire
from ingest.config import MqttSettings, load_settings
from ingest.dynsec import DynsecBootstrap
from ingest.localservices import LOOPBACK, Mosquitto
from ingest.mqtt import Message, MqttSource
from ingest.mqtt_session import SessionMemory, SessionRecord
from ingest.spool import Spool
from simulators.fleet import make_fleet, samples
from simulators.publisher import Publisher
from tests.helpers import InfluxQuery, IngesterProcess, Target, wait_for

START_MS = 1_764_320_400_000


def _connack(
    port: int, client_id: str, *, username: str | None = None, password: str | None = None
) -> tuple[bool, int]:
    """(session present, reason code) for an MQTT 5 CONNECT with clean start off and no session kept."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        sock.sendall(
            wire.connect(
                client_id,
                keepalive_s=10,
                clean_start=False,
                session_expiry_s=0,  # whatever this connection finds or makes, it ends with it
                receive_maximum=10,
                username=username,
                password=password,
            )
        )
        parser = wire.PacketParser()
        while True:
            data = sock.recv(4096)
            assert data, "the broker closed the connection before CONNACK"
            _, controls = parser.feed(data)
            for packet in controls:
                if packet.kind == wire.CONNACK:
                    with_session, reason = wire.connack(packet.body)
                    if reason < 0x80:
                        sock.sendall(wire.DISCONNECT_PACKET)
                    return with_session, reason


def _publish(port: int, target: Target, batch: list[Any]) -> None:
    with Publisher(LOOPBACK, port) as publisher:
        publisher.publish_all((target.topic_prefix + s.household.topic, s.payload()) for s in batch)
        publisher.flush()


def _steady(influx: InfluxQuery, *, above: int) -> int:
    """The point count once it is above ``above`` and has not changed for a second."""
    last = [-1]

    def unchanged() -> int | None:
        count = influx.count("electricity", "power_w")
        steady = count > above and count == last[0]
        last[0] = count
        return count if steady else None

    return int(wait_for(unchanged, timeout=30, interval=1.0, what=f"the count to settle above {above}"))


def test_a_stopped_instance_is_drained_into_influxdb_and_its_session_ends(
    mosquitto: Mosquitto, target: Target, influx: InfluxQuery, tmp_path: Path
) -> None:
    batch = list(samples(make_fleet(20), count=700, start_ms=START_MS, interval_s=1))
    env = {**os.environ}
    instances = [IngesterProcess(target, tmp_path / f"instance-{k}", env=env) for k in range(2)]
    try:
        for k, process in enumerate(instances):
            process.config_path.parent.mkdir()
            process.launch(target.config(ingest={"instance": k, "instances": 2}))
        _publish(mosquitto.port, target, batch[:200])
        wait_for(lambda: influx.count("electricity", "power_w") == 200, timeout=30, what="the first 200")

        instances[1].stop(kill=True)  # away: its session stays in the group and queues its share
        _publish(mosquitto.port, target, batch[200:600])
        before = _steady(influx, above=200)
        assert before < 600, "instance 1's share of the 400 should wait in its session"
    finally:
        instances[1].stop()

    try:
        settings = tmp_path / "drain.yaml"  # the identity from the flags this time
        settings.write_text(yaml.safe_dump(target.config()), encoding="utf-8")
        started = time.monotonic()
        command = ["ingest", "--config", str(settings), "--instance", "1", "--of", "2", "--drain"]
        drained = subprocess.run(
            [sys.executable, "-m", "ingest.cli", *command, "--settle", "1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert drained.returncode == 0, drained.stderr
        report = json.loads(drained.stdout)
        assert report.pop("spool_before") >= 0  # its spool's last records (stats points) if it had any
        assert report == {
            "instance": 1,
            "client_id": f"{target.client_id}-1",
            "taken": 600 - before,
            "written": 600 - before,
            "quarantined": 0,
            "spool_left": 0,
            "session_found": True,
            "session_lost": False,
            "session_ended": True,
            "stopped": None,
            "retired": True,
        }
        assert time.monotonic() - started < 20
        assert influx.count("electricity", "power_w") == 600  # every message, exactly once

        # the broker dropped the session: none to resume, and instance 0 alone takes what comes now
        assert _connack(mosquitto.port, f"{target.client_id}-1") == (False, 0)
        _publish(mosquitto.port, target, batch[600:])
        wait_for(lambda: influx.count("electricity", "power_w") == 700, timeout=30, what="all 700")
    finally:
        instances[0].stop()


def test_an_instance_killed_mid_stream_is_drained_exactly(
    mosquitto: Mosquitto, target: Target, influx: InfluxQuery, tmp_path: Path
) -> None:
    """Killed while messages are in flight and in its spool: the drain writes its spool, takes the
    redeliveries and its queued share; a point written twice is the same point."""
    batch = list(samples(make_fleet(20), count=3000, start_ms=START_MS, interval_s=1))
    instances = [IngesterProcess(target, tmp_path / f"instance-{k}", env={**os.environ}) for k in range(2)]
    try:
        for k, process in enumerate(instances):
            process.config_path.parent.mkdir()
            process.launch(target.config(ingest={"instance": k, "instances": 2}))
        publishing = threading.Thread(target=_publish, args=(mosquitto.port, target, batch[:1500]))
        publishing.start()
        wait_for(lambda: influx.count("electricity", "power_w") >= 300, timeout=30, what="the first 300")
        instances[1].stop(kill=True)
        publishing.join(60)
        # published after the kill: instance 1's share of these waits in its session whatever the machine's
        # speed (on a loaded machine the first half may be all written before the kill lands)
        _publish(mosquitto.port, target, batch[1500:])
        before = _steady(influx, above=300)
        assert before < 3000
        config = str(instances[1].config_path)  # instance 1 of 2 in the settings this time
        drained = subprocess.run(
            [sys.executable, "-m", "ingest.cli", "ingest", "--config", config, "--drain"],
            capture_output=True,
            text=True,
            env={**os.environ},
            timeout=60,
        )
        assert drained.returncode == 0, drained.stderr
        report = json.loads(drained.stdout)
        assert report["retired"], report
        assert report["taken"] > 0
        assert influx.count("electricity", "power_w") == 3000
    finally:
        for process in instances:
            process.stop()


def test_the_session_ends_only_if_nothing_came_after_the_decision(
    mosquitto: Mosquitto, target: Target
) -> None:
    topic = f"{target.topic_prefix}lab/gw/x"

    async def disconnect(client_id: str, *, late_message: bool) -> bool:
        settings = MqttSettings(host=LOOPBACK, port=mosquitto.port, client_id=client_id)
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = MqttSource(settings, topics=[topic], queue=queue)
        running = asyncio.create_task(source.run())
        await asyncio.wait_for(source.connected.wait(), 10)
        decided = source.delivered
        if late_message:  # comes in after the decision that everything was taken
            with Publisher(LOOPBACK, mosquitto.port) as publisher:
                publisher.publish(topic, b"{}")
                publisher.flush()
            source.ack(await asyncio.wait_for(queue.get(), 10))
        source.end_session(delivered=decided)
        await source.disconnect()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return source.session_ended

    assert asyncio.run(disconnect(f"{target.client_id}-a", late_message=False))
    assert _connack(mosquitto.port, f"{target.client_id}-a") == (False, 0)
    assert not asyncio.run(disconnect(f"{target.client_id}-b", late_message=True))
    assert _connack(mosquitto.port, f"{target.client_id}-b") == (True, 0)  # kept (and now ended by us)


def test_each_instance_logs_in_with_its_own_account_bound_to_its_client_id(tmp_path: Path) -> None:
    bootstrap = DynsecBootstrap(
        admin_password="admin-Secret-4711x", ingester_password="ingest-Secret-0815y", ingester_instances=2
    )
    with Mosquitto(tmp_path / "mosquitto", dynsec=bootstrap) as broker:
        password = bootstrap.ingester_password
        for k in range(2):
            assert (
                _connack(broker.port, f"reallabor-ingest-{k}", username=f"ingester-{k}", password=password)[1]
                == 0
            )
        # neither may use the other's id (and take over its session)
        refused = _connack(broker.port, "reallabor-ingest-0", username="ingester-1", password=password)
        assert refused[1] >= 0x80

        # a drain whose login the broker refuses ends at once (another try gets the same), naming the keys
        config = tmp_path / "drain.yaml"
        mqtt = {"port": broker.port, "username": "ingester", "password": "not-the-password"}
        config.write_text(yaml.safe_dump({"mqtt": mqtt, "ingest": {"state_dir": str(tmp_path / "state")}}))
        drained = _drain(config, "--instance", "1", "--of", "2", "--timeout", "20")
        assert drained.returncode == 2, drained.stderr
        assert json.loads(drained.stdout)["stopped"].startswith("the broker refused the login: ")
        assert "check mqtt.username (ingester-1) and mqtt.password" in drained.stderr
        assert "not-the-password" not in drained.stdout + drained.stderr


def _drain(config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = ["ingest", "--config", str(config), "--drain", *arguments]
    return subprocess.run(
        [sys.executable, "-m", "ingest.cli", *command], capture_output=True, text=True, timeout=60
    )


def test_a_drain_gives_up_after_its_timeout_keeping_the_session(target: Target, tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on: the broker is away
        closed.bind((LOOPBACK, 0))
        port = closed.getsockname()[1]
    config = tmp_path / "drain.yaml"
    config.write_text(
        yaml.safe_dump(target.config(mqtt={"port": port}, ingest={"instance": 1, "instances": 2}))
    )
    started = time.monotonic()
    drained = _drain(config, "--timeout", "1.5")
    assert drained.returncode == 1, drained.stderr
    assert time.monotonic() - started < 15
    report = json.loads(drained.stdout)
    assert (report["stopped"], report["session_found"], report["retired"]) == ("timeout", None, False)
    assert "not drained within --timeout 1.5 s" in drained.stderr


def test_a_drain_of_an_instance_running_elsewhere_stops_and_says_so(
    mosquitto: Mosquitto, target: Target, tmp_path: Path
) -> None:
    """The instance runs on another host (another state dir): the drain must not end its session."""
    running = IngesterProcess(target, tmp_path / "running", env={**os.environ})
    running.config_path.parent.mkdir()
    identity = {"instance": 1, "instances": 2}
    try:
        running.launch(target.config(ingest=identity))
        # the same state dir twice on one host: refused with a message, no traceback
        twice = subprocess.run(
            [sys.executable, "-m", "ingest.cli", "ingest", "--config", str(running.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert twice.returncode == 2
        assert "another ingester (same --instance K?) is running" in twice.stderr
        assert "Traceback" not in twice.stderr

        elsewhere = tmp_path / "elsewhere.yaml"
        elsewhere.write_text(
            yaml.safe_dump(target.config(ingest={**identity, "state_dir": str(tmp_path / "elsewhere")}))
        )
        drained = _drain(elsewhere, "--settle", "3")
        assert drained.returncode == 1, drained.stderr
        report = json.loads(drained.stdout)
        assert (report["retired"], report["session_ended"]) == (False, False)
        assert "another process connected with that client id" in report["stopped"]
        assert "not retired" in drained.stderr
        # the instance goes on with its session: nothing unsubscribed it for good
        wait_for(lambda: "mqtt connected" in running.output().rsplit("connection lost", 1)[-1], timeout=20)
    finally:
        running.stop()


def test_a_drain_that_finds_the_session_expired_says_the_queue_is_lost(
    mosquitto: Mosquitto, target: Target, influx: InfluxQuery, tmp_path: Path
) -> None:
    """The broker lost the session the instance remembers: retired, but exit 3 and lost_queued. The
    drain writes the spool the instance left and runs without /metrics (its port is taken, as when
    instance 0 of N runs during a 1 -> N drain)."""
    settings = load_settings(None, **target.config(ingest={"instance": 1, "instances": 2})).as_instance()
    SessionRecord.of(settings).save(  # what the instance remembered when it went away, long ago
        SessionMemory(settings.mqtt.client_id, f"{LOOPBACK}:{mosquitto.port}", ("$share/g/lab/#",), 0.0, 0.0)
    )
    with Spool(settings.ingest.state_dir / "spool", max_bytes=1 << 20) as spool:
        spool.append_many([b"electricity,device=left-over power_w=1 1764320400000000000\n"])
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        config = tmp_path / "drain.yaml"
        metrics = {"instance": 1, "instances": 2, "metrics_port": taken.getsockname()[1] - 1}
        config.write_text(yaml.safe_dump(target.config(ingest=metrics)))
        drained = _drain(config, "--settle", "0.5")
    assert drained.returncode == 3, drained.stderr
    report = json.loads(drained.stdout)
    assert report["lost_queued"] == "unknown (session expired or lost at the broker)"
    assert (report["session_found"], report["session_lost"], report["retired"]) == (False, True, True)
    assert (report["spool_before"], report["spool_left"]) == (1, 0)
    assert "WARNING: the broker no longer held the session of" in drained.stderr
    assert influx.count("electricity", "power_w") == 1  # the spool's point, written by the drain


def test_two_processes_as_the_same_instance_log_an_error_and_back_off(
    mosquitto: Mosquitto, target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """Each takes the session from the other (Mosquitto 2.0.11 just closes the old connection): an error
    naming the client id, and reconnects that slow down instead of every 0.1-0.2 s for ever."""
    caplog.set_level(logging.INFO, logger="ingest.mqtt")
    client_id = f"{target.client_id}-twin"
    settings = MqttSettings(
        host=LOOPBACK, port=mosquitto.port, client_id=client_id, reconnect_min_s=0.2, reconnect_max_s=4
    )

    async def twins() -> None:
        sources = [
            MqttSource(settings, topics=[f"{target.topic_prefix}lab/#"], queue=asyncio.Queue())
            for _ in range(2)
        ]
        runs = [asyncio.create_task(source.run()) for source in sources]
        await asyncio.sleep(8)
        for source in sources:
            await source.disconnect(wait_s=1)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)

    asyncio.run(twins())
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"another process connected as {client_id}: two instances" in e for e in errors), errors
    connects = sum("mqtt connected" in r.getMessage() for r in caplog.records)
    assert connects < 20, f"{connects} connects in 8 s: the backoff did not grow"


def test_a_round_trip_comes_back_after_what_the_last_ack_released(
    mosquitto: Mosquitto, target: Target
) -> None:
    """The drain's last check before it ends the session: with a receive maximum of 1 the broker sends the
    next queued message only once it has read our ack; the PINGRESP comes after it."""
    topic = f"{target.topic_prefix}lab/gw/rt"
    settings = MqttSettings(
        host=LOOPBACK, port=mosquitto.port, client_id=f"{target.client_id}-rt", receive_maximum=1
    )

    async def session() -> list[int]:
        queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        source = MqttSource(settings, topics=[topic], queue=queue)
        running = asyncio.create_task(source.run())
        await asyncio.wait_for(source.connected.wait(), 10)
        with Publisher(LOOPBACK, mosquitto.port) as publisher:
            for n in range(3):
                publisher.publish(topic, str(n).encode())
            publisher.flush()
        seen = []
        for _ in range(2):
            messages = await asyncio.wait_for(queue.get(), 10)
            source.taken(len(messages))  # as the ingester does: the source reads on
            source.ack(messages)
            assert await source.round_trip()
            seen.append(source.delivered)  # the message the ack released is in already
        source.end_session(delivered=source.delivered)
        await source.disconnect()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return seen

    assert asyncio.run(session()) == [2, 3]
