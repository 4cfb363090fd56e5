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
from mpki.cli.context import authority, clean_errors, console, errors, fail, write_output
from mpki.cli.progress import progress_bar
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


def split_pem_requests(data: bytes) -> list[bytes]:
    """Every PEM CERTIFICATE REQUEST block in a file, in order; a DER file is one request."""
    marker = b"-----BEGIN"
    if marker not in data:
        return [data] if data.strip() else []
    blocks = []
    for part in data.split(marker)[1:]:
        end = part.find(b"-----END")
        close = part.find(b"-----", end + 8) if end >= 0 else -1
        blocks.append(marker + (part[: close + 5] if close >= 0 else part))
    return blocks


@clean_errors
def issue_batch(
    profile: str = typer.Option(..., "--profile", "-p", help="Profile name, e.g. smki-device."),
    csrs: list[Path] = typer.Argument(..., help="Files of PEM CSRs (several per file) or DER CSRs."),
    out: str = typer.Option(..., "--out", "-o", help="Where to write the PEM bundle of issued certificates."),
) -> None:
    """Issue many certificates in one batch; every CSR gets its own result, bad ones do not stop good ones.

    Exit status 0 when every CSR was issued, 1 when any was rejected (the rest are still issued).
    """
    items: list[tuple[str, bytes]] = []
    for path in csrs:
        if not path.is_file():
            raise fail(f"no such CSR file: {path}")
        blocks = split_pem_requests(path.read_bytes())
        items += [(f"{path}#{number}", block) for number, block in enumerate(blocks, start=1)]
    if not items:
        raise fail("no CSRs found in the files given")
    out_path = Path(out)
    if not out_path.parent.is_dir():
        raise fail(f"the directory of {out} does not exist")
    orders = [IssuanceOrder(profile, block, operator()) for _, block in items]
    with progress_bar(f"issuing {len(orders)} {profile}", len(orders)) as update:
        results = authority().issue_many(orders, actor=operator(), progress=update)
    issued = [r.certificate for r in results if r.certificate is not None]
    bundle = b"".join(
        x509.load_der_x509_certificate(view.der).public_bytes(serialization.Encoding.PEM) for view in issued
    )
    out_path.write_bytes(bundle)
    rejected = [(items[r.index][0], r.error) for r in results if not r.ok]
    for where, reason in rejected:
        errors.print(f"rejected {where}: {reason}", markup=False, highlight=False)
    console.print(f"{len(issued)} issued, {len(rejected)} rejected -> {out}")
    if rejected:
        raise typer.Exit(1)
