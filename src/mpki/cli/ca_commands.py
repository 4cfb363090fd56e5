"""`mpki ca …`: list and export CA certificates, reconcile serial reservations."""

from __future__ import annotations

import json

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.table import Table

from mpki.cli import status_commands
from mpki.cli.context import authority, clean_errors, console, write_output

app = typer.Typer(help="Certification Authorities: list, export, reconcile, revoke.", no_args_is_help=True)


def pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


@app.command("list")
@clean_errors
def list_cas(as_json: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List the CAs with their subject, profile, parent and status (active or revoked)."""
    views = authority().list_cas()
    if as_json:
        print(json.dumps([v.as_json() for v in views], indent=2))
        return
    table = Table("name", "subject", "profile", "parent", "issues", "not after", "status")
    for v in views:
        table.add_row(
            v.name,
            v.subject,
            v.profile,
            v.parent or "-",
            ",".join(v.issues_profiles) or "-",
            v.not_after.date().isoformat(),
            v.status,
        )
    console.print(table)


@app.command("export")
@clean_errors
def export(
    name: str | None = typer.Argument(None, help="CA name; every CA certificate when omitted."),
    chain: bool = typer.Option(False, "--chain", help="Also the issuers up to the root."),
    out: str | None = typer.Option(None, "--out", "-o", help="File to write (default stdout)."),
) -> None:
    """Export CA certificates as PEM."""
    ca = authority()
    if name is None:
        views = ca.list_cas()
    elif chain:
        views = ca.chain(name)
    else:
        views = [ca.get_ca(name)]
    write_output("".join(pem(v.certificate_der) for v in views), out)


@app.command("reconcile")
@clean_errors
def reconcile() -> None:
    """Mark abandoned the serials reserved by issuers that stopped before storing their certificates."""
    count = authority().reconcile(actor="mpki-ca-reconcile")
    console.print(f"{count} abandoned serial reservation(s) recorded")


# CA revocation under dual control lives with the other status commands.
app.command("revoke")(status_commands.ca_revoke)
app.command("revoke-approve")(status_commands.ca_revoke_approve)
app.command("revoke-withdraw")(status_commands.ca_revoke_withdraw)
app.command("revocations")(status_commands.ca_revocations)
