"""The OCSP endpoint (RFC 6960 Appendix A, RFC 5019): plain ASGI in front of FastAPI, because answering
from memory is a few microseconds and a routed request costs ten times that.

POST /ocsp with an `application/ocsp-request` body, or GET /ocsp/{base64 of the request}. A request
the cache cannot answer goes to a worker thread (it may read the database or sign).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable
from urllib.parse import unquote

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from mpki.status import OcspAnswer, OcspService
from mpki.status.ocsp import MALFORMED
from mpki.web.problems import PROBLEM, TITLES

PREFIX = "/ocsp"
REQUEST_TYPE = b"application/ocsp-request"
RESPONSE_TYPE = b"application/ocsp-response"
MAX_REQUEST = 64 * 1024  # a request for 100 certificates is under 10 KiB
# Told about every OCSP request: (the answer's DER or None for an HTTP refusal, answered from memory, seconds).
Observer = Callable[[bytes | None, bool, float], None]


def _ignore(der: bytes | None, cached: bool, seconds: float) -> None:
    pass


class OcspEndpoint:
    def __init__(self, app: ASGIApp, service: OcspService, observe: Observer = _ignore) -> None:
        self.app = app
        self.service = service
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        if method == "POST" and path in (PREFIX, PREFIX + "/"):
            headers = dict(scope["headers"])
            content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if content_type != REQUEST_TYPE:
                await _problem(send, 415, "send the OCSP request as application/ocsp-request")
                self.observe(None, False, time.perf_counter() - started)
                return
            body = await _read_body(receive, MAX_REQUEST)
            if body is None:
                await _problem(send, 413, f"an OCSP request is at most {MAX_REQUEST // 1024} KiB")
                self.observe(None, False, time.perf_counter() - started)
                return
            await self._answer(send, body, started, cacheable=False)
        elif method == "GET" and path.startswith(PREFIX + "/") and len(path) > len(PREFIX) + 1:
            raw = scope.get("raw_path") or path.encode()
            encoded = unquote(raw.decode("latin-1").split("?", 1)[0][len(PREFIX) + 1 :])
            request = _decode_base64(encoded)
            if request is None:
                await _send(send, 200, MALFORMED, [])
                self.observe(MALFORMED, False, time.perf_counter() - started)
                return
            await self._answer(send, request, started, cacheable=True)
        else:
            await _problem(send, 405, "OCSP is POST /ocsp or GET /ocsp/{base64 request}", allow=b"GET, POST")
            self.observe(None, False, time.perf_counter() - started)

    async def _answer(self, send: Send, request: bytes, started: float, *, cacheable: bool) -> None:
        answer = self.service.answer_cached(request)
        cached = answer is not None
        if answer is None:
            answer = await anyio.to_thread.run_sync(self.service.answer, request)
        await _send(send, 200, answer.der, _cache_headers(answer) if cacheable else [])
        self.observe(answer.der, cached, time.perf_counter() - started)


def _cache_headers(answer: OcspAnswer) -> list[tuple[bytes, bytes]]:
    """RFC 5019 6.2: a GET answer may be cached by HTTP proxies until shortly before it is refreshed."""
    if answer.max_age <= 0:
        return [(b"cache-control", b"no-cache")]
    return [
        (b"cache-control", f"max-age={answer.max_age}, public, no-transform, must-revalidate".encode()),
        (b"etag", f'"{hashlib.sha256(answer.der).hexdigest()[:32]}"'.encode()),
    ]


def _decode_base64(text: str) -> bytes | None:
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", RESPONSE_TYPE), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, status: int, detail: str, *, allow: bytes | None = None) -> None:
    body = json.dumps(
        {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    ).encode()
    headers = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())]
    if allow:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
