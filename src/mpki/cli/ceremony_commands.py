"""`mpki ceremony run|verify`, `mpki bootstrap`, `mpki reinitialise`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from mpki.ca.runtime import open_database
from mpki.ceremony import CeremonySpec, run_ceremony, verify_record
from mpki.ceremony.lifecycle import bootstrap as run_bootstrap
from mpki.ceremony.lifecycle import reinitialise as run_reinitialise
from mpki.cli.context import clean_errors, console, fail, settings
from mpki.domain import MpkiError
from mpki.store import CaRepository, is_current

app = typer.Typer(help="Key ceremonies: run a ceremony file, verify its signed record.", no_args_is_help=True)


def show_step(entry: dict[str, Any]) -> None:
    outputs = ", ".join(
        f"{k}={str(v)[:24]}" for k, v in entry["outputs"].items() if not isinstance(v, list | dict) and k != "not_after"
    )
    console.print(f"[{entry['n']:>2}] {entry['at'][11:19]} {entry['step']:<22} by {entry['actor']}  {outputs}")


@app.command("run")
@clean_errors
def run(
    ceremony_file: Path = typer.Argument(..., help="Declarative ceremony file (YAML)."),
    shares_dir: Path = typer.Option(..., "--shares-dir", help="Where each custodian's share file is written."),
    record: Path = typer.Option(..., "--record", help="Where the signed ceremony record is written."),
    unwrap_key_out: Path | None = typer.Option(
        None,
        "--unwrap-key-out",
        help="With a contingency key: where its unwrap key is written (default beside the record); keep it apart.",
    ),
) -> None:
    """Run a key ceremony: quorum, tokens, CA keys and certificates, a signed record in the audit chain."""
    spec = CeremonySpec.load(ceremony_file)
    result = run_ceremony(spec, os.environ, shares_dir, record, on_step=show_step, unwrap_key_path=unwrap_key_out)
    console.print(f"record {result.record_path} (sha256 {result.record_sha256})")
    for path in result.share_files:
        console.print(f"share file for one custodian: {path}  <- hand it over, never keep two together")


@app.command("verify")
@clean_errors
def verify(record: Path = typer.Argument(..., help="A ceremony record written by `mpki ceremony run`.")) -> None:
    """Check a ceremony record's signature and that its signer is a CA the ceremony produced."""
    if not record.is_file():
        raise fail(f"no such record: {record}")
    verified = verify_record(record.read_bytes())
    known = _installation_fingerprint(verified.signer)
    if known is not None and known != verified.signer_fingerprint:
        raise fail(f"the record's signer {verified.signer} is not this installation's CA of that name")
    console.print(
        f"ceremony record OK: {verified.ceremony} ({verified.environment}), {verified.steps} steps, "
        f"signed by {verified.signer} ({verified.signer_fingerprint[:16]}…)"
    )


def _installation_fingerprint(ca_name: str) -> str | None:
    """The certificate fingerprint of this installation's CA of that name, if there is an installation."""
    try:
        database = open_database(settings(), migrate=False)
        try:
            if not is_current(database):
                return None
            with database.reader() as session:
                return CaRepository(session).by_name(ca_name).fingerprint_sha256
        finally:
            database.dispose()
    except MpkiError:
        return None


@clean_errors
def bootstrap(
    ceremony_file: Path = typer.Argument(..., help="The environment's ceremony file (YAML)."),
    shares_dir: Path = typer.Option(..., "--shares-dir"),
    record: Path = typer.Option(..., "--record"),
) -> None:
    """Bootstrap an environment: check it is empty, run its live ceremony, prove the keys work."""
    spec = CeremonySpec.load(ceremony_file)
    report = run_bootstrap(spec, os.environ, shares_dir, record, on_step=show_step)
    for check in report.checks:
        console.print(f"check: {check}")
    console.print(f"environment {spec.environment} bootstrapped; record {report.ceremony.record_path}")


@clean_errors
def reinitialise(
    yes: bool = typer.Option(False, "--yes", help="Confirm: wipe keys and data of this environment."),
) -> None:
    """Wipe a test environment's data, keys and tokens for a clean second run (refused in production)."""
    if not yes:
        raise fail("this wipes every key, certificate and token of the environment; add --yes to confirm")
    for line in run_reinitialise(os.environ):
        console.print(line)
