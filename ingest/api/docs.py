"""The API's docs: Swagger UI at ``/api/docs`` and the OpenAPI document at ``/api/v1/openapi.json``.

Outside development both are for operators only (logged in on the pages, or with a Bearer token): the
document maps every route, and the page would otherwise be an operator-origin page anyone can load.
In development both are open, for the developer and the schema tests.

Swagger UI comes from the ``fastapi-offline`` package (a project dependency, so never copied into this
repository) and is served from the app's own origin: a script from a CDN would run with the operator's
session. The page itself has no inline script (its start is ``static/api-docs.js``), so it is served
with the pages' Content-Security-Policy, ``script-src 'self'``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ingest.api.deps import require_role
from ingest.api.pages.web import render
from ingest.registry.models import Role

DOCS_URL = "/api/docs"
ASSETS_URL = f"{DOCS_URL}/assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI, *, openapi_url: str, operators_only: bool) -> None:
    """Add the docs page, its assets and the OpenAPI document to ``app`` (created without its own)."""
    router = APIRouter(
        include_in_schema=False,
        dependencies=[Depends(require_role(Role.operator))] if operators_only else [],
    )

    @router.get(openapi_url)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @router.get(DOCS_URL)
    def docs(request: Request) -> HTMLResponse:
        return render(request, "api_docs.html", title=f"{app.title} – API", openapi_url=openapi_url)

    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="api-docs-assets")
