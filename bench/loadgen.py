"""An HTTP/1.1 load generator for OCSP: a separate process that replays prepared request bodies over
keep-alive connections (reconnecting when a server closes), and reports throughput and latency.

It sends only complete requests (no opening probe), so servers that handle one request per connection,
like `openssl ocsp -port`, are measured fairly. Prints one JSON object.

    python bench/loadgen.py --port 8000 --requests reqs.bin --duration 10 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import time
from pathlib import Path


def read_requests(path: Path) -> list[bytes]:
    """The file is a sequence of (4-byte big-endian length, DER request)."""
    data = path.read_bytes()
    found = []
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        found.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return found


def is_successful_ocsp(der: bytes) -> bool:
    """OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED successful(0), responseBytes … }: an error
    answer (malformedRequest, tryLater, …) is also DER and must not count as served."""
    if len(der) < 8 or der[0] != 0x30:
        return False
    first = der[1]
    offset = 2 + (first & 0x7F if first & 0x80 else 0)
    return der[offset : offset + 3] == b"\x0a\x01\x00"


class Stats:
    def __init__(self) -> None:
        self.latencies: list[int] = []
        self.errors = 0
        self.bad_status = 0
        self.bytes = 0
        self.reconnects = 0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    version, status = lines[0].split(b" ", 2)[:2]
    length = -1
    close = version == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            token = value.strip().lower()
            close = token == b"close" or (close and token != b"keep-alive")
    body = await reader.readexactly(length) if length >= 0 else await reader.read()
    return int(status), body, close or length < 0


async def worker(
    host: str, port: int, path: str, bodies: list[bytes], deadline: float, stats: Stats, measure_from: float
) -> None:
    header = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/ocsp-request\r\n"
    prefixes = {}
    reader = writer = None
    rng = random.Random()
    while time.perf_counter() < deadline:
        body = bodies[rng.randrange(len(bodies))]
        prefix = prefixes.get(len(body))
        if prefix is None:
            prefix = prefixes[len(body)] = (header + f"Content-Length: {len(body)}\r\n\r\n").encode()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
                stats.reconnects += 1
            assert reader is not None
            started = time.perf_counter_ns()
            writer.write(prefix + body)
            status, payload, close = await _read_response(reader)
            finished = time.perf_counter_ns()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stats.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        if finished / 1e9 >= measure_from:
            stats.latencies.append(finished - started)
            stats.bytes += len(payload)
            if status != 200 or not is_successful_ocsp(payload):
                stats.bad_status += 1
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    bodies = read_requests(Path(args.requests))
    stats = Stats()
    start = time.perf_counter()
    measure_from = start + args.warmup
    deadline = measure_from + args.duration
    await asyncio.gather(
        *(
            worker(args.host, args.port, args.path, bodies, deadline, stats, measure_from)
            for _ in range(args.connections)
        )
    )
    latencies = sorted(stats.latencies)
    count = len(latencies)

    def percentile(p: float) -> float:
        return latencies[min(count - 1, int(p * count))] / 1e6 if count else float("nan")

    return {
        "requests": count,
        "per_s": count / args.duration,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] / 1e6 if count else float("nan"),
        "errors": stats.errors,
        "bad_responses": stats.bad_status,
        "connections_opened": stats.reconnects,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/ocsp")
    parser.add_argument("--requests", required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
