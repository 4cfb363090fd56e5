"""Issuance throughput: `issue_many` into SQLite or PostgreSQL, against the raw crypto limit.

The raw limit is the same work with nothing around it: parse and verify each CSR, build and sign a
certificate with `cryptography`, on the same core, with no database and no audit. The ratio says how
much of the machine the CA's bookkeeping (checks, serial reservation, storage, audit chain) costs.

    python bench/issue.py --n 20000 --db sqlite

Issuance is measured twice in the same run: signing in-process (the development convenience, what the
figures before issue 13 measured) and through a separate `mpki signer` process over its Unix socket
(how production runs), so the signer's cost is the ratio between the two.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mpki.asn1 import HARDWARE_MODULE_NAME_OID, HardwareModuleName, encode_hardware_module_name
from mpki.ca import IssuanceOrder
from mpki.ca.runtime import open_authority
from mpki.ceremony import create_dev_hierarchy
from mpki.config import Settings, load_settings

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HW_TYPE = "1.2.826.0.1.8641679.1.2.2.1"


def make_csrs(count: int) -> list[bytes]:
    """Distinct device keys and EUI-64s, as a comms hub would send them."""
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    csrs = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        eui64 = (0x00DB000000000000 + index).to_bytes(8, "big")
        san = x509.SubjectAlternativeName(
            [
                x509.OtherName(
                    x509.ObjectIdentifier(HARDWARE_MODULE_NAME_OID),
                    encode_hardware_module_name(HardwareModuleName(HW_TYPE, eui64)),
                )
            ]
        )
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(usage, critical=True)
            .add_extension(san, critical=True)
        )
        csrs.append(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    return csrs


def raw_limit(csrs: list[bytes]) -> float:
    """Certificates per second for verify + build + sign alone."""
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "raw")])
    not_before = dt.datetime.now(dt.UTC)
    not_after = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    start = time.perf_counter()
    for der in csrs:
        csr = x509.load_der_x509_csr(der)
        if not csr.is_signature_valid:
            raise SystemExit("bench CSR does not verify")
        builder = x509.CertificateBuilder(
            issuer_name=issuer,
            subject_name=csr.subject,
            public_key=csr.public_key(),
            serial_number=int.from_bytes(os.urandom(16), "big") >> 1,
            not_valid_before=not_before,
            not_valid_after=not_after,
        )
        for extension in csr.extensions:
            builder = builder.add_extension(extension.value, extension.critical)
        builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return len(csrs) / (time.perf_counter() - start)


def database_url(kind: str, home: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{home / 'bench.sqlite3'}", None
    from sqlalchemy import create_engine, text

    base = os.environ.get("MPKI_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with create_engine(base, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    from sqlalchemy import create_engine, text

    base = os.environ.get("MPKI_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    with create_engine(base, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def start_signer(env: dict[str, str], socket_path: Path) -> subprocess.Popen[bytes]:
    from mpki.signer.client import signer_listening

    process = subprocess.Popen([sys.executable, "-m", "mpki", "signer"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not signer_listening(socket_path):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the signer did not start")
        time.sleep(0.05)
    return process


def timed_issue(settings: Settings, csrs: list[bytes]) -> tuple[float, bool]:
    """Certificates per second through `issue_many`, and whether a signer process made the signatures."""
    authority = open_authority(settings)
    orders = [IssuanceOrder("smki-device", der, approved_by="bench") for der in csrs]
    start = time.perf_counter()
    results = authority.issue_many(orders, actor="bench")
    elapsed = time.perf_counter() - start
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise SystemExit(f"error: {len(failed)} orders failed, first: {failed[0]}")
    remote = authority.keystore.remote
    authority.keystore.close()
    authority.database.dispose()
    return len(csrs) / elapsed, remote


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="certificates to issue")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()

    csrs = make_csrs(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url, schema = database_url(args.db, home)
        env = {**os.environ, "MPKI_HOME": str(home), "MPKI_DATABASE_URL": url}
        try:
            settings = load_settings(env)
            authority = open_authority(settings, create_keystore=True)
            create_dev_hierarchy(authority)
            authority.database.dispose()
            # Alternate the two modes, twice each, so neither gains from going first into a smaller database.
            rates: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(2):
                signer = start_signer(env, settings.signer_socket)
                try:
                    rate, remote = timed_issue(settings, csrs)
                finally:
                    signer.terminate()
                    signer.wait(15)
                if not remote:
                    raise SystemExit("a run meant for the signer process signed in-process")
                rates[True].append(rate)
                rates[False].append(timed_issue(settings, csrs)[0])
            through_signer = sum(rates[True]) / 2
            in_process = sum(rates[False]) / 2
        finally:
            if schema:
                drop_schema(schema)
    limit = raw_limit(csrs)
    print(f"db: {args.db}")
    print(f"n: {args.n}")
    print(f"issue_certs_per_s: {through_signer:.0f} (runs: {', '.join(f'{r:.0f}' for r in rates[True])})")
    print(f"issue_in_process_certs_per_s: {in_process:.0f} (runs: {', '.join(f'{r:.0f}' for r in rates[False])})")
    print(f"signer_cost: {1 - through_signer / in_process:.3f}")
    print(f"raw_limit_per_s: {limit:.0f}")
    print(f"ratio: {through_signer / limit:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
