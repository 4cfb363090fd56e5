"""`mpki signer`: run the signing process, and `mpki signer status`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import typer
from rich.table import Table

from mpki.cli.context import clean_errors, console, fail, settings
from mpki.config import Environment, Settings
from mpki.signer.client import SignerClient, signer_listening
from mpki.signer.server import MAX_SOCKET_PATH, SignerServer
from mpki.signer.service import SigningService

app = typer.Typer(
    help="The signing process: the only holder of key activation; everything else signs through its socket.",
    invoke_without_command=True,
)


@app.callback()
@clean_errors
def run(
    context: typer.Context,
    socket_path: Path | None = typer.Option(None, "--socket", help="Unix socket (default: MPKI_SIGNER_SOCKET)."),
    group: str | None = typer.Option(None, "--group", help="OS group that may connect (socket mode 0660)."),
) -> None:
    """Run the signer in the foreground until SIGTERM or Ctrl-C; a restart needs the custodians again."""
    if context.invoked_subcommand is not None:
        return
    current = settings()
    service = SigningService(current)
    # Open the backend now: a refused configuration (a passphrase keystore in production) stops here.
    service.is_active()
    server = SignerServer(service, socket_path or current.signer_socket, group)

    def stop(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    held = ", ".join(service.active_groups()) or "none (present the shares with `mpki keys activate`)"
    console.print(f"signer listening on {server.path} ({current.environment.value}); active groups: {held}")
    try:
        server.serve()
    finally:
        service.close()
    console.print("signer stopped; its activation is forgotten")


@app.command("status")
@clean_errors
def status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Whether a signer answers, which groups it holds and how many signatures of each purpose it made."""
    path = settings().signer_socket
    if not signer_listening(path):
        console.print(f"no signer answers at {path}")
        raise typer.Exit(1)
    client = SignerClient(path)
    try:
        answer = client.status()
    finally:
        client.close()
    if as_json:
        print(
            json.dumps(
                {
                    "socket": str(path),
                    "pid": answer.pid,
                    "environment": answer.environment,
                    "active_groups": list(answer.active_groups),
                    "signatures": dict(answer.signatures),
                }
            )
        )
        return
    table = Table("purpose", "signatures")
    for purpose, count in sorted(answer.signatures.items()):
        table.add_row(purpose, str(count))
    console.print(
        f"signer pid {answer.pid} on {path} ({answer.environment}); active groups: "
        f"{', '.join(answer.active_groups) or 'none'}"
    )
    console.print(table)


@contextlib.contextmanager
def signer_for_serve(current: Settings) -> Iterator[None]:
    """The signer `mpki serve` signs through: one already running, or in development one it starts and stops.

    In production the signer runs on its own (another OS user, its own systemd unit) and serve never starts it."""
    if current.environment is Environment.PRODUCTION and current.audit_anchor_dir is None:
        raise fail(
            "production anchors its audit chain outside the database: set MPKI_AUDIT_ANCHOR_DIR "
            "(the signer's append-only checkpoint directory) and, ideally, MPKI_AUDIT_SYSLOG"
        )
    path = current.signer_socket
    if signer_listening(path):
        yield
        return
    if current.environment is Environment.PRODUCTION:
        raise fail(f"no signer answers at {path}: start `mpki signer` as the signer's user and activate it first")
    short_dir = None
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        # A deep MPKI_HOME: the development signer listens in a short private directory instead, and the
        # server (and its workers, which inherit the environment) are told where.
        short_dir = Path(tempfile.mkdtemp(prefix="mpki-signer-"))
        path = short_dir / "signer.sock"
        os.environ["MPKI_SIGNER_SOCKET"] = str(path)
    process = subprocess.Popen([sys.executable, "-m", "mpki", "signer", "--socket", str(path)], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while not signer_listening(path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise fail("the development signer did not start; run `mpki signer` to see why")
            time.sleep(0.05)
        console.print(f"development signer started (pid {process.pid}) on {path}")
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        if short_dir is not None:
            shutil.rmtree(short_dir, ignore_errors=True)
