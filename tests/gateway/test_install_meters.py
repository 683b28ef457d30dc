"""install.sh run again with a newer bundle keeps the meters entered on the Pi: its Python step (run by
the installed venv's interpreter, here this one) carries the installed gateway.yaml's ``meters:`` into the
new file when that has none, leaves a new file with meters of its own alone, and gives the same file when
run again (no new backup)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ingest.gateway.bundle import BundleSettings, gateway_config, pack, uncommented_meters
from ingest.gateway.config import Meter, load_gateway_config
from tests.gateway.bundle_world import unpack

NOTHING_TO_CARRY = 3


def _bundle(directory: Path, password: str) -> Path:
    settings = BundleSettings(brokers=["broker.example.org:8883"], ca_pem=None)
    config = gateway_config("haus-e", username="gw-haus-e", password=password, settings=settings)
    registry = [Meter(device="hh-1-ehz", port=Path("/dev/serial/by-id/CHANGE-ME-hh-1-ehz"), protocol="sml")]
    unpack(pack(config, meters=registry, settings=settings), directory)
    return directory / "reallabor-gateway-haus-e"


def _carry_step(folder: Path) -> str:
    """The Python that install.sh feeds to the venv's interpreter (its here-document)."""
    script = (folder / "install.sh").read_text()
    return script.split("<<'PY' || carry=$?\n", 1)[1].split("\nPY\n", 1)[0]


def _carry(step: str, new: Path, installed: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-", str(new), str(installed), str(out)],
        input=step,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_new_bundle_keeps_the_meters_entered_on_the_pi(tmp_path: Path) -> None:
    first = _bundle(tmp_path / "first", "first password")
    installed = tmp_path / "etc-gateway.yaml"
    entered = uncommented_meters((first / "gateway.yaml").read_text())
    installed.write_text(entered.replace("CHANGE-ME-hh-1-ehz", "usb-Hichi-if00-port0"))
    second = _bundle(tmp_path / "second", "second password")
    step = _carry_step(second)

    out = tmp_path / "carried.yaml"
    carried = _carry(step, second / "gateway.yaml", installed, out)
    assert carried.returncode == 0, carried.stderr
    assert "carried the 1 meter(s)" in carried.stdout
    config = load_gateway_config(out)
    assert config.central.password.get_secret_value() == "second password"  # the new bundle's account
    assert [(m.device, str(m.port), m.protocol) for m in config.meters] == [
        ("hh-1-ehz", "/dev/serial/by-id/usb-Hichi-if00-port0", "sml")
    ]
    assert "# - device: hh-1-ehz" in out.read_text()  # the bundle's comments stay

    # run again (the same bundle, the carried file now installed): the same file, so no new backup
    again = tmp_path / "again.yaml"
    assert _carry(step, second / "gateway.yaml", out, again).returncode == 0
    assert again.read_bytes() == out.read_bytes()

    # a new file with meters of its own, or an installed one without: nothing carried, nothing written
    own = tmp_path / "own.yaml"
    own.write_text(uncommented_meters((second / "gateway.yaml").read_text()))
    for new, old in ((own, installed), (second / "gateway.yaml", first / "gateway.yaml")):
        untouched = tmp_path / "untouched.yaml"
        skipped = _carry(step, new, old, untouched)
        assert skipped.returncode == NOTHING_TO_CARRY, skipped.stderr
        assert not untouched.exists()
    assert yaml.safe_load(installed.read_text())["meters"]  # the installed file is only read
