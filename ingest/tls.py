"""TLS to an MQTT broker: one client context for the ingester (``mqtt.tls``) and the gateway's uplink
(``central.tls``).

The broker's certificate must chain to ``ca_file`` alone (not the system's CAs: a public CA's certificate
for any name would do otherwise) and match the host name; a client certificate where the broker asks for
one. A file that cannot be used is named by its key (:class:`TlsError`), so configuration errors can say
which one.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

TlsKey = Literal["ca_file", "cert_file", "key_file"]


class TlsError(Exception):
    """A TLS file that cannot be used: ``key`` names it (ca_file, cert_file or key_file)."""

    def __init__(self, key: TlsKey, path: Path, problem: str) -> None:
        super().__init__(f"{key} {path}: {problem}")
        self.key = key
        self.path = path
        self.problem = problem


class TlsFiles(BaseModel):
    """The files of a TLS client: the CA, and a client certificate with its key where the broker asks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path = Field(description="CA certificate (PEM) the broker's certificate must chain to")
    cert_file: Path | None = Field(None, description="client certificate (PEM) where the broker asks for one")
    key_file: Path | None = Field(None, description="the client certificate's private key (PEM, unencrypted)")

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


def _read(key: TlsKey, path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise TlsError(key, path, f"cannot read: {exc.strerror or type(exc).__name__}") from exc


def ca_context(ca_file: Path) -> ssl.SSLContext:
    """A client context trusting ``ca_file`` only, checking the host name; TlsError("ca_file") if unusable."""
    _read("ca_file", ca_file)
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TlsError("ca_file", ca_file, f"no PEM CA certificate in it ({reason})") from exc


def check_certificate(cert_file: Path) -> None:
    """TlsError("cert_file") unless ``cert_file`` holds a PEM certificate."""
    text = _read("cert_file", cert_file)
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", begin)
    try:
        if begin < 0 or end < 0:
            raise ValueError("no -----BEGIN CERTIFICATE----- block")
        ssl.PEM_cert_to_DER_cert(text[begin : end + len("-----END CERTIFICATE-----")])
    except ValueError as exc:
        raise TlsError("cert_file", cert_file, f"no PEM certificate in it ({exc})") from exc


def _no_password() -> bytes:
    # without a callback OpenSSL would ask for the pass phrase on the terminal (a service has none)
    raise ValueError("the key is encrypted")


def load_client_certificate(context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    """Present ``cert_file`` with ``key_file``; TlsError naming the file at fault."""
    check_certificate(cert_file)
    _read("key_file", key_file)
    try:
        context.load_cert_chain(str(cert_file), str(key_file), password=_no_password)
    except ValueError as exc:
        raise TlsError("key_file", key_file, "encrypted: give the key without a pass phrase") from exc
    except (OSError, ssl.SSLError) as exc:
        if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
            raise TlsError("key_file", key_file, f"not the private key of {cert_file}") from exc
        reason = getattr(exc, "reason", None) or exc
        raise TlsError("key_file", key_file, f"no PEM private key in it ({reason})") from exc


def client_context(tls: TlsFiles) -> ssl.SSLContext:
    """The context a connection to the broker uses (one per configuration, shared by every connection)."""
    context = ca_context(tls.ca_file)
    if tls.cert_file is not None and tls.key_file is not None:
        load_client_certificate(context, tls.cert_file, tls.key_file)
    return context


def not_trusted(exc: ssl.SSLCertVerificationError) -> str:
    """Why the broker's certificate was refused, in OpenSSL's words (e.g. "unable to get local issuer")."""
    return str(exc.verify_message or exc.reason or exc)


class _NamedContext(ssl.SSLContext):
    """Checks (and sends as SNI) ``server_name`` whatever host a client connects to: paho offers no
    setting for it, it passes the connect host to ``wrap_socket``."""

    server_name: str

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def paho_context(tls: TlsFiles, server_name: str | None = None) -> ssl.SSLContext:
    """:func:`client_context` for a paho client (``tls_set_context``); ``server_name``: the name the
    broker's certificate must carry instead of the host connected to."""
    if server_name is None:
        return client_context(tls)
    _read("ca_file", tls.ca_file)
    context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)  # as create_default_context: verifies, checks names
    context.server_name = server_name
    try:
        context.load_verify_locations(cafile=str(tls.ca_file))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TlsError("ca_file", tls.ca_file, f"no PEM CA certificate in it ({reason})") from exc
    if tls.cert_file is not None and tls.key_file is not None:
        load_client_certificate(context, tls.cert_file, tls.key_file)
    return context
