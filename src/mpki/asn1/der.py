"""A minimal strict DER reader and writer for the few small structures on the issuance hot path.

pyasn1 costs ~100 µs to decode a two-field SEQUENCE; at 10^8 device certificates that matters. This
reader accepts only definite, minimal-length DER and says exactly what is wrong otherwise.
"""

from __future__ import annotations

from mpki.domain import InvalidRequest

TAG_SEQUENCE = 0x30
TAG_OID = 0x06
TAG_OCTET_STRING = 0x04


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(value)) + value


def read_tlv(data: bytes, offset: int, what: str) -> tuple[int, bytes, int]:
    """Return (tag, value, offset after) of the element at `offset`; refuse non-DER lengths."""
    if offset + 2 > len(data):
        raise InvalidRequest(f"{what} is truncated")
    tag = data[offset]
    first = data[offset + 1]
    cursor = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or cursor + count > len(data):
            raise InvalidRequest(f"{what} has an invalid length")
        length = int.from_bytes(data[cursor : cursor + count], "big")
        if length < 0x80 or data[cursor] == 0:
            raise InvalidRequest(f"{what} does not use the minimal DER length")
        cursor += count
    end = cursor + length
    if end > len(data):
        raise InvalidRequest(f"{what} is truncated")
    return tag, data[cursor:end], end


def encode_oid(dotted: str) -> bytes:
    """Contents octets of an OBJECT IDENTIFIER."""
    try:
        arcs = [int(arc) for arc in dotted.split(".")]
    except ValueError:
        raise InvalidRequest(f"{dotted!r} is not an object identifier") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or any(a < 0 for a in arcs):
        raise InvalidRequest(f"{dotted!r} is not an object identifier")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def decode_oid(contents: bytes, what: str) -> str:
    if not contents or contents[-1] & 0x80:
        raise InvalidRequest(f"{what} is not a valid object identifier")
    arcs: list[int] = []
    value = 0
    fresh = True
    for octet in contents:
        if fresh and octet == 0x80:
            raise InvalidRequest(f"{what} is not a valid object identifier (non-minimal arc)")
        value = (value << 7) | (octet & 0x7F)
        fresh = not octet & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])
