"""Writes over plain http go through the lean keep-alive client (ingest.http_post) and behave as through
httpx: the same points, the same errors (400 refused for good, 401/404/no answer: try again), Basic auth;
one connection is kept for all writes, and one the server closed meanwhile is replaced without an error.
Against the real InfluxDB; the answers InfluxDB does not give (chunked, delimited by the close, garbage)
from a few lines of asyncio server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from ingest.config import InfluxSettings
from ingest.http_post import HttpPostError, KeepAlivePoster
from ingest.influx import InfluxClient, InfluxRejected, InfluxUnavailable
from ingest.localservices import InfluxDB, free_port
from tests.helpers import InfluxQuery, Target

T0 = 1_764_320_400_000_000_000


def lines(start: int, count: int) -> bytes:
    return b"".join(
        b"keepalive,device=d%d power_w=%d.5 %d\n" % (i % 3, i, T0 + i) for i in range(start, start + count)
    )


def test_writes_share_one_kept_connection_and_read_back(target: Target, influx: InfluxQuery) -> None:
    async def go() -> int | None:
        client = InfluxClient(InfluxSettings(url=target.influx_url, database=target.database))
        try:
            await client.ensure_database()
            for start in range(0, 200, 10):
                await client.write(lines(start, 10))
            return client.write_connections
        finally:
            await client.close()

    assert asyncio.run(go()) == 1
    assert influx.count("keepalive", "power_w") == 200


def test_refusals_and_outages_map_as_through_httpx(target: Target) -> None:
    async def go() -> tuple[InfluxRejected, InfluxUnavailable, InfluxUnavailable]:
        client = InfluxClient(InfluxSettings(url=target.influx_url, database=target.database))
        missing = InfluxClient(InfluxSettings(url=target.influx_url, database=target.database + "_missing"))
        away = InfluxClient(InfluxSettings(url=f"http://127.0.0.1:{free_port()}", database="x", timeout_s=2))
        try:
            await client.ensure_database()
            await client.write(b"conflict value=1i 1\n")
            with pytest.raises(InfluxRejected) as refused:
                await client.write(b"conflict value=1.5 2\nconflict value=2i 3\n")
            with pytest.raises(InfluxUnavailable) as not_found:
                await missing.write(lines(0, 1))
            with pytest.raises(InfluxUnavailable) as unreachable:
                await away.write(lines(0, 1))
            return refused.value, not_found.value, unreachable.value
        finally:
            for each in (client, missing, away):
                await each.close()

    refused, not_found, unreachable = asyncio.run(go())
    assert "field type conflict" in str(refused)
    assert not_found.status == 404
    assert "database not found" in str(not_found)
    assert unreachable.status is None  # no answer: the ingester probes /ping


def test_basic_auth_and_a_connection_the_server_closed(tmp_path: Path) -> None:
    with InfluxDB(tmp_path / "influxdb", auth=True) as server:
        httpx.post(
            f"{server.url}/query",
            data={"q": "CREATE USER admin WITH PASSWORD 'sekret' WITH ALL PRIVILEGES"},
            trust_env=False,
        ).raise_for_status()
        settings = InfluxSettings(url=server.url, database="auth", username="admin", password="sekret")
        wrong = settings.model_copy(update={"password": "wrong"})

        async def go(between: Callable[[], Awaitable[None]]) -> tuple[int | None, InfluxUnavailable]:
            client, intruder = (
                InfluxClient(settings),
                InfluxClient(InfluxSettings.model_validate(wrong.model_dump())),
            )
            try:
                await client.ensure_database()
                await client.write(lines(0, 5))
                await between()  # the kept connection dies with the server
                await client.write(lines(5, 5))  # no error: a new connection
                with pytest.raises(InfluxUnavailable) as denied:
                    await intruder.write(lines(10, 1))
                return client.write_connections, denied.value
            finally:
                await client.close()
                await intruder.close()

        async def restart() -> None:
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)

        connections, denied = asyncio.run(go(restart))
        counted = InfluxQuery(server.url, "auth", auth=("admin", "sekret")).count("keepalive", "power_w")
    assert connections == 2
    assert counted == 10
    assert denied.status == 401


async def answering(answer: bytes, request: Callable[[KeepAlivePoster], Awaitable[object]]) -> object:
    """``request`` against a server that reads one request and sends ``answer`` (then closes)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    poster = KeepAlivePoster(f"http://127.0.0.1:{port}/base", timeout_s=2)
    try:
        return await request(poster)
    finally:
        await poster.close()
        server.close()


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        (
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            400,
            b"hello world",
        ),
        (b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nuntil the end", 500, b"until the end"),
        (b"HTTP/1.0 204 No Content\r\n\r\n", 204, b""),
    ],
)
def test_answers_influxdb_may_give(answer: bytes, status: int, body: bytes) -> None:
    response = asyncio.run(
        answering(answer, lambda poster: poster.post("/write", b"x 1\n", query={"db": "a b"}))
    )
    assert (response.status, response.body) == (status, body)  # type: ignore[attr-defined]


def test_what_is_not_an_answer_is_an_error() -> None:
    for answer in (b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"):
        with pytest.raises(HttpPostError):
            asyncio.run(answering(answer, lambda poster: poster.post("/write", b"x 1\n")))


def test_the_request_carries_path_query_headers_and_body() -> None:
    poster = KeepAlivePoster(
        "http://user@127.0.0.1:8086/influx/", timeout_s=1, headers={"Authorization": "Token t"}
    )
    request = poster.request_bytes("/write", {"db": "a b", "precision": "ns"}, b"m v=1 1\n", {"X-A": "1"})
    assert request == (
        b"POST /influx/write?db=a+b&precision=ns HTTP/1.1\r\n"
        b"Host: 127.0.0.1:8086\r\nAuthorization: Token t\r\nX-A: 1\r\nContent-Length: 8\r\n\r\nm v=1 1\n"
    )
    with pytest.raises(ValueError, match="plain http"):
        KeepAlivePoster("https://influx.example.org", timeout_s=1)


def test_a_request_that_ends_after_close_does_not_keep_its_connection(target: Target) -> None:
    async def go() -> int:
        poster = KeepAlivePoster(target.influx_url, timeout_s=5)
        write = asyncio.create_task(poster.post("/write", lines(0, 1), query={"db": target.database}))
        await asyncio.sleep(0)  # the request is on its way
        await poster.close()
        response = await write
        assert response.status == 404  # answered (no such database): the connection could be kept
        return len(poster._idle)

    assert asyncio.run(go()) == 0
