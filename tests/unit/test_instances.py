"""Several ingester instances (issue 17): each one's identity is derived in one place (as_instance)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingest.cli import _settings, instance_overrides, main, parser
from ingest.config import ConfigError, Settings, load_settings


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ingest.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _instance(**ingest: object) -> Settings:
    return load_settings(None, ingest=ingest, mqtt={"username": "ingester"})


def test_several_instances_each_get_their_own_identity() -> None:
    chosen = _instance(instance=2, instances=3, metrics_port=9108, state_dir="/srv/state").as_instance()
    assert chosen.mqtt.client_id == "reallabor-ingest-2"
    assert chosen.mqtt.username == "ingester-2"  # its own broker account, bound to its client id
    assert chosen.mqtt.shared_group == "reallabor-ingest"
    assert chosen.ingest.state_dir == Path("/srv/state/instance-2")
    assert chosen.ingest.metrics_port == 9110
    assert chosen.as_instance() is chosen  # applied once, however often asked
    assert chosen.state_dirs() == [Path("/srv/state"), *(Path(f"/srv/state/instance-{k}") for k in range(3))]
    same = _instance(instance=0, instances=3, metrics_port=9108, state_dir="/srv/state").for_instance(2)
    assert same.model_dump() == chosen.model_dump()


def test_a_named_group_and_an_any_free_metrics_port_stay() -> None:
    settings = load_settings(
        None, ingest={"instance": 1, "instances": 2, "metrics_port": 0}, mqtt={"shared_group": "city"}
    )
    chosen = settings.as_instance()
    assert (chosen.mqtt.shared_group, chosen.ingest.metrics_port) == ("city", 0)
    assert _instance(instance=1, instances=2).as_instance().ingest.metrics_port is None


def test_one_instance_is_exactly_as_before(tmp_path: Path) -> None:
    settings = _instance(metrics_port=9108, state_dir=str(tmp_path))
    assert settings.as_instance() is settings
    assert (settings.mqtt.client_id, settings.mqtt.shared_group) == ("reallabor-ingest", None)
    assert settings.state_dirs() == [tmp_path]


def test_the_state_of_a_retired_instance_is_still_found(tmp_path: Path) -> None:
    (tmp_path / "instance-3").mkdir()  # ran when there were four
    (tmp_path / "instance-x").mkdir()  # not an instance's
    back_to_one = _instance(state_dir=str(tmp_path))
    assert back_to_one.state_dirs() == [tmp_path, tmp_path / "instance-3"]
    two = _instance(instances=2, state_dir=str(tmp_path)).for_instance(1)
    assert two.state_dirs() == [tmp_path, *(tmp_path / f"instance-{k}" for k in (0, 1, 3))]
    with pytest.raises(ConfigError, match=r"ingest\.instance: 2 is not one of the 2 instances"):
        _instance(instances=2).for_instance(2)


@pytest.mark.parametrize(
    ("ingest", "mqtt", "expected"),
    [
        ({"instance": 2, "instances": 2}, {}, "ingest.instance: 2 is not below ingest.instances (2)"),
        ({"instance": 1}, {}, "ingest.instance: 1 is not below ingest.instances (1)"),
        ({"instance": -1, "instances": 2}, {}, "ingest.instance: Input should be greater than or equal to 0"),
        ({"instances": 0}, {}, "ingest.instances: Input should be greater than or equal to 1"),
        ({"instances": 11}, {"client_id": "c" * 62}, f"mqtt.client_id: {'c' * 62!r} is too long for 11"),
        ({"instances": 3, "metrics_port": 65534}, {}, "ingest.metrics_port: 65534 + instance 2 is beyond"),
        ({}, {"shared_group": "a/b"}, "mqtt.shared_group: String should match pattern"),
    ],
)
def test_bad_instances_are_refused_naming_the_key_and_value(
    ingest: dict[str, object], mqtt: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, ingest=ingest, mqtt=mqtt)
    assert expected in str(refused.value)


def test_the_flags_override_the_settings_file(tmp_path: Path) -> None:
    config = _config(tmp_path, "ingest:\n  state_dir: /srv/state\n  instance: 0\n  instances: 2\n")
    args = parser(["ingest"]).parse_args(["ingest", "--config", str(config), "--instance", "2", "--of", "4"])
    chosen = _settings(args.config, "ingest", **instance_overrides(args)).as_instance()
    assert (chosen.ingest.instance, chosen.ingest.instances) == (2, 4)
    assert chosen.ingest.state_dir == Path("/srv/state/instance-2")  # the file's other keys stay
    args = parser(["ingest"]).parse_args(["ingest", "--config", str(config), "--instance", "1"])
    assert _settings(args.config, "ingest", **instance_overrides(args)).as_instance().mqtt.client_id == (
        "reallabor-ingest-1"
    )


def test_a_bad_flag_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, "ingest:\n  instances: 2\n")
    with pytest.raises(SystemExit) as exited:
        main(["ingest", "--config", str(config), "--instance", "5"])
    assert exited.value.code == 2
    assert "ingest.instance: 5 is not below ingest.instances (2)" in capsys.readouterr().err


def test_the_source_subscribes_as_a_shared_member() -> None:
    from ingest.mqtt import MqttSource

    chosen = _instance(instance=1, instances=2).as_instance()
    source = MqttSource(chosen.mqtt, topics=["lab/+/x/#"], queue=asyncio.Queue())
    assert source.topics == ["$share/reallabor-ingest/lab/+/x/#"]
    alone = MqttSource(_instance().mqtt, topics=["lab/+/x/#"], queue=asyncio.Queue())
    assert alone.topics == ["lab/+/x/#"]


def test_the_broker_gets_one_ingester_account_per_instance_each_bound_to_its_id() -> None:
    from ingest.dynsec import DynsecBootstrap, initial_config

    bootstrap = DynsecBootstrap(admin_password="a" * 20, ingester_password="i" * 20, ingester_instances=3)
    ingesters = {
        client["username"]: client["clientid"]
        for client in initial_config(bootstrap)["clients"]
        if client["roles"] == [{"rolename": "ingester"}]
    }
    assert ingesters == {f"ingester-{k}": f"reallabor-ingest-{k}" for k in range(3)}
    # the same names as the instances' settings derive
    chosen = load_settings(None, ingest={"instance": 2, "instances": 3}, mqtt={"username": "ingester"})
    assert (chosen.as_instance().mqtt.username, chosen.as_instance().mqtt.client_id) in ingesters.items()
    alone = DynsecBootstrap(admin_password="a" * 20, ingester_password="i" * 20)
    assert alone.ingester_accounts() == {"ingester": "reallabor-ingest"}


def test_a_disconnect_that_ends_the_session() -> None:
    from ingest import mqtt_wire as wire

    packet = wire.disconnect(session_expiry_s=0)
    _, controls = wire.PacketParser().feed(packet)
    (disconnect,) = controls
    assert disconnect.kind == wire.DISCONNECT
    assert wire.disconnect_reason(disconnect.body) == 0  # normal disconnection
    assert wire.properties_at(disconnect.body, 1) == [(wire.SESSION_EXPIRY_INTERVAL, 0)]


def test_the_demo_refuses_when_another_ingesters_metrics_port_is_taken() -> None:
    import socket

    from ingest.demo.ports import DemoPorts
    from tests.demo_process import free_ports

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        base = free_ports()
        ports = DemoPorts(mqtt=base.mqtt, influx=base.influx, api=base.api, metrics=taken - 1)
        assert any(f"port {taken} (metrics of ingester 1)" in line for line in ports.taken(ingesters=2))
        assert not any("metrics of ingester" in line for line in ports.taken())


def _quarantined(state_dir: Path, topics: list[str]) -> None:
    from ingest.quarantine import QUARANTINE_FILE, Quarantine, QuarantineEntry

    with Quarantine(state_dir / QUARANTINE_FILE) as quarantine:
        for index, topic in enumerate(topics):
            quarantine.add(
                QuarantineEntry(topic, b"{", 1_764_320_400_000_000_000 + index, "invalid_json", "cut")
            )


def test_the_quarantine_commands_read_every_instances_quarantine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    _quarantined(tmp_path / "instance-0", ["lab/gw/a"])
    _quarantined(tmp_path / "instance-1", ["lab/gw/b", "lab/gw/c"])
    config = _config(tmp_path, f"ingest:\n  state_dir: {tmp_path}\n  instances: 2\n")
    assert main(["quarantine", "stats", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 3
    assert main(["quarantine", "list", "--json", "--config", str(config)]) == 0
    listed = {(e["instance"], e["id"], e["topic"]) for e in json.loads(capsys.readouterr().out)}
    assert listed == {
        ("instance-0", 1, "lab/gw/a"),
        ("instance-1", 1, "lab/gw/b"),
        ("instance-1", 2, "lab/gw/c"),
    }
    assert main(["quarantine", "show", "1", "--config", str(config)]) == 1  # whose id 1?
    assert "id 1 is in the quarantines of instance-0, instance-1: choose one with --instance K" in (
        capsys.readouterr().err
    )
    assert main(["quarantine", "show", "1", "--instance", "1", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["topic"] == "lab/gw/b"


def test_commissioning_finds_a_devices_messages_in_any_instances_quarantine(tmp_path: Path) -> None:
    from ingest.commissioning.pending import pending_for
    from ingest.quarantine import QUARANTINE_FILE

    _quarantined(tmp_path / "instance-0", ["lab/gw/dev/state"])
    _quarantined(tmp_path / "instance-1", ["lab/gw/other/state", "lab/gw/dev/state"])
    hits = pending_for(tmp_path / QUARANTINE_FILE, ["lab/gw/dev/#"])
    assert [(hit.id, hit.topic) for hit in hits] == [(2, "lab/gw/dev/state"), (1, "lab/gw/dev/state")]


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (["--drain", "--settle", "nan"], "--settle nan: give a finite number of seconds above 0.2"),
        (["--drain", "--settle", "inf"], "--settle inf: give a finite number of seconds above 0.2"),
        (["--drain", "--settle", "0.01"], "--settle 0.01: give a finite number of seconds above 0.2"),
        (["--drain", "--timeout", "-1"], "--timeout -1: give a finite number of seconds above 0"),
        (["--settle", "5"], "--settle is an option of --drain"),
        (["--timeout", "5"], "--timeout is an option of --drain"),
    ],
)
def test_drain_options_that_make_no_sense_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], refusal: str
) -> None:
    config = _config(tmp_path, "mqtt: {port: 1}\n")  # nothing is ever contacted
    assert main(["ingest", "--config", str(config), "--instance", "1", "--of", "2", *arguments]) == 2
    assert capsys.readouterr().err.strip() == f"reallabor: {refusal}"


def test_a_drain_without_the_instances_settings_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The defaults would drain whichever session has the default client id on 127.0.0.1:1883."""
    import os

    for name in os.environ:
        if name.startswith("REALLABOR_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert main(["ingest", "--instance", "0", "--of", "2", "--drain"]) == 2
    err = capsys.readouterr().err
    assert "--drain needs the instance's settings (--config or REALLABOR_CONFIG" in err
    # REALLABOR_CONFIG names them: read (a bad file says so, naming it, before anything connects)
    monkeypatch.setenv("REALLABOR_CONFIG", str(_config(tmp_path, "mqtt: [not a mapping\n")))
    with pytest.raises(SystemExit) as exited:
        main(["ingest", "--instance", "0", "--of", "2", "--drain"])
    assert exited.value.code == 2
    assert "ingest.yaml: not valid YAML" in capsys.readouterr().err


def test_the_drain_report_says_what_became_of_the_session() -> None:
    from ingest.drain import LOST_QUEUED, DrainReport

    done = DrainReport(1, "id-1", 5, 5, 0, 0, 0, True, False, True)
    assert (done.retired, done.exit_code, "lost_queued" in done.as_json()) == (True, 0, False)
    lost = DrainReport(1, "id-1", 0, 0, 0, 0, 0, False, True, True)
    assert (lost.retired, lost.exit_code, lost.as_json()["lost_queued"]) == (True, 3, LOST_QUEUED)
    waited = DrainReport(1, "id-1", 5, 0, 0, 0, 1, True, False, False, stopped="timeout")
    assert (waited.retired, waited.exit_code) == (False, 1)
    refused = DrainReport(1, "id-1", 0, 0, 0, 0, 0, None, False, False, "refused", login_refused=True)
    assert (refused.retired, refused.exit_code, "login_refused" in refused.as_json()) == (False, 2, False)


def test_the_help_names_the_drains_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["ingest", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Exit 0 retired; 1 not retired" in text
    assert "3 retired, but the broker had lost the session" in text
    assert "--timeout S" in text
