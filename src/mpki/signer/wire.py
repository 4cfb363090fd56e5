"""Framing on the signer's socket: length-prefixed frames, a JSON header first, then raw binary frames.

Binary payloads (to-be-signed bytes, signatures) travel as raw frames rather than base64 inside JSON,
so a chunk of a thousand certificates costs one round trip and no encoding work worth measuring.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Sequence
from typing import Any

from mpki.domain import KeyStoreError

_LENGTH = struct.Struct(">I")
# One frame at most: a CRL of a few hundred thousand entries is well under this.
MAX_FRAME = 256 * 1024 * 1024
# Binary frames after one header at most: a chunk, never a whole batch of millions.
MAX_BLOBS = 100_000


class WireError(KeyStoreError):
    """The peer closed the connection or sent something that is not a signer message."""


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise WireError("the signer connection closed mid-message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> bytes | None:
    """One frame, or None when the peer closed cleanly between messages."""
    head = b""
    while len(head) < _LENGTH.size:
        chunk = sock.recv(_LENGTH.size - len(head))
        if not chunk:
            if head:
                raise WireError("the signer connection closed mid-message")
            return None
        head += chunk
    (size,) = _LENGTH.unpack(head)
    if size > MAX_FRAME:
        raise WireError(f"a signer frame of {size} bytes is over the limit")
    return _read_exact(sock, size)


def send_message(sock: socket.socket, header: dict[str, Any], blobs: Sequence[bytes] = ()) -> None:
    """A header (its `blobs` count set here) and its binary frames, in one send."""
    body = json.dumps({**header, "blobs": len(blobs)}, separators=(",", ":")).encode()
    parts = [_LENGTH.pack(len(body)), body]
    for blob in blobs:
        parts.append(_LENGTH.pack(len(blob)))
        parts.append(blob)
    sock.sendall(b"".join(parts))


def read_message(sock: socket.socket) -> tuple[dict[str, Any], list[bytes]] | None:
    """The next header and its binary frames, or None when the peer closed cleanly."""
    raw = read_frame(sock)
    if raw is None:
        return None
    try:
        header = json.loads(raw)
    except ValueError:
        raise WireError("a signer message header is not JSON") from None
    if not isinstance(header, dict):
        raise WireError("a signer message header is not an object")
    count = header.get("blobs", 0)
    if not isinstance(count, int) or not 0 <= count <= MAX_BLOBS:
        raise WireError("a signer message announces an impossible number of payloads")
    blobs = []
    for _ in range(count):
        blob = read_frame(sock)
        if blob is None:
            raise WireError("the signer connection closed mid-message")
        blobs.append(blob)
    return header, blobs
