"""Layers: the registry and the commissioning check are services that know nothing of HTTP. The API's
routes and pages call them, the CLI calls them directly, never through ``ingest.api`` — the one
exception being ``reallabor api``, the command that serves the API. And the API writes its cookies in one
place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INGEST = Path(__file__).resolve().parents[2] / "ingest"
SERVICES = ("registry", "commissioning")
ALLOWED = {  # the command that serves the API: the app, and how uvicorn tells who the client is
    ("registry/cli.py", "cmd_api", "ingest.api.app"),
    ("registry/cli.py", "cmd_api", "ingest.api.serving"),
}

pytestmark = pytest.mark.registry


def _imports(tree: ast.Module) -> list[tuple[str, str]]:
    """(enclosing top-level function or "", imported module) for every import in ``tree``."""
    found: list[tuple[str, str]] = []
    for top in tree.body:
        where = top.name if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef) else ""
        for node in ast.walk(top):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((where, node.module))
            elif isinstance(node, ast.Import):
                found.extend((where, alias.name) for alias in node.names)
    return found


def api_imports_of_services(root: Path) -> list[str]:
    """Where a module of the service packages below ``root`` imports ``ingest.api``."""
    bad: list[str] = []
    for package in SERVICES:
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            for where, module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
                api = module == "ingest.api" or module.startswith("ingest.api.")
                if api and (name, where, module) not in ALLOWED:
                    bad.append(f"{name}:{where or '<module>'} imports {module}")
    return bad


def test_services_do_not_import_the_api() -> None:
    assert api_imports_of_services(INGEST) == []


def test_the_check_sees_an_import_of_the_api(tmp_path: Path) -> None:
    (tmp_path / "registry").mkdir()
    (tmp_path / "commissioning").mkdir()
    (tmp_path / "registry" / "cli.py").write_text(
        "from ingest.api.schemas import Key\n\ndef cmd_api():\n    from ingest.api.app import create_app\n"
    )
    (tmp_path / "commissioning" / "run.py").write_text("def go():\n    import ingest.api.runs\n")
    assert api_imports_of_services(tmp_path) == [
        "registry/cli.py:<module> imports ingest.api.schemas",
        "commissioning/run.py:go imports ingest.api.runs",
    ]


def cookie_writers(root: Path) -> list[str]:
    """Modules below ``root``/api, other than ``cookies.py``, that set or delete a cookie themselves."""
    found: list[str] = []
    for path in sorted((root / "api").rglob("*.py")):
        if path.name == "cookies.py" and path.parent == root / "api":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = node.func if isinstance(node, ast.Call) else None
            if isinstance(called, ast.Attribute) and called.attr in ("set_cookie", "delete_cookie"):
                found.append(f"{path.relative_to(root).as_posix()}:{called.lineno} {called.attr}")
    return found


def test_cookies_are_written_in_one_place() -> None:
    """Session, CSRF and language cookies keep one set of attributes (ingest/api/cookies.py)."""
    assert cookie_writers(INGEST) == []
