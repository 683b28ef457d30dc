"""Prometheus text exposition of the ingester's counters on a tiny asyncio HTTP endpoint (GET /metrics), and
its reading back (:func:`read_metrics`, for the tests and the benchmarks)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import httpx

log = logging.getLogger(__name__)

Sample = tuple[str, str, dict[str, str], float]  # name, type ("counter"/"gauge"), labels, value


_ESCAPE_LABEL = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def _label_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    pairs = (f'{key}="{value.translate(_ESCAPE_LABEL)}"' for key, value in sorted(labels.items()))
    return "{" + ",".join(pairs) + "}"


def exposition(samples: Iterable[Sample], *, prefix: str = "reallabor_ingest_") -> str:
    """Prometheus text format 0.0.4; one TYPE line per metric name."""
    lines: list[str] = []
    typed: set[str] = set()
    for name, kind, labels, value in samples:
        full = prefix + name
        if full not in typed:
            typed.add(full)
            lines.append(f"# TYPE {full} {kind}")
        lines.append(f"{full}{_label_text(labels)} {value:g}")
    return "\n".join(lines) + "\n"


def parse_exposition(text: str, *, prefix: str = "reallabor_ingest_") -> dict[str, float]:
    """:func:`exposition`'s text as {'name{labels}': value}, ``prefix`` removed from the names."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)  # a label value may hold spaces; the number never does
            values[name.removeprefix(prefix)] = float(value)
    return values


def read_metrics(port: int, *, host: str = "127.0.0.1", timeout: float = 5.0) -> dict[str, float]:
    """GET /metrics of a running ingester, parsed (raises httpx.HTTPError when it does not answer)."""
    response = httpx.get(f"http://{host}:{port}/metrics", timeout=timeout, trust_env=False)
    response.raise_for_status()
    return parse_exposition(response.text)


class MetricsServer:
    def __init__(self, collect: Callable[[], Iterable[Sample]], *, host: str, port: int) -> None:
        self.collect = collect
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%s/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if method != "GET":
                status, body, kind = "405 Method Not Allowed", b"GET only\n", "text/plain"
            elif path.split("?")[0] != "/metrics":
                status, body, kind = "404 Not Found", b"see /metrics\n", "text/plain"
            else:
                status, kind = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
                body = exposition(self.collect()).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()
