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


# what only the central side installs: the Pi has none of it (install.sh: the wheel --no-deps)
CENTRAL_ONLY = (
    "orjson",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "pandas",
    "numpy",
    "httpx",
    "paho",
    "uvicorn",
    "psycopg",
    "jinja2",
    "argon2",
)
_AS_ON_THE_PI = (
    "import importlib.abc, sys\n"
    "class CentralOnly(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    f"        if name.partition('.')[0] in {CENTRAL_ONLY!r}:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r} (not on the Pi)', name=name)\n"
    "        return None\n"
    "sys.meta_path.insert(0, CentralOnly())\n"
    "from importlib.metadata import entry_points\n"
    "(script,) = entry_points(group='console_scripts', name=sys.argv[1])\n"
    "sys.argv = sys.argv[1:]\n"
    "sys.exit(script.load()())\n"
)


def _on_the_pi(*argv: str) -> subprocess.CompletedProcess[str]:
    """The installed console script ``argv[0]`` run with the central side's packages absent."""
    return subprocess.run(
        [sys.executable, "-c", _AS_ON_THE_PI, *argv], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_pi_command_checks_gateway_yaml_without_the_central_packages(tmp_path: Path) -> None:
    from tests.gateway.bundle_world import certificate

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["reallabor-gateway"] == "ingest.gateway.cli:main"
    ca, _key = certificate(tmp_path / "tls")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "gateway: haus-pi\n"
        "central:\n"
        "  brokers: ['broker.example.org:8883']\n"
        "  username: gw-haus-pi\n  password: a-password\n  client_id: gw-haus-pi\n"
        f"  tls: {{ca_file: {ca}}}\n"
        f"outbox: {{directory: {tmp_path / 'outbox'}}}\n"
        "meters: []\n"
    )
    checked = _on_the_pi("reallabor-gateway", "check", "--config", str(config))
    assert checked.returncode == 0, checked.stderr
    assert f"{config}: ok (gateway haus-pi, 0 meter(s)" in checked.stdout
    helped = _on_the_pi("reallabor-gateway", "run", "--help")
    assert (helped.returncode, "--config" in helped.stdout) == (0, True), helped.stderr
    # the blocker bites: the central command cannot even start there
    central = _on_the_pi("reallabor", "gateway", "check", "--config", str(config))
    assert central.returncode != 0
    assert "(not on the Pi)" in central.stderr
