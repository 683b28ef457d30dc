"""The v2 write API (InfluxDB 2.x/3.x), which cannot run here, against a fake that implements its interface.

The fake follows the documented /api/v2/write contract: token auth, org + bucket + precision in the
query, gzip bodies, 204 on success, 401 without a valid token, 404 for an unknown bucket, 400 with a JSON
error for unparsable lines, 429/503 with Retry-After when overloaded.
"""

from __future__ import annotations

import asyncio
import gzip

import httpx
import pytest

from ingest.config import InfluxSettings
from ingest.influx import InfluxClient, InfluxRejected, InfluxUnavailable

TOKEN = "test-token-123"


class FakeV2:
    def __init__(self) -> None:
        self.written: list[str] = []
        self.overloaded = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v2/write" or request.method != "POST":
            return httpx.Response(404, json={"code": "not found", "message": "path not found"})
        if request.headers.get("Authorization") != f"Token {TOKEN}":
            return httpx.Response(401, json={"code": "unauthorized", "message": "unauthorized access"})
        params = request.url.params
        if params.get("org") != "lab" or params.get("bucket") != "readings":
            return httpx.Response(404, json={"code": "not found", "message": "bucket not found"})
        if self.overloaded:
            return httpx.Response(503, headers={"Retry-After": "7"}, json={"code": "unavailable"})
        assert params.get("precision") == "ns"
        body = request.content
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        lines = body.decode().splitlines()
        if any(" " not in line for line in lines):
            return httpx.Response(400, json={"code": "invalid", "message": "unable to parse line"})
        self.written.extend(lines)
        return httpx.Response(204)


def client(fake: FakeV2, **overrides: object) -> InfluxClient:
    values: dict[str, object] = {
        "url": "http://127.0.0.1:8086",
        "api": "v2",
        "org": "lab",
        "bucket": "readings",
    }
    values["token"] = TOKEN
    values.update(overrides)
    return InfluxClient(InfluxSettings.model_validate(values), transport=httpx.MockTransport(fake.handle))


def run(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]


def test_v2_write_with_token_org_bucket_and_gzip() -> None:
    fake = FakeV2()
    run(client(fake).write(b"electricity,device=d1 power_w=1 5\n"))
    assert fake.written == ["electricity,device=d1 power_w=1 5"]


def test_v2_without_gzip() -> None:
    fake = FakeV2()
    run(client(fake, gzip=False).write(b"m f=1 1\n"))
    assert fake.written == ["m f=1 1"]


def test_v2_errors_map_to_retry_or_reject() -> None:
    fake = FakeV2()
    with pytest.raises(InfluxUnavailable, match="401"):
        run(client(fake, token="wrong").write(b"m f=1 1\n"))
    with pytest.raises(InfluxUnavailable, match="404"):
        run(client(fake, bucket="other").write(b"m f=1 1\n"))
    with pytest.raises(InfluxRejected, match="unable to parse"):
        run(client(fake).write(b"garbage\n"))
    fake.overloaded = True
    with pytest.raises(InfluxUnavailable) as caught:
        run(client(fake).write(b"m f=1 1\n"))
    assert caught.value.retry_after == 7.0
    assert fake.written == []


def test_v2_settings_need_org_and_bucket() -> None:
    with pytest.raises(ValueError, match="api v2 needs org and bucket"):
        InfluxSettings(api="v2")
