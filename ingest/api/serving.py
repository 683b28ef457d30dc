"""How ``reallabor api`` runs uvicorn: the options that decide who a request's client is.

Behind a reverse proxy every request comes from the proxy's address, so the per-client limits (the public
pages' :class:`ingest.api.rate_limit.ClientRateLimit`, the login throttle) would count all visitors as one.
uvicorn's proxy-headers middleware fixes exactly that: for a request whose TCP peer is one of
``api.trusted_proxies`` it takes the client from ``X-Forwarded-For`` (the right-most address that is not a
trusted proxy, so a client cannot prepend a forged one) and the scheme from ``X-Forwarded-Proto``; a
request from anywhere else keeps its TCP peer, whatever headers it sends. With no trusted proxy (the
default) the headers are never read.
"""

from __future__ import annotations

from typing import Any

from ingest.config import ApiSettings


def client_address_options(api: ApiSettings) -> dict[str, Any]:
    """uvicorn's ``proxy_headers`` and ``forwarded_allow_ips`` for ``api.trusted_proxies``."""
    trusted = list(api.trusted_proxies)
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}
