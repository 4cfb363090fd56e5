"""Serial numbers: 16 octets, random, positive (SMKI.md; RFC 5280 4.1.2.2)."""

from __future__ import annotations

import os

from mpki.domain import format_serial


def new_serial() -> int:
    """A random integer whose DER encoding is exactly 16 octets: first octet 0x01-0x7F."""
    raw = bytearray(os.urandom(16))
    raw[0] &= 0x7F
    if raw[0] == 0:
        raw[0] = 0x01
    return int.from_bytes(raw, "big")


def new_serials(count: int) -> list[tuple[int, str]]:
    """`count` distinct serials with their stored (hex) form."""
    chosen: dict[str, int] = {}
    while len(chosen) < count:
        value = new_serial()
        chosen[format_serial(value)] = value
    return [(value, text) for text, value in chosen.items()]
