"""`mpki audit …`: verify the chain (against the anchored checkpoints when there are some), export it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import typer
from cryptography.hazmat.primitives import serialization

from mpki.audit import VerifyResult, export_jsonl, verify_chain, verify_with_anchors
from mpki.ca.runtime import open_database
from mpki.cli.context import clean_errors, console, fail, settings
from mpki.cli.progress import progress_bar
from mpki.domain import InvalidRequest
from mpki.signer.checkpoints import AnchorDirectory, SignedCheckpoint
from mpki.store import Database

app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)


@app.command("verify")
@clean_errors
def verify(
    anchors: Path | None = typer.Option(
        None, "--anchors", help="Anchor directory of signed checkpoints (default: MPKI_AUDIT_ANCHOR_DIR, if set)."
    ),
    trusted_key: Path | None = typer.Option(
        None,
        "--trusted-key",
        help="The audit key's public key, PEM or DER (default: the key of the first anchored checkpoint).",
    ),
) -> None:
    """Walk the hash chain, and compare it with the signed checkpoints; exit 1 naming the first broken link."""
    config = settings()
    directory = anchors or config.audit_anchor_dir
    database = open_database(config)
    if directory is None:
        result = _walk("verifying audit chain", lambda progress: verify_chain(database, progress=progress))
        if not result.ok:
            raise fail(f"audit chain broken at event {result.broken_at}: {result.reason}")
        console.print(f"audit chain OK: {result.events} events (no anchor directory to compare with)")
        return
    result = _verify_anchored(database, directory, trusted_key)
    if not result.ok:
        raise fail(f"audit chain broken at event {result.broken_at}: {result.reason}")
    last = f", the last at event {result.last_checkpoint}" if result.last_checkpoint is not None else ""
    console.print(f"audit chain OK: {result.events} events, {result.checkpoints} signed checkpoints match{last}")


def _walk(description: str, run: Callable[[Callable[[int], None]], VerifyResult]) -> VerifyResult:
    with progress_bar(description, None) as update:
        return run(lambda done: update(done, None))


def _verify_anchored(database: Database, directory: Path, trusted_key: Path | None) -> VerifyResult:
    if not directory.is_dir():
        raise InvalidRequest(f"no anchor directory at {directory}")
    anchored = AnchorDirectory(directory).read()
    trusted = _trusted_key(trusted_key, anchored)
    return _walk(
        "verifying audit chain against its checkpoints",
        lambda progress: verify_with_anchors(database, anchored, trusted, progress=progress),
    )


def _trusted_key(path: Path | None, anchored: list[SignedCheckpoint]) -> bytes | None:
    """The audit key to trust: the file named, else the key that signed the first anchored checkpoint."""
    if path is None:
        return anchored[0].public_key_der if anchored else None
    data = path.read_bytes()
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----")
            else serialization.load_der_public_key(data)
        )
    except ValueError:
        raise InvalidRequest(f"{path} is not a public key in PEM or DER") from None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@app.command("export")
@clean_errors
def export(out: str | None = typer.Option(None, "--out", "-o", help="File (default stdout).")) -> None:
    """Write every audit event as JSON Lines."""
    database = open_database(settings())
    if out is None or out == "-":
        export_jsonl(database, sys.stdout)
        return
    with open(out, "w", encoding="utf-8") as handle:
        count = export_jsonl(database, handle)
    console.print(f"{count} events written to {out}")
