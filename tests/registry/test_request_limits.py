"""Request body limits, against the real app: ``reallabor api`` served by uvicorn in a child process, whose
memory (``/proc/<pid>/status``) is read around each request.

Bodies are streamed from a raw socket, a piece at a time, and sending stops as soon as the server answers:
the test never holds a large body, and "refused before reading" shows as the few MiB that the socket
buffers took before the answer came, not the 200 MiB offered.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from ingest.api.limits import DEFAULT_LIMIT, IMPORT_LIMIT
from ingest.api.security import TokenSigner
from ingest.dynsec import DynsecAdmin
from ingest.localservices import LOOPBACK
from ingest.registry.models import Role
from tests.registry import factories as f
from tests.registry.api_process import ApiProcess, registry_with_users, running_api
from tests.registry.world import OPERATOR, World

pytestmark = [pytest.mark.registry, pytest.mark.integration]

MIB = 1024 * 1024
BIG = 200 * MIB
PIECE = 256 * 1024
MAX_GROWTH = 20 * MIB  # the server's peak RSS may grow by less than this while refusing a big body
MAX_SENT = 48 * MIB  # what the socket buffers can take before the answer is read (loopback autotuning)
V1 = "/api/v1"


# ---------------------------------------------------------------- the server in a child process


@dataclass
class Server(ApiProcess):
    token: str = ""  # an operator's session


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``reallabor api`` on a free port, with an operator in its SQLite registry; ``token`` is theirs."""
    root = tmp_path_factory.mktemp("api-process")
    url, (username,) = registry_with_users(root, [Role.operator])
    with running_api(root, url) as api:
        login = httpx.post(
            f"{api.url}{V1}/auth/login",
            json={"username": username, "password": f.PASSWORD},
            timeout=30,
            trust_env=False,
        )
        assert login.status_code == 200, login.text
        yield Server(
            process=api.process, port=api.port, secret_key=api.secret_key, token=login.json()["access_token"]
        )


# ---------------------------------------------------------------- a raw HTTP client that stops sending


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes sent before the answer arrived

    def json(self) -> dict[str, object]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


def _read_answer(sock: socket.socket, sent: int) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed without an answer after {sent} body bytes: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Answer(status=int(status_line.split()[1]), headers=headers, body=rest[:length], sent=sent)


def exchange(port: int, head: str, body: Iterator[bytes], *, deadline_s: float = 120) -> Answer:
    """Send ``head``, then ``body`` piece by piece until the server answers (or the body ends)."""
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        sock.setblocking(False)
        sent, pending = 0, b""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if not pending:
                pending = next(body, b"")
                if not pending:
                    break
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if writable:
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent, pending = sent + n, pending[n:]
        sock.setblocking(True)
        sock.settimeout(max(5.0, deadline - time.monotonic()))
        return _read_answer(sock, sent)


def json_body(size: int) -> Iterator[bytes]:
    """A valid JSON building of ``size`` bytes: a name and very long notes, made a piece at a time."""
    start, end = b'{"name": "Haus", "notes": "', b'"}'
    filler = size - len(start) - len(end)
    yield start
    while filler > 0:
        n = min(PIECE, filler)
        yield b"a" * n
        filler -= n
    yield end


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """``pieces`` in HTTP/1.1 chunked transfer coding."""
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def request_head(method: str, path: str, headers: dict[str, str]) -> str:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {LOOPBACK}", *(f"{k}: {v}" for k, v in headers.items())]
    return "\r\n".join(lines) + "\r\n\r\n"


def measured(server: Server, head: str, body: Iterator[bytes]) -> tuple[Answer, int]:
    """The answer and how much the server's peak RSS grew over its RSS before the request."""
    before = server.status("VmRSS")
    server.reset_peak()
    answer = exchange(server.port, head, body)
    return answer, server.status("VmHWM") - before


def multipart(
    csv_size: int, *, csrf: str = "c" * 43, boundary: str = "reallabor-test-boundary"
) -> tuple[str, Iterator[bytes], int]:
    """A CSV upload of ``csv_size`` bytes as multipart/form-data: content type, pieces, total length."""
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    end = f"\r\n--{boundary}--\r\n".encode()

    def pieces() -> Iterator[bytes]:
        yield start + b"gateway,native_id,profile\n"
        left = csv_size - len(b"gateway,native_id,profile\n")
        while left > 0:
            line = b"gw,dev,generic-json\n"[: min(20, left)]
            block = line * min(PIECE // len(line), max(1, left // len(line)))
            block = block[:left]
            yield block
            left -= len(block)
        yield end

    return f"multipart/form-data; boundary={boundary}", pieces(), len(start) + csv_size + len(end)


# ---------------------------------------------------------------- the tests


def test_big_json_body_without_credentials_is_refused_before_it_is_read(server: Server) -> None:
    head = request_head(
        "POST", f"{V1}/buildings", {"Content-Type": "application/json", "Content-Length": str(BIG)}
    )
    answer, growth = measured(server, head, json_body(BIG))
    assert answer.status == 413, (answer.status, answer.body[:200], f"sent {answer.sent / MIB:.0f} MiB")
    assert "larger than" in str(answer.json()["detail"])
    assert answer.sent < MAX_SENT, f"the server read {answer.sent / MIB:.0f} MiB before answering"
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.0f} MiB"


def test_chunked_body_without_length_is_cut_off_at_the_limit(server: Server) -> None:
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    answer, growth = measured(
        server, request_head("POST", f"{V1}/buildings", headers), chunked(json_body(BIG))
    )
    assert answer.status == 413, (answer.status, answer.body[:200], f"sent {answer.sent / MIB:.0f} MiB")
    assert "larger than" in str(answer.json()["detail"])
    assert answer.sent < MAX_SENT
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.0f} MiB"


def test_chunked_body_with_a_valid_token_is_cut_off_too(server: Server) -> None:
    headers = {
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
        "Authorization": f"Bearer {server.token}",
    }
    answer, growth = measured(
        server, request_head("POST", f"{V1}/buildings", headers), chunked(json_body(BIG))
    )
    assert answer.status == 413, (answer.status, answer.body[:200])
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.0f} MiB"


def test_csv_upload_gets_its_larger_limit_only_with_a_session(server: Server) -> None:
    """Anonymous: the small default limit applies before anything is read; with a session the upload
    limit; beyond that 413 again."""
    content_type, pieces, length = multipart(DEFAULT_LIMIT * 4)
    anonymous = request_head(
        "POST", "/tech/import", {"Content-Type": content_type, "Content-Length": str(length)}
    )
    answer = exchange(server.port, anonymous, pieces)
    assert answer.status == 413, (answer.status, answer.body[:200])

    cookies = f"reallabor_session={server.token}"
    csrf = TokenSigner(server.secret_key).csrf_token(server.token)  # the session's, as its pages give it
    content_type, pieces, length = multipart(DEFAULT_LIMIT * 4, csrf=csrf)
    with_session = request_head(
        "POST",
        "/tech/import",
        {"Content-Type": content_type, "Content-Length": str(length), "Cookie": cookies},
    )
    answer = exchange(server.port, with_session, pieces)
    assert answer.status == 422, (answer.status, answer.body[:300])  # read and answered with a report
    assert answer.headers["content-type"].startswith("text/html")

    content_type, pieces, length = multipart(BIG, csrf=csrf)
    too_big = request_head(
        "POST",
        "/tech/import",
        {"Content-Type": content_type, "Content-Length": str(length), "Cookie": cookies},
    )
    answer, growth = measured(server, too_big, pieces)
    assert answer.status == 413, (answer.status, answer.body[:200])
    assert str(IMPORT_LIMIT // 1024) in str(answer.json()["detail"])
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / MIB:.0f} MiB"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_largest_legitimate_json_body_passes(
    api: TestClient, session: Session, broker_admin: DynsecAdmin
) -> None:
    """4,000 characters of notes, each an emoji that a client escapes as a surrogate pair (12 bytes)."""
    world = World.build(api, session, broker_admin)
    house, smiles = "\\ud83c\\udfe0" * 200, "\\ud83d\\ude00" * 4000
    body = f'{{"name": "Haus {f.tag()}", "address": "{house}", "notes": "{smiles}"}}'
    assert len(body) > 48 * 1024
    response = api.post(
        f"{V1}/buildings",
        content=body.encode(),
        headers={**world.headers(OPERATOR), "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text[:300]
    assert response.json()["notes"] == "\U0001f600" * 4000


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_forged_session_gets_the_default_limit(api: TestClient) -> None:
    """The larger upload limit needs a token the app signed: anything else is an anonymous client."""
    api.cookies.clear()
    csv = b"gateway,native_id,profile\n" + b"gw,dev,generic-json\n" * (DEFAULT_LIMIT // 20 + 1)
    for cookie in ("forged", "a" * 5000):
        api.cookies.set("reallabor_session", cookie)
        response = api.post("/tech/import", files={"file": ("d.csv", csv, "text/csv")})
        assert response.status_code == 413, (cookie[:10], response.status_code)
        assert "logged-in user" in response.json()["detail"]
