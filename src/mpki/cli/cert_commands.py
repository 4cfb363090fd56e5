"""`mpki issue` and `mpki cert …`."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.table import Table

from mpki.ca import IssuanceOrder
from mpki.cli.context import authority, clean_errors, console, fail, write_output
from mpki.domain import KeyUsageChoice

app = typer.Typer(help="Issued certificates: list and show.", no_args_is_help=True)


def operator() -> str:
    return f"operator:{getpass.getuser()}"


@clean_errors
def issue(
    profile: str = typer.Option(..., "--profile", "-p", help="Profile name, e.g. smki-device."),
    csr: Path = typer.Option(..., "--csr", help="PKCS#10 request, PEM or DER."),
    out: str | None = typer.Option(None, "--out", "-o", help="Where to write the certificate PEM."),
    key_usage: KeyUsageChoice | None = typer.Option(
        None, "--key-usage", help="SMKI key usage, when the CSR requests none."
    ),
    der: bool = typer.Option(False, "--der", help="Write DER instead of PEM."),
) -> None:
    """Issue one certificate from a CSR (the operator approves it by running this)."""
    if not csr.is_file():
        raise fail(f"no such CSR file: {csr}")
    if out not in (None, "-") and not Path(out).resolve().parent.is_dir():
        # Checked before issuing, so a typo in the path does not leave a certificate nobody received.
        raise fail(f"cannot write {out}: no such directory")
    view = authority().issue(IssuanceOrder(profile, csr.read_bytes(), operator(), key_usage=key_usage))
    certificate = x509.load_der_x509_certificate(view.der)
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    write_output(certificate.public_bytes(encoding), out)
    if out not in (None, "-"):
        console.print(f"issued {view.profile} serial {view.serial} by {view.ca} -> {out}")


@app.command("list")
@clean_errors
def list_certs(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
    profile: str | None = typer.Option(None, "--profile"),
    status: str | None = typer.Option(None, "--status"),
    limit: int = typer.Option(1000, "--limit", min=1),
) -> None:
    """List issued certificates, oldest first."""
    views = authority().list_certificates(profile=profile, status=status, limit=limit)
    if as_json:
        print(json.dumps([v.as_json() for v in views], indent=2))
        return
    table = Table("serial", "profile", "subject / EUI-64", "key usage", "status", "issuer")
    for v in views:
        table.add_row(v.serial, v.profile, v.subject or v.eui64 or "", v.key_usage or "-", v.status, v.ca)
    console.print(table)


@app.command("show")
@clean_errors
def show(
    serial: str = typer.Argument(..., help="Serial in hex."),
    ca: str | None = typer.Option(None, "--ca", help="Issuing CA, if the serial is ambiguous."),
    pem: bool = typer.Option(False, "--pem", help="Print the certificate PEM instead of its details."),
) -> None:
    """Show one certificate's details (or its PEM)."""
    view = authority().find_certificate(serial, ca)
    if pem:
        certificate = x509.load_der_x509_certificate(view.der)
        write_output(certificate.public_bytes(serialization.Encoding.PEM), None)
        return
    print(json.dumps(view.as_json(), indent=2))
