"""``reallabor dashboards push`` against FakeGrafana: a small HTTP server on 127.0.0.1 that implements
only the Grafana HTTP API endpoints the push calls (folders, datasources by uid, dashboards by uid and
``POST /api/dashboards/db`` with Grafana's version and title checks), since Grafana cannot run here. The
push goes through httpx over a real socket, as it would to Grafana.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ingest.cli import main
from ingest.grafana_push import (
    DashboardFileError,
    DatasourceSpec,
    GrafanaUnauthorized,
    GrafanaUnreachable,
    PushError,
    push,
)
from ingest.localservices import free_port

TOKEN = "glsa_fake_service_account_token_0123456789"


class FakeGrafana(ThreadingHTTPServer):
    """Grafana's answers for the endpoints the push uses, with state: not Grafana, a stand-in for tests."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeGrafanaHandler)
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}  # uid -> {"dashboard": ..., "folderUid": ...}
        self.requests: list[tuple[str, str]] = []
        self.saved_meanwhile: set[str] = set()  # uids someone saves in Grafana right after we read them

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def writes(self) -> list[tuple[str, str]]:
        return [request for request in self.requests if request[0] != "GET"]

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path))
        if method == "GET" and path.startswith("/api/folders/"):
            folder = self.folders.get(path.removeprefix("/api/folders/"))
            return (200, folder) if folder else (404, {"message": "folder not found"})
        if method == "POST" and path == "/api/folders":
            self.folders[body["uid"]] = {
                "uid": body["uid"],
                "title": body["title"],
                "id": len(self.folders) + 1,
            }
            return 200, self.folders[body["uid"]]
        if method == "GET" and path.startswith("/api/datasources/uid/"):
            source = self.datasources.get(path.removeprefix("/api/datasources/uid/"))
            return (200, source) if source else (404, {"message": "Data source not found"})
        if method == "POST" and path == "/api/datasources":
            self.datasources[body["uid"]] = body
            return 200, {"id": 1, "message": "Datasource added", "name": body["name"]}
        if method == "GET" and path.startswith("/api/dashboards/uid/"):
            uid = path.removeprefix("/api/dashboards/uid/")
            stored = self.dashboards.get(uid)
            if not stored:
                return 404, {"message": "Dashboard not found"}
            answer = {"dashboard": dict(stored["dashboard"]), "meta": {"folderUid": stored["folderUid"]}}
            if uid in self.saved_meanwhile:
                stored["dashboard"]["version"] += 1
            return 200, answer
        if method == "POST" and path == "/api/dashboards/db":
            return self.save(body)
        return 404, {"message": "Not found (FakeGrafana implements only what the push calls)"}

    def save(self, body: dict[str, Any]) -> tuple[int, Any]:
        """Grafana's rules for POST /api/dashboards/db without overwrite."""
        dashboard, folder = dict(body["dashboard"]), body.get("folderUid", "")
        uid = dashboard["uid"]
        if folder and folder not in self.folders:
            return 400, {"message": "folder not found"}
        stored = self.dashboards.get(uid)
        if (
            stored
            and not body.get("overwrite")
            and dashboard.get("version") != stored["dashboard"]["version"]
        ):
            return 412, {
                "status": "version-mismatch",
                "message": "The dashboard has been changed by someone else",
            }
        for other_uid, other in self.dashboards.items():
            same_title = other["dashboard"]["title"] == dashboard["title"] and other["folderUid"] == folder
            if other_uid != uid and same_title and not body.get("overwrite"):
                return 412, {
                    "status": "name-exists",
                    "message": "A dashboard with the same name in the folder already exists",
                }
        version = stored["dashboard"]["version"] + 1 if stored else 1
        dashboard.update(
            id=stored["dashboard"]["id"] if stored else len(self.dashboards) + 1, version=version
        )
        self.dashboards[uid] = {"dashboard": dashboard, "folderUid": folder}
        return 200, {"status": "success", "uid": uid, "version": version, "url": f"/d/{uid}"}


class FakeGrafanaHandler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, answer = 401, {"message": "invalid API key"}
        else:
            status, answer = self.server.answer(self.command, self.path, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _handle

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, name="fake-grafana", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def dashboard(uid: str, title: str, panels: int = 1) -> dict[str, Any]:
    return {"uid": uid, "title": title, "schemaVersion": 39, "panels": [{"id": n} for n in range(panels)]}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "dashboards"
    directory.mkdir()
    for uid, title in (("reallabor-energy", "Energy"), ("reallabor-fleet", "Fleet")):
        (directory / f"{uid}.json").write_text(json.dumps(dashboard(uid, title)))
    return directory


SPEC = DatasourceSpec(url="http://influxdb:8086", user="grafana", password="reader-password-0123456789")


def test_first_push_creates_everything_and_the_second_changes_nothing(
    grafana: FakeGrafana, folder: Path
) -> None:
    report = push(url=grafana.url, token=TOKEN, directory=folder, datasource=SPEC)
    assert (report.folder, report.datasource) == ("created", "created")
    assert report.dashboards == {"reallabor-energy": "created", "reallabor-fleet": "created"}
    assert report.ok
    assert grafana.folders["reallabor"]["title"] == "Reallabor"
    source = grafana.datasources["reallabor-influx"]
    assert (source["type"], source["url"], source["user"]) == ("influxdb", "http://influxdb:8086", "grafana")
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["jsonData"]["dbName"] == "reallabor"
    assert source["secureJsonData"] == {"password": "reader-password-0123456789"}
    assert grafana.dashboards["reallabor-fleet"]["folderUid"] == "reallabor"

    grafana.requests.clear()
    again = push(url=grafana.url, token=TOKEN, directory=folder, datasource=SPEC)
    assert (again.folder, again.datasource) == ("exists", "exists")
    assert again.dashboards == {"reallabor-energy": "unchanged", "reallabor-fleet": "unchanged"}
    assert grafana.writes() == []  # idempotent: no new versions in Grafana's history

    (folder / "reallabor-fleet.json").write_text(json.dumps(dashboard("reallabor-fleet", "Fleet", panels=3)))
    third = push(url=grafana.url, token=TOKEN, directory=folder, datasource=None)  # datasource exists
    assert third.dashboards == {"reallabor-energy": "unchanged", "reallabor-fleet": "updated"}
    stored = grafana.dashboards["reallabor-fleet"]["dashboard"]
    assert (len(stored["panels"]), stored["version"]) == (3, 2)


def test_a_wrong_token_is_named(
    grafana: FakeGrafana, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(GrafanaUnauthorized, match="401"):
        push(url=grafana.url, token="wrong", directory=folder, datasource=SPEC)
    code = main(["dashboards", "push", "--url", grafana.url, "--token", "wrong", "--dir", str(folder)])
    assert code == 1
    err = capsys.readouterr().err
    assert "refused the token (401 Unauthorized)" in err
    assert "wrong" not in err.replace("wrong or", "")  # the token is never printed
    assert grafana.folders == {}
    assert grafana.dashboards == {}


def test_a_version_conflict_fails_that_dashboard_only(
    grafana: FakeGrafana, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert push(url=grafana.url, token=TOKEN, directory=folder, datasource=SPEC).ok
    for uid in ("reallabor-energy", "reallabor-fleet"):
        changed = dashboard(uid, uid.title(), panels=2)
        (folder / f"{uid}.json").write_text(json.dumps(changed))
    grafana.saved_meanwhile.add("reallabor-energy")  # someone saves it in Grafana while we push
    report = push(url=grafana.url, token=TOKEN, directory=folder, datasource=SPEC)
    assert report.dashboards == {"reallabor-fleet": "updated"}
    assert "version conflict (412 version-mismatch" in report.failures["reallabor-energy"]
    assert "push again" in report.failures["reallabor-energy"]

    code = main(["dashboards", "push", "--url", grafana.url, "--token", TOKEN, "--dir", str(folder)])
    captured = capsys.readouterr()
    assert code == 1  # pushed again: the same editor saved again meanwhile
    assert "reallabor-energy: FAILED, version conflict" in captured.err
    assert "reallabor-fleet: unchanged" in captured.out


def test_a_title_taken_by_another_dashboard_is_named(grafana: FakeGrafana, folder: Path) -> None:
    grafana.folders["reallabor"] = {"uid": "reallabor", "title": "Reallabor", "id": 1}
    grafana.dashboards["hand-made"] = {
        "dashboard": {**dashboard("hand-made", "Energy"), "id": 9, "version": 4},
        "folderUid": "reallabor",
    }
    report = push(url=grafana.url, token=TOKEN, directory=folder, datasource=SPEC)
    assert report.dashboards == {"reallabor-fleet": "created"}
    assert "name-exists" in report.failures["reallabor-energy"]
    assert "titled 'Energy'" in report.failures["reallabor-energy"]


def test_an_unreachable_grafana_is_named(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    with pytest.raises(GrafanaUnreachable, match="unreachable"):
        push(url=url, token=TOKEN, directory=folder, datasource=SPEC, timeout=2)
    assert main(["dashboards", "push", "--url", url, "--token", TOKEN, "--dir", str(folder)]) == 1
    assert f"Grafana at {url} is unreachable" in capsys.readouterr().err


def test_a_missing_datasource_needs_its_address(grafana: FakeGrafana, folder: Path) -> None:
    with pytest.raises(PushError, match="--influx-url"):
        push(url=grafana.url, token=TOKEN, directory=folder, datasource=None)
    assert grafana.datasources == {}


def test_bad_files_stop_the_push_before_grafana(
    grafana: FakeGrafana, folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "reallabor-energy.json").write_text(json.dumps(dashboard("other-uid", "Energy")))
    with pytest.raises(DashboardFileError, match="must be the file's name"):
        push(url=grafana.url, token=TOKEN, directory=folder, datasource=SPEC)
    (folder / "reallabor-energy.json").write_text("{not json")
    assert main(["dashboards", "push", "--url", grafana.url, "--token", TOKEN, "--dir", str(folder)]) == 2
    assert "not a JSON file" in capsys.readouterr().err
    assert grafana.requests == []


def test_the_token_comes_from_the_environment(
    grafana: FakeGrafana, folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert main(["dashboards", "push", "--url", grafana.url, "--dir", str(folder)]) == 2
    assert "GRAFANA_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    monkeypatch.setenv("INFLUX_GRAFANA_PASSWORD", "reader-password-0123456789")
    args = [
        "dashboards",
        "push",
        "--url",
        grafana.url,
        "--dir",
        str(folder),
        "--influx-url",
        "http://influx:8086",
    ]
    assert main(args) == 0
    assert "reallabor-energy: created" in capsys.readouterr().out
    assert (
        grafana.datasources["reallabor-influx"]["secureJsonData"]["password"] == "reader-password-0123456789"
    )
