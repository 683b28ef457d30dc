"""The Pi installs the wheel without the central side's dependencies (install.sh: ``--no-deps``, then the
bundle's requirements-gateway.txt). Everything the gateway service imports outside the standard library
must be in that list, and the list must be the very requirements of pyproject.toml, so neither drifts."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from ingest.gateway.bundle import GATEWAY_REQUIREMENTS

REPO = Path(__file__).resolve().parents[2]
GATEWAY_MODULES = (
    "ingest.gateway.cli",
    "ingest.gateway.service",
    "ingest.gateway.local",
    "ingest.gateway.uplink",
    "ingest.gateway.outbox",
    "ingest.gateway.health",
    "ingest.gateway.serial.port",
)
# import names of the requirements and of what they pull in themselves
PROVIDED = {
    "pydantic": {"pydantic", "pydantic_core", "annotated_types", "typing_extensions", "typing_inspection"},
    "pydantic-settings": {"pydantic_settings", "dotenv"},
    "pyyaml": {"yaml"},
}


def _name(requirement: str) -> str:
    return requirement.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()


def test_gateway_requirements_are_pyprojects_own() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in GATEWAY_REQUIREMENTS:
        assert requirement in declared, requirement


def test_the_gateway_service_imports_nothing_else() -> None:
    probe = (
        "import sys\n"
        f"for m in {GATEWAY_MODULES!r}: __import__(m)\n"
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    third_party = {
        name
        for name in out.split()
        if name not in sys.stdlib_module_names and not name.startswith("_") and name != "cython_runtime"
    }
    allowed = {"ingest"}.union(*(PROVIDED[_name(r)] for r in GATEWAY_REQUIREMENTS))
    assert third_party <= allowed, sorted(third_party - allowed)
    assert {"yaml", "pydantic"} <= third_party  # the probe really imported the service
