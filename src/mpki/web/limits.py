"""Limits on what a request may carry, enforced before it is parsed: the body's size (413 problem+json)
and NUL characters in the URL (400)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mpki.web.problems import PROBLEM

MiB = 1024 * 1024
# Batches carry up to 50,000 PEM CSRs (about 25 MiB); every other body is small.
BATCH_LIMIT = 64 * MiB
DEFAULT_LIMIT = 1 * MiB


class BodyTooLarge(Exception):
    pass


def limit_for(path: str) -> int:
    return BATCH_LIMIT if path.rstrip("/") in ("/api/v1/batches", "/portal/batches/new") else DEFAULT_LIMIT


class BodyLimit:
    """Refuses bodies over the path's limit: by Content-Length up front, and by counting a streamed body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or _has_nul(scope.get("query_string", b"")):
            # No stored text holds NUL, and PostgreSQL refuses it outright: a clear 400, never a 500.
            await _problem(send, 400, "Bad Request", "the URL holds a NUL character (%00)")
            return
        limit = limit_for(scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = limit + 1
                if declared > limit:
                    await _refuse(send, limit)
                    return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, limit)


def _has_nul(query: bytes) -> bool:
    return b"\x00" in query or b"%00" in query


async def _refuse(send: Send, limit: int) -> None:
    await _problem(send, 413, "Content Too Large", f"the request body is larger than {limit // MiB} MiB")


async def _problem(send: Send, status: int, title: str, detail: str) -> None:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
