"""Request body limits, enforced before a body is read: :class:`BodyLimit`, a pure ASGI middleware.

Every request may send at most :data:`DEFAULT_LIMIT` (64 KiB). The largest legitimate JSON or form body is
a device or building with 4,000 characters of notes: under 50 KiB even when a client escapes every one of
them as a ``\\uXXXX`` surrogate pair. The routes in :data:`UPLOADS` (the CSV import) allow more, but only
to a request that carries a genuine session token (cookie or Bearer; its signature and age are checked
here, without the database), so a client without credentials can never make the API read more than
64 KiB. Who the user is and whether their role may call the route is still decided by the route.

Why a middleware and not a dependency: FastAPI reads and parses a JSON or form body *before* it runs the
route's dependencies, the login check included, so a check there comes after the memory is spent.

A declared ``Content-Length`` over the limit is answered 413 at once, without reading the body. A body
without a length (chunked) is counted while the application reads it and cut off with 413 at the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.api.cookies import session_token_in
from ingest.api.pages.web import PAGES_PREFIX
from ingest.api.security import TokenSigner
from ingest.registry.device_import import MAX_BYTES as CSV_MAX_BYTES

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 64 * 1024
IMPORT_LIMIT = CSV_MAX_BYTES + 64 * 1024  # the file and the multipart framing around it
UPLOADS: Mapping[tuple[str, str], int] = {("POST", f"{PAGES_PREFIX}/import"): IMPORT_LIMIT}
_MAX_TOKEN = 4096  # longer is no token of ours: not worth an HMAC


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` at the limit. An HTTPException, so that FastAPI's body reading passes it
    on unchanged (it turns other errors into 400) and the app answers it as JSON."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


@dataclass(frozen=True, slots=True)
class _Rule:
    limit: int
    detail: str


class BodyLimit:
    """Refuse request bodies over the route's limit with 413 ``{"detail": ...}``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        signer: TokenSigner,
        default: int = DEFAULT_LIMIT,
        uploads: Mapping[tuple[str, str], int] = UPLOADS,
    ) -> None:
        self.app = app
        self.signer = signer
        self.default = default
        self.uploads = dict(uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rule = self._rule(scope, headers)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > rule.limit:
            log.info("request body refused: %s bytes declared, %s", declared, rule.detail)
            await JSONResponse({"detail": rule.detail}, status_code=413)(scope, receive, send)
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > rule.limit:
                    log.info("request body cut off after %d bytes: %s", received, rule.detail)
                    raise BodyTooLarge(rule.detail)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:  # read outside FastAPI's handlers: answer here if still possible
            if started:
                raise
            await JSONResponse({"detail": exc.detail}, status_code=413)(scope, receive, send)

    def _rule(self, scope: Scope, headers: Headers) -> _Rule:
        where = f"{scope['method']} {scope['path']}"
        upload = self.uploads.get((scope["method"], scope["path"]))
        if upload is None:
            return _Rule(self.default, f"the request body is larger than {self.default // 1024} KiB")
        if self._has_session(headers):
            return _Rule(
                upload, f"the request body is larger than {upload // 1024} KiB, the limit of {where}"
            )
        return _Rule(
            self.default,
            f"the request body is larger than {self.default // 1024} KiB: {where} takes up to "
            f"{upload // 1024} KiB from a logged-in user only",
        )

    def _has_session(self, headers: Headers) -> bool:
        """A genuine, unexpired token (not: a current user; the route checks that)."""
        scheme, _, bearer = headers.get("authorization", "").partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else ""
        if not token:
            token = session_token_in(cookie_parser(headers.get("cookie", "")), self.signer) or ""
        return 0 < len(token) <= _MAX_TOKEN and self.signer.read(token) is not None
