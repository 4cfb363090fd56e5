"""`mpki csr …`: make a subscriber key and an SMKI CSR, as a device or an organisation would."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpki.cli.context import clean_errors, console, fail, settings
from mpki.domain import Eui64, KeyUsageChoice, RemotePartyRole
from mpki.profiles.requests import device_csr, organisation_csr

app = typer.Typer(help="Make SMKI CSRs (and their subscriber keys) for testing and demos.", no_args_is_help=True)


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    if path.exists():
        raise fail(f"{path} exists; refusing to overwrite a private key")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _load_or_make_key(key_in: Path | None, key_out: Path | None) -> ec.EllipticCurvePrivateKey:
    if key_in is not None:
        key = serialization.load_pem_private_key(key_in.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise fail(f"{key_in} is not an EC private key")
        return key
    if key_out is None:
        raise fail("give --key-out FILE for a new key, or --key FILE to reuse one")
    key = ec.generate_private_key(ec.SECP256R1())
    _write_key(key, key_out)
    return key


@app.command("device")
@clean_errors
def device(
    eui64: str = typer.Option(..., "--eui64", help="The device's 16-hex-digit EUI-64."),
    usage: KeyUsageChoice = typer.Option(KeyUsageChoice.DIGITAL_SIGNATURE, "--usage"),
    key_out: Path | None = typer.Option(None, "--key-out", help="Write a new P-256 key here."),
    key_in: Path | None = typer.Option(None, "--key", help="Use this existing PEM key."),
    out: Path = typer.Option(..., "--out", "-o", help="CSR file (PEM)."),
) -> None:
    """A device CSR: empty subject, hardwareModuleName SAN with the EUI-64, one key usage."""
    identity = Eui64.parse(eui64)
    key = _load_or_make_key(key_in, key_out)
    csr = device_csr(key, identity, usage, settings().smki.hw_type_oid)
    out.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    console.print(f"device CSR for {identity} ({usage.value}) -> {out}")


@app.command("org")
@clean_errors
def organisation(
    eui64: str = typer.Option(..., "--eui64", help="The organisation's 16-hex-digit EUI-64."),
    role: str = typer.Option(..., "--role", help="Remote-party role: supplier, network-operator, … or its code."),
    usage: KeyUsageChoice = typer.Option(KeyUsageChoice.DIGITAL_SIGNATURE, "--usage"),
    common_name: str | None = typer.Option(None, "--cn", help="Optional common name."),
    key_out: Path | None = typer.Option(None, "--key-out", help="Write a new P-256 key here."),
    key_in: Path | None = typer.Option(None, "--key", help="Use this existing PEM key."),
    out: Path = typer.Option(..., "--out", "-o", help="CSR file (PEM)."),
) -> None:
    """An organisation CSR: [CN], OU=role code, x500UniqueIdentifier=EUI-64, one key usage."""
    identity = Eui64.parse(eui64)
    parsed_role = RemotePartyRole.from_name(role)
    key = _load_or_make_key(key_in, key_out)
    csr = organisation_csr(key, identity, parsed_role, usage, common_name)
    out.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    console.print(f"organisation CSR for {identity} role {parsed_role.code} ({usage.value}) -> {out}")
