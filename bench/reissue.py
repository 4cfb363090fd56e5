"""Issuing-CA recovery: `reissue` every live organisation certificate of a retired CA under its successor.

A throwaway installation issues `--n` smki-org certificates under `smki-org-ca` (setup, not timed),
stands up `smki-org-ca-2` for the same profile and retires the first as compromised. The timed part is
what the recovery does: `authority.reissue` over the live serials a page at a time, each certificate
parsed, re-checked against the profile, signed by the new CA, stored with its audit event while the old
one is marked superseded. The physical limit, measured in the same process on the same core afterwards:
ECDSA P-256 signatures over the certificates' TBS bytes, and certificates parsed, rebuilt and signed
with `cryptography` alone (no checks, no database, no audit). The counts must reconcile or it exits 1.

    python bench/reissue.py --n 100000 --db sqlite
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from mpki.ca import CertificationAuthority, IssuanceOrder, IssuedView
from mpki.ca.runtime import open_authority
from mpki.ceremony import create_dev_hierarchy
from mpki.config import load_settings
from mpki.domain import Eui64, KeyUsageChoice, RemotePartyRole
from mpki.profiles.requests import organisation_csr
from mpki.recovery.issuing_ca import PAGE
from mpki.store import CaRepository, RecoveryCertificates

sys.path.insert(0, str(Path(__file__).resolve().parent))
from issue import database_url, drop_schema

OLD_CA, NEW_CA, PROFILE = "smki-org-ca", "smki-org-ca-2", "smki-org"
ROLES = (RemotePartyRole.SUPPLIER, RemotePartyRole.NETWORK_OPERATOR, RemotePartyRole.OTHER)
USAGES = (KeyUsageChoice.DIGITAL_SIGNATURE, KeyUsageChoice.KEY_AGREEMENT)
LIMIT_SAMPLE = 20_000  # certificates the raw limits are measured over


def progress_bar() -> Progress:
    columns = (TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), transient=False)


def make_csrs(count: int, bar: Progress) -> list[bytes]:
    """Distinct keys and EUI-64s, the roles and usages mixed as organisations hold them."""
    task = bar.add_task("csrs", total=count)
    csrs = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        eui64 = Eui64((0x90B3D51F00000000 + index).to_bytes(8, "big"))
        csr = organisation_csr(key, eui64, ROLES[index % len(ROLES)], USAGES[index % len(USAGES)])
        csrs.append(csr.public_bytes(serialization.Encoding.DER))
        if index % 1000 == 999:
            bar.update(task, completed=index + 1)
    bar.update(task, completed=count)
    return csrs


def populate(authority: CertificationAuthority, csrs: list[bytes], bar: Progress) -> None:
    """The CA being recovered, with its certificates, and its successor; the old CA retired."""
    create_dev_hierarchy(authority)
    task = bar.add_task("issue", total=len(csrs))
    orders = [IssuanceOrder(PROFILE, der, approved_by="bench") for der in csrs]
    results = authority.issue_many(orders, actor="bench", progress=lambda done, _: bar.update(task, completed=done))
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise SystemExit(f"error: {len(failed)} setup orders failed, first: {failed[0]}")
    authority.create_ca(
        name=NEW_CA,
        profile_name="smki-issuing",
        common_name="mpki Bench Org CA 2",
        parent="smki-root",
        issues=(PROFILE,),
        actor="bench",
    )
    authority.retire(OLD_CA, status="compromised", actor="bench", reason="bench: issuing CA compromise")


def live_and_counts(authority: CertificationAuthority) -> tuple[list[str], dict[str, int], dict[str, int]]:
    with authority.database.reader() as session:
        cas = CaRepository(session)
        old_id, new_id = cas.by_name(OLD_CA).id, cas.by_name(NEW_CA).id
        certificates = RecoveryCertificates(session)
        return (
            certificates.live_of_ca(old_id, [PROFILE]),
            certificates.count_by_status(old_id, [PROFILE]),
            certificates.count_by_status(new_id, [PROFILE]),
        )


def reissue_all(
    authority: CertificationAuthority, live: list[str], page: int, bar: Progress
) -> tuple[float, float, list[str], int, list[bytes]]:
    """Wall and CPU seconds, errors, pairs told to `on_stored`, and a sample of the replacements' DER.

    CPU time is given because the machine is shared: on SQLite all the work runs in this process."""
    task = bar.add_task("reissue", total=len(live))
    stored = 0
    errors: list[str] = []
    sample: list[bytes] = []

    def on_stored(session: Session, pairs: list[tuple[str, IssuedView]]) -> None:
        nonlocal stored
        stored += len(pairs)

    def advance(offset: int) -> Callable[[int, int], None]:
        return lambda done, _: bar.update(task, completed=offset + done)

    start, cpu = time.perf_counter(), time.process_time()
    for offset in range(0, len(live), page):
        results = authority.reissue(
            OLD_CA, live[offset : offset + page], actor="bench", on_stored=on_stored, progress=advance(offset)
        )
        errors += [r.error or "" for r in results if r.certificate is None]
        room = LIMIT_SAMPLE - len(sample)
        sample += [r.certificate.der for r in results[:room] if r.certificate is not None]
    return time.perf_counter() - start, time.process_time() - cpu, errors, stored, sample


def raw_limits(ders: list[bytes]) -> tuple[float, float]:
    """ECDSA P-256 signs per second over the certificates' TBS, and certificates parsed, rebuilt from
    their own fields and signed per second, with `cryptography` alone."""
    key = ec.generate_private_key(ec.SECP256R1())
    tbs = [x509.load_der_x509_certificate(der).tbs_certificate_bytes for der in ders]
    start = time.perf_counter()
    for payload in tbs:
        key.sign(payload, ec.ECDSA(hashes.SHA256()))
    signs = len(tbs) / (time.perf_counter() - start)
    issuer = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "raw")])
    authority_key = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    start = time.perf_counter()
    for der in ders:
        old = x509.load_der_x509_certificate(der)
        builder = x509.CertificateBuilder(
            issuer_name=issuer,
            subject_name=old.subject,
            public_key=old.public_key(),
            serial_number=int.from_bytes(os.urandom(16), "big") >> 1,
            not_valid_before=old.not_valid_before_utc,
            not_valid_after=old.not_valid_after_utc,
        )
        for extension in old.extensions:
            value = authority_key if isinstance(extension.value, x509.AuthorityKeyIdentifier) else extension.value
            builder = builder.add_extension(value, extension.critical)
        builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return signs, len(ders) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="live organisation certificates to reissue")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--page", type=int, default=PAGE, help="serials per reissue call (the recovery's page)")
    args = parser.parse_args()

    with progress_bar() as bar, tempfile.TemporaryDirectory() as tmp:
        csrs = make_csrs(args.n, bar)
        home = Path(tmp)
        url, schema = database_url(args.db, home)
        try:
            settings = load_settings({"MPKI_HOME": str(home), "MPKI_DATABASE_URL": url})
            authority = open_authority(settings, create_keystore=True)
            populate(authority, csrs, bar)
            del csrs
            live, old_before, new_before = live_and_counts(authority)
            elapsed, cpu, errors, stored, sample = reissue_all(authority, live, args.page, bar)
            left, old_after, new_after = live_and_counts(authority)
            authority.database.dispose()
        finally:
            if schema:
                drop_schema(schema)
    reissued = new_after.get("issued", 0)
    problems = []
    if errors:
        problems.append(f"{len(errors)} reissues failed, first: {errors[0]}")
    if old_before != {"issued": args.n} or new_before:
        problems.append(f"before: old CA {old_before}, new CA {new_before}; expected {args.n} live under the old")
    if left or old_after != {"superseded": args.n}:
        problems.append(f"after: old CA {old_after} with {len(left)} live; expected {args.n} superseded")
    if reissued != len(live) or stored != len(live):
        problems.append(f"{len(live)} live before, {reissued} replacements, {stored} told to on_stored")
    signs, builds = raw_limits(sample)
    rate = reissued / elapsed
    print(f"db: {args.db}")
    print(f"n: {args.n}")
    print(f"page: {args.page}")
    print(f"reissued: {reissued}")
    print(f"seconds: {elapsed:.2f}")
    print(f"cpu_seconds: {cpu:.2f}")
    print(f"reissue_per_second: {rate:.0f}")
    print(f"ecdsa_sign_per_second: {signs:.0f}")
    print(f"build_sign_per_second: {builds:.0f}")
    print(f"ratio: {rate / signs:.3f}")
    print(f"ratio_to_build_sign: {rate / builds:.3f}")
    print(f"reconciled: {'no' if problems else 'yes'}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
