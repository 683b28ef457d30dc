"""``reallabor dashboards push``: the dashboards as code into a running Grafana, over its HTTP API.

Plain httpx against the six endpoints a push needs (folders, datasources, dashboards by uid). Not
grafana-client: every release since 4.x depends on niquests, whose urllib3-future replaces the
``urllib3`` module in the environment; installed here it broke requests-based tools (schemathesis:
``AttributeError: 'TrafficPolice' object has no attribute 'keys'`` in the registry's fuzz test).
Errors, translated where they enter::

    PushError                 anything that stops the push or a dashboard (message for the operator)
    ├── GrafanaUnreachable    no answer: refused, DNS, TLS, timeout (the whole push stops)
    ├── GrafanaUnauthorized   401: the token is wrong or expired (the whole push stops)
    ├── VersionConflict       412: the dashboard changed in Grafana meanwhile, or another dashboard in the
    │                         folder has its title (that dashboard fails, the others go on)
    ├── GrafanaRefused        any other refusal (403 role too small, 400 a provisioned dashboard ...)
    └── DashboardFileError    a JSON file that is no dashboard of ours (nothing is sent then)

What a push does, idempotently: the folder "Reallabor" (uid ``reallabor``) and the InfluxQL datasource
``reallabor-influx`` are created when missing (an existing datasource is left as the operator set it);
every ``<uid>.json`` of the directory is uploaded into the folder, by its uid: a dashboard that is the
same in Grafana already is left alone (no new version in its history), one that differs is overwritten
with the version Grafana holds (so a save in between is a conflict, not lost silently).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FOLDER_UID = "reallabor"
FOLDER_TITLE = "Reallabor"
DATASOURCE_UID = "reallabor-influx"
DATASOURCE_NAME = "Reallabor InfluxDB"
DATABASE = "reallabor"
MESSAGE = "reallabor dashboards push"


class PushError(Exception):
    """The push (or one dashboard) failed; the message says what and what to do."""


class GrafanaUnreachable(PushError):
    pass


class GrafanaUnauthorized(PushError):
    pass


class VersionConflict(PushError):
    pass


class GrafanaRefused(PushError):
    pass


class DashboardFileError(PushError):
    pass


@dataclass(frozen=True)
class DatasourceSpec:
    """The datasource to create when Grafana has none with uid ``reallabor-influx``: InfluxQL against
    ``database`` (InfluxDB 2: the DBRP mapping's database), logged in as ``user``/``password`` (a v1
    user, e.g. ``grafana`` of deploy/influx2/10-dbrp.sh) or with a v2 ``token``, or not at all."""

    url: str
    database: str = DATABASE
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def body(self) -> dict[str, Any]:
        json_data: dict[str, Any] = {"version": "InfluxQL", "dbName": self.database, "httpMode": "POST"}
        secure: dict[str, str] = {}
        body: dict[str, Any] = {
            "uid": DATASOURCE_UID,
            "name": DATASOURCE_NAME,
            "type": "influxdb",
            "access": "proxy",
            "url": self.url,
            "database": self.database,
            "jsonData": json_data,
        }
        if self.user:
            body["user"] = self.user
        if self.password:
            secure["password"] = self.password
        if self.token:
            json_data["httpHeaderName1"] = "Authorization"
            secure["httpHeaderValue1"] = f"Token {self.token}"
        if secure:
            body["secureJsonData"] = secure
        return body


@dataclass
class PushReport:
    url: str
    folder: str = ""  # "created" or "exists"
    datasource: str = ""  # "created" or "exists"
    dashboards: dict[str, str] = field(default_factory=dict)  # uid -> created, updated, unchanged
    failures: dict[str, str] = field(default_factory=dict)  # uid -> what went wrong

    @property
    def ok(self) -> bool:
        return not self.failures


def load_dashboards(directory: Path) -> dict[str, dict[str, Any]]:
    """Every ``<uid>.json`` of ``directory`` by uid; :class:`DashboardFileError` names a bad file."""
    if not directory.is_dir():
        raise DashboardFileError(f"{directory}: no such directory")
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DashboardFileError(f"{path}: not a JSON file ({exc})") from None
        if not isinstance(dashboard, dict):
            raise DashboardFileError(f"{path}: a dashboard is a JSON object")
        if "dashboard" in dashboard and "uid" not in dashboard:
            raise DashboardFileError(
                f"{path}: an API envelope ({{'dashboard': ...}}); keep the dashboard only"
            )
        uid, title = dashboard.get("uid"), dashboard.get("title")
        if uid != path.stem:
            raise DashboardFileError(f"{path}: uid {uid!r} must be the file's name ({path.stem!r})")
        if not isinstance(title, str) or not title:
            raise DashboardFileError(f"{path}: no title")
        found[uid] = dashboard
    if not found:
        raise DashboardFileError(f"{directory}: no dashboards (*.json)")
    return found


def _comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
    """A dashboard without what Grafana assigns (id, version)."""
    return {key: value for key, value in dashboard.items() if key not in ("id", "version")}


class GrafanaPusher:
    """One Grafana, one token; :meth:`push` does the whole job."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            trust_env=False,
        )

    def close(self) -> None:
        self.http.close()

    def _call(
        self, what: str, method: str, path: str, *, body: object = None, missing_ok: bool = False
    ) -> Any:
        """The answer's JSON, Grafana's refusals translated; None for a 404 when ``missing_ok``."""
        try:
            response = self.http.request(method, path, json=body)
        except httpx.TimeoutException as exc:
            raise GrafanaUnreachable(f"Grafana at {self.url} did not answer in time ({exc})") from None
        except httpx.HTTPError as exc:  # no HTTP answer at all: refused, DNS, TLS
            raise GrafanaUnreachable(f"Grafana at {self.url} is unreachable: {exc}") from None
        code = response.status_code
        if code < 400:
            return response.json() if response.content else None
        if code == 404 and missing_ok:
            return None
        detail = _message(_json_or_text(response))
        if code == 401:
            raise GrafanaUnauthorized(
                f"Grafana at {self.url} refused the token (401 Unauthorized) while it {what}: give a valid "
                "service account token (--token or $GRAFANA_TOKEN), role Editor, or Admin to create the "
                "datasource"
            )
        if code == 412:
            raise VersionConflict(f"version conflict (412 {detail})")
        if code == 403:
            raise GrafanaRefused(
                f"Grafana refused while it {what} (403 {detail}): the token's role may not do this"
            )
        if code >= 500:
            raise GrafanaRefused(f"Grafana failed while it {what} ({code} {detail})")
        raise GrafanaRefused(f"Grafana refused while it {what} ({code} {detail})")

    def ensure_folder(self) -> str:
        if self._call("read the folder", "GET", f"/api/folders/{FOLDER_UID}", missing_ok=True):
            return "exists"
        self._call(
            "created the folder", "POST", "/api/folders", body={"title": FOLDER_TITLE, "uid": FOLDER_UID}
        )
        return "created"

    def ensure_datasource(self, spec: DatasourceSpec | None) -> str:
        found = self._call(
            "read the datasource", "GET", f"/api/datasources/uid/{DATASOURCE_UID}", missing_ok=True
        )
        if found:
            return "exists"
        if spec is None:
            raise PushError(
                f"Grafana has no datasource {DATASOURCE_UID!r}: give --influx-url (and the reader's "
                "credentials) to create it"
            )
        self._call("created the datasource", "POST", "/api/datasources", body=spec.body())
        return "created"

    def push_dashboard(self, uid: str, dashboard: dict[str, Any]) -> str:
        existing = self._call(f"read dashboard {uid}", "GET", f"/api/dashboards/uid/{uid}", missing_ok=True)
        body: dict[str, Any] = {"folderUid": FOLDER_UID, "overwrite": False, "message": MESSAGE}
        ours = {**_comparable(dashboard), "id": None}
        if isinstance(existing, dict):
            theirs = existing.get("dashboard", {})
            in_folder = existing.get("meta", {}).get("folderUid") == FOLDER_UID
            if in_folder and _comparable(theirs) == _comparable(dashboard):
                return "unchanged"
            ours["id"] = theirs.get("id")
            ours["version"] = theirs.get("version")  # a save since we read it is a conflict
        body["dashboard"] = ours
        try:
            self._call(f"saved dashboard {uid}", "POST", "/api/dashboards/db", body=body)
        except VersionConflict as exc:
            raise VersionConflict(
                f"{exc}: it changed in Grafana while this push ran, or another dashboard in the folder "
                f"{FOLDER_TITLE} is titled {dashboard['title']!r}; push again, or rename or delete the other"
            ) from None
        return "updated" if existing else "created"

    def push(self, directory: Path, *, datasource: DatasourceSpec | None) -> PushReport:
        dashboards = load_dashboards(directory)  # a bad file stops the push before Grafana is touched
        report = PushReport(url=self.url)
        report.folder = self.ensure_folder()
        report.datasource = self.ensure_datasource(datasource)
        for uid, dashboard in dashboards.items():
            try:
                report.dashboards[uid] = self.push_dashboard(uid, dashboard)
            except (VersionConflict, GrafanaRefused) as exc:
                report.failures[uid] = str(exc)
        return report


def _json_or_text(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text


def _message(response: object) -> str:
    if isinstance(response, dict) and response.get("message"):
        status = f"{response['status']}: " if response.get("status") else ""
        return f"{status}{response['message']}"
    return str(response)[:200]


def push(
    *, url: str, token: str, directory: Path, datasource: DatasourceSpec | None, timeout: float = 10.0
) -> PushReport:
    """Folder, datasource when missing, then every dashboard of ``directory``: see the module docstring."""
    pusher = GrafanaPusher(url, token, timeout=timeout)
    try:
        return pusher.push(directory, datasource=datasource)
    finally:
        pusher.close()
