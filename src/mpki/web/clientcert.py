"""Client certificates into the API (DEPENDENCIES.md gotcha 9): uvicorn verifies them but does not hand
them to the app, so they arrive one of two ways.

- Direct TLS (`mpki serve --tls-cert … --tls-key … --client-ca …`): `ClientCertH11Protocol` reads the
  verified peer certificate when the connection is made and puts its DER into every request's scope as
  ``scope["extensions"]["tls"]["client_cert_der"]`` (beside the ASGI TLS extension's `client_cert_chain`).
- Behind a reverse proxy that terminates TLS: the proxy forwards the certificate in an RFC 9440
  ``Client-Cert`` header (``:base64-DER:``). The header is believed only from the addresses listed in
  `MPKI_TRUSTED_PROXIES` (IPs or networks, comma-separated); from anyone else it is ignored. The proxy must
  overwrite any Client-Cert header its clients send.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import os
import ssl
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from mpki.domain import ConfigError, Unauthenticated

__all__ = [
    "CLIENT_CERT_HEADER",
    "TRUSTED_PROXIES_ENV",
    "ClientCertH11Protocol",
    "Networks",
    "client_certificate",
    "parse_client_cert_header",
    "trusted_proxies",
]

CLIENT_CERT_HEADER = "client-cert"
TRUSTED_PROXIES_ENV = "MPKI_TRUSTED_PROXIES"
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def trusted_proxies(value: str | Iterable[str] | None = None, env: Mapping[str, str] | None = None) -> Networks:
    """The proxies whose Client-Cert header is believed: `value`, or else `MPKI_TRUSTED_PROXIES`."""
    if value is None:
        value = (os.environ if env is None else env).get(TRUSTED_PROXIES_ENV, "")
    items = value.replace(",", " ").split() if isinstance(value, str) else [v.strip() for v in value]
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items if item)
    except ValueError as error:
        raise ConfigError(f"{TRUSTED_PROXIES_ENV}: {error}") from None


def parse_client_cert_header(value: str) -> bytes:
    """The DER in an RFC 9440 Client-Cert header: a structured-field byte sequence, ``:base64:``."""
    text = value.strip()
    if len(text) < 3 or not (text.startswith(":") and text.endswith(":")):
        raise Unauthenticated("the Client-Cert header is not an RFC 9440 byte sequence (:base64-DER:)")
    try:
        return base64.b64decode(text[1:-1], validate=True)
    except (binascii.Error, ValueError):
        raise Unauthenticated("the Client-Cert header is not valid base64") from None


def _from_trusted_proxy(request: Request, proxies: Networks) -> bool:
    if not proxies or request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(address in network for network in proxies)


def client_certificate(request: Request, proxies: Networks) -> bytes | None:
    """The caller's client certificate (DER), or None. From a trusted proxy only its Client-Cert header
    counts (the proxy's own TLS certificate is not the caller's); otherwise the TLS peer certificate."""
    if _from_trusted_proxy(request, proxies):
        header = request.headers.get(CLIENT_CERT_HEADER)
        return parse_client_cert_header(header) if header else None
    tls = request.scope.get("extensions", {}).get("tls", {})
    der = tls.get("client_cert_der")
    return der if isinstance(der, bytes) and der else None


def _with_client_certificate(app: Any, der: bytes) -> Any:
    pem = ssl.DER_cert_to_PEM_cert(der)

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            tls = scope.setdefault("extensions", {}).setdefault("tls", {})
            tls.update({"client_cert_chain": [pem], "client_cert_der": der})
        await app(scope, receive, send)

    return wrapped


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, handing the verified client certificate to the app (uvicorn itself does not).

    Run with ``uvicorn.run(..., http="mpki.web.clientcert:ClientCertH11Protocol")``. The TLS handshake is
    over by the time `connection_made` runs, so the peer certificate, if any, is known and verified."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.app = _with_client_certificate(self.app, der)
