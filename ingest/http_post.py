"""A lean HTTP/1.1 client for one request only: POST a body over plain-HTTP keep-alive connections.

Why: the ingester writes a batch to InfluxDB a few times a second. Through httpx (httpcore, anyio, h11) one
such POST of 250 lines cost 1.75 ms of the ingester's CPU; the same bytes over an asyncio stream 0.3 ms
(both with the wake-up of the loop; same machine, same InfluxDB). At a trickle that was the largest cost
per batch (bench.live_cost). Everything else, TLS included, stays with httpx (:mod:`ingest.influx`).

What it speaks: a request with ``Content-Length``; responses with ``Content-Length``, ``chunked``, or
neither (read until the server closes); ``Connection: close`` honoured. Connections are kept and reused
(one per request in flight). A kept connection the server has closed meanwhile (an idle timeout) is
noticed by the request failing before any answer came: that request goes once more on a new connection.

Errors: :class:`HttpPostError` when no complete answer came (cannot connect, connection lost, timeout,
not HTTP); an answer with any status is returned, not raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 << 10  # status line and headers of an answer


class HttpPostError(Exception):
    """No complete answer."""


@dataclass(frozen=True, slots=True)
class PostResponse:
    status: int
    headers: Mapping[str, str]  # names in lower case (a repeated header: the last)
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _StaleConnection(Exception):
    """A kept connection failed before any answer came: the server had closed it."""


@dataclass(eq=False, slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()

    async def exchange(self, request: bytes, *, kept: bool) -> tuple[PostResponse, bool]:
        """Send ``request``; the answer, and whether the connection can be used again."""
        try:
            self.writer.write(request)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if kept and not getattr(exc, "partial", b""):
                raise _StaleConnection(str(exc) or type(exc).__name__) from exc
            raise
        status, headers = _parse_head(head)
        reusable = headers.get("connection", "").lower() != "close"
        if status in (204, 304) or 100 <= status < 200:
            return PostResponse(status, headers, b""), reusable
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        elif "content-length" in headers:
            length = _int(headers["content-length"], 10, "Content-Length")
            body = await self.reader.readexactly(length)
        else:  # delimited by the end of the connection
            body, reusable = await self.reader.read(), False
        return PostResponse(status, headers, body), reusable

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = await self.reader.readuntil(b"\r\n")
            size = _int(line.split(b";", 1)[0].strip().decode("latin-1"), 16, "chunk size")
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the empty line
                    pass
                return b"".join(parts)
            parts.append((await self.reader.readexactly(size + 2))[:-2])


def _int(text: str, base: int, what: str) -> int:
    try:
        value = int(text, base)
    except ValueError:
        value = -1
    if value < 0:
        raise HttpPostError(f"bad {what} in the answer: {text!r}")
    return value


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpPostError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


class KeepAlivePoster:
    """POSTs to ``url`` (``http://host[:port][/base path]``), reusing connections.

    ``headers`` go with every request (e.g. Authorization); ``timeout_s`` bounds each request, connecting
    included.
    """

    def __init__(self, url: str, *, timeout_s: float, headers: Mapping[str, str] | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"KeepAlivePoster speaks plain http://host only, not {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._base_path = parts.path.rstrip("/")
        authority = parts.netloc.rpartition("@")[2]
        fixed = {"Host": authority, **(headers or {})}
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self.timeout_s = timeout_s
        self._idle: list[_Connection] = []
        self._closed = False  # a request that ends after close() does not keep its connection
        self.connections_opened = 0  # for tests and benchmarks

    def request_bytes(
        self, path: str, query: Mapping[str, str], body: bytes, headers: Mapping[str, str]
    ) -> bytes:
        target = self._base_path + path + ("?" + urllib.parse.urlencode(query) if query else "")
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"POST {target} HTTP/1.1\r\n{self._fixed_headers}{extra}Content-Length: {len(body)}\r\n\r\n"
        return head.encode("latin-1") + body

    async def post(
        self,
        path: str,
        body: bytes,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PostResponse:
        request = self.request_bytes(path, query or {}, body, headers or {})
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    kept = bool(self._idle)
                    connection = self._idle.pop() if kept else await self._connect()
                    try:
                        response, reusable = await connection.exchange(request, kept=kept)
                    except _StaleConnection:
                        connection.close()
                        continue  # the next kept one, or a new connection
                    except BaseException:  # cancelled or failed midway: its state is unknown
                        connection.close()
                        raise
                    if reusable and not self._closed:
                        self._idle.append(connection)
                    else:
                        connection.close()
                    return response
        except TimeoutError as exc:
            raise HttpPostError(f"no answer within {self.timeout_s} s") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise HttpPostError(f"{type(exc).__name__}: {exc}") from exc

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port, limit=MAX_HEAD_BYTES)
        self.connections_opened += 1
        return _Connection(reader, writer)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        for connection in idle:
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
