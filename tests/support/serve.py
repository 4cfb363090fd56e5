"""A real `mpki serve` in a subprocess for end-to-end tests: a free port, wait for /healthz, stop cleanly."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_server(
    env: dict[str, str], log_path: Path, extra_args: Sequence[str] = (), ca_file: Path | None = None
) -> Iterator[str]:
    """Yield the base URL (https when `ca_file` verifies the server) once the server answers /healthz."""
    port = free_port()
    scheme = "https" if ca_file else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    with log_path.open("wb") as log:
        command = [sys.executable, "-m", "mpki", "serve", "--port", str(port), *extra_args]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{base}/healthz", timeout=2, verify=verify).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "mpki serve did not come up"
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
