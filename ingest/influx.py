"""InfluxDB adapter: line-protocol writes and InfluxQL queries over HTTP, v1 and v2 APIs.

Why not influxdb-client: it speaks only the v2 API (``/api/v2/write``), which InfluxDB 1.6 (Debian's, the
one that runs here) does not have; we need v1 ``/write`` as well, and one async HTTP client does both.

Errors (only these leave the module)::

    InfluxError
    ├── InfluxUnavailable   retry later (connection refused, timeout, 5xx, 429, 401/403/404)
    └── InfluxRejected      the server refused (part of) the data for good (400); retrying cannot help
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from ingest.config import InfluxSettings
from ingest.http_post import HttpPostError, KeepAlivePoster, PostResponse

log = logging.getLogger(__name__)


class InfluxError(Exception):
    pass


class InfluxUnavailable(InfluxError):
    """Try again later. ``status`` is the HTTP status InfluxDB answered with; None: no answer at all."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class InfluxRejected(InfluxError):
    """HTTP 400: InfluxDB's error text is kept; with v1 the valid lines of the batch were written."""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class InfluxClient:
    def __init__(
        self, settings: InfluxSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        headers: dict[str, str] = {}
        auth: httpx.BasicAuth | None = None
        if settings.api == "v2":
            token = settings.token.get_secret_value() if settings.token else ""
            headers["Authorization"] = f"Token {token}"
            self._write_path = "/api/v2/write"
            self._write_params = {
                "org": settings.org or "",
                "bucket": settings.bucket or "",
                "precision": "ns",
            }
        else:
            if settings.username:
                password = settings.password.get_secret_value() if settings.password else ""
                auth = httpx.BasicAuth(settings.username, password)
            self._write_path = "/write"
            self._write_params = {"db": settings.database, "precision": "ns"}
            if settings.retention_policy:
                self._write_params["rp"] = settings.retention_policy
        self.gzip = settings.gzip if settings.gzip is not None else not _is_loopback(settings.url)
        self._http = httpx.AsyncClient(
            base_url=settings.url,
            headers=headers,
            auth=auth,
            timeout=settings.timeout_s,
            trust_env=False,
            transport=transport,
        )
        # writes over plain http go through the lean client (a fraction of httpx's CPU per request);
        # TLS, a test's transport, queries and /ping stay with httpx
        self._poster: KeepAlivePoster | None = None
        if transport is None and httpx.URL(settings.url).scheme == "http":
            fixed = dict(headers)
            if settings.api == "v1" and settings.username:
                password = settings.password.get_secret_value() if settings.password else ""
                userpass = base64.b64encode(f"{settings.username}:{password}".encode()).decode()
                fixed["Authorization"] = f"Basic {userpass}"
            self._poster = KeepAlivePoster(settings.url, timeout_s=settings.timeout_s, headers=fixed)

    @property
    def write_connections(self) -> int | None:
        """Connections opened for writes so far (None: writes go through httpx)."""
        return self._poster.connections_opened if self._poster is not None else None

    async def close(self) -> None:
        if self._poster is not None:
            await self._poster.close()
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def ping(self) -> None:
        response = await self._request("GET", "/ping")
        if response.status_code >= 300:
            raise InfluxUnavailable(f"ping: HTTP {response.status_code}", status=response.status_code)

    async def ensure_database(self) -> None:
        """v1: CREATE DATABASE (idempotent). v2: nothing; buckets are provisioned by the operator."""
        if self.settings.api == "v1" and self.settings.create_database:
            name = self.settings.database.replace("\\", "\\\\").replace('"', '\\"')
            await self.query(f'CREATE DATABASE "{name}"', method="POST")

    async def write(self, body: bytes) -> None:
        """Write line protocol; raises InfluxUnavailable (retry) or InfluxRejected (give up)."""
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            body = await asyncio.to_thread(gzip.compress, body, 1)
            headers["Content-Encoding"] = "gzip"
        answer: httpx.Response | PostResponse
        if self._poster is not None:
            try:
                answer = await self._poster.post(
                    self._write_path, body, query=self._write_params, headers=headers
                )
            except HttpPostError as exc:
                raise InfluxUnavailable(f"POST {self._write_path}: {exc}") from exc
            status = answer.status
        else:
            answer = await self._request(
                "POST", self._write_path, params=self._write_params, content=body, headers=headers
            )
            status = answer.status_code
        if status < 300:
            return
        text = answer.text.strip()[:2000]
        if status == 400 or status == 422:
            raise InfluxRejected(text)
        raise InfluxUnavailable(
            f"write: HTTP {status}: {text}", retry_after=_retry_after(answer.headers), status=status
        )

    async def query(self, influxql: str, *, database: str | None = None, method: str = "GET") -> list[Any]:
        """Run InfluxQL; returns the ``results`` list, raising InfluxError on a statement error."""
        params = {"q": influxql, "epoch": "ns"}
        if database or self.settings.api == "v1":
            params["db"] = database or self.settings.database
        if method == "POST":
            response = await self._request("POST", "/query", data=params)
        else:
            response = await self._request("GET", "/query", params=params)
        if response.status_code >= 500 or response.status_code == 429:
            raise InfluxUnavailable(
                f"query: HTTP {response.status_code}",
                retry_after=_retry_after(response.headers),
                status=response.status_code,
            )
        payload = response.json() if response.content else {}
        if response.status_code >= 300 or "error" in payload:
            raise InfluxError(f"query {influxql!r}: HTTP {response.status_code}: {payload.get('error', '')}")
        results: list[Any] = payload.get("results", [])
        for result in results:
            if "error" in result:
                raise InfluxError(f"query {influxql!r}: {result['error']}")
        return results


def _is_loopback(url: str) -> bool:
    """Over loopback compression only costs CPU on both ends (~1 µs per point at level 1)."""
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
