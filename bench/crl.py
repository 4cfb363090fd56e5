"""CRL build time and peak memory at 10^4, 10^5 and 10^6 entries, end to end from the database.

Revoked certificates are stored in the `certificates` table of a fresh installation (bulk-inserted through
the store layer, in chunks of 50,000: nothing is signed to fill it), then
`StatusService(authority).crls.publish("smki-device-ca", "full")` runs the real path: the CRL number is
reserved, entries stream from the database (`RevocationRepository.crl_entries`, yield_per) into the
streamed DER encoder (`mpki.ca.crl.sign_crl`), the CA key signs through the keystore, and the CRL is stored
with its audit event. Each build runs in a fresh process, so that memory freed by the fill (or by an earlier
build) cannot hide what the build needs; its peak is the kernel's high-water mark of resident memory
(VmHWM, reset through /proc/self/clear_refs just before the build), minus the resident size before it.

`encode_only` is `sign_crl` over the same number of entries from an in-memory list (no database), also in a
fresh process. The physical limit, measured in the same run, is what no CRL builder can avoid: iterating
the same rows with a raw DB-API cursor, plus SHA-256 and ECDSA over the CRL's bytes with `cryptography`
alone. The contrast is `cryptography`'s own CertificateRevocationListBuilder given the whole list in its
constructor (one RevokedCertificate object per entry, their building included). Each figure is the fastest
of `--repeat` runs (peaks: the largest). Every CRL is checked with `x509.load_der_x509_crl`: entry count
and signature against the CA certificate.

    python bench/crl.py                                  # 10000,100000,1000000 into SQLite
    python bench/crl.py --n 1000000 --db postgres        # one size, PostgreSQL
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mpki.ca.crl import CrlScope, CrlSpec, sign_crl
from mpki.ca.runtime import open_authority
from mpki.ca.serials import new_serials
from mpki.ca.signing import signature_hash
from mpki.ceremony import create_dev_hierarchy
from mpki.config import load_settings
from mpki.status import StatusService
from mpki.store import CaRepository, CertificateRepository

sys.path.insert(0, str(Path(__file__).resolve().parent))
from issue import database_url, drop_schema
from rows import device_certificate_row

CA_NAME = "smki-device-ca"
DEFAULT_SIZES = "10000,100000,1000000"
FILL_CHUNK = 50_000
REASONS = (0, 1, 3, 4, 5)  # unspecified (no entry extension), keyCompromise, affiliationChanged, superseded, cessation
FIRST_REVOCATION = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


# ----- memory ---------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(work: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, wall seconds, CPU seconds of this process, peak RSS increase in MB) of `work()`. The peak is
    VmHWM after the reset; CPU time says how much of the wall time was this work on a busy machine."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    before = _status_kb("VmRSS")
    cpu = time.process_time()
    start = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    peak = _status_kb("VmHWM")
    return result, elapsed, cpu, (peak - before) / 1024


# ----- entries --------------------------------------------------------------------------------------


def revocation_time(index: int) -> dt.datetime:
    """Each entry its own second (the worst case for the encoder's time cache), with microseconds."""
    return FIRST_REVOCATION + dt.timedelta(seconds=index, microseconds=(index * 7919) % 1_000_000)


def memory_entries(count: int) -> list[tuple[int, dt.datetime, int]]:
    """Entries like the database's: 16-octet positive serials, distinct times, the same reason mix."""
    rng = random.Random(count)
    entries = []
    for index in range(count):
        raw = bytearray(rng.getrandbits(128).to_bytes(16, "big"))
        raw[0] = (raw[0] & 0x7F) or 0x01
        entries.append((int.from_bytes(raw, "big"), revocation_time(index), REASONS[index % len(REASONS)]))
    return entries


def fill(authority: Any, ca_id: int, start: int, stop: int) -> float:
    """Rows start..stop-1 as revoked certificates of the CA, through CertificateRepository.add_many."""
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=365 * 20)
    began = time.perf_counter()
    columns = (TextColumn("fill"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("fill", total=stop, completed=start)
        for low in range(start, stop, FILL_CHUNK):
            high = min(stop, low + FILL_CHUNK)
            rows = []
            for index, (_, serial) in zip(range(low, high), new_serials(high - low), strict=True):
                rows.append(
                    device_certificate_row(
                        ca_id,
                        serial,
                        not_before=now,
                        not_after=not_after,
                        created_at=now,
                        revoked_at=revocation_time(index),
                        revocation_reason=REASONS[index % len(REASONS)],
                    )
                )
            with authority.database.transaction() as session:
                CertificateRepository(session).add_many(rows)
            progress.update(task, completed=high)
    return time.perf_counter() - began


# ----- the measured work, each in a fresh process ---------------------------------------------------


def _open(home: str, url: str) -> Any:
    return open_authority(load_settings({"MPKI_HOME": home, "MPKI_DATABASE_URL": url}))


def child_build(home: str, url: str, out: Any) -> None:
    """The real path: StatusService(...).crls.publish(CA, "full"), from the database."""
    service = StatusService(_open(home, url))
    published, elapsed, cpu, peak = measure(lambda: service.crls.publish(CA_NAME, "full", actor="bench"))
    out.send((elapsed, cpu, peak, published.number, published.entries))


def child_encode(home: str, url: str, count: int, out: Any) -> None:
    """`sign_crl` alone over an in-memory list, signed through the same keystore key."""
    authority = _open(home, url)
    ca = authority.get_ca(CA_NAME)
    key = authority.keystore.signing_key(ca.key_id)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    issuer = x509.load_der_x509_certificate(ca.certificate_der)
    spec = CrlSpec(issuer, 1, now, now + dt.timedelta(days=1), CrlScope.USER)
    entries = memory_entries(count)
    (der, written), elapsed, cpu, peak = measure(lambda: sign_crl(spec, iter(entries), key))
    out.send((elapsed, cpu, peak, der, written))


def child_cryptography(home: str, url: str, count: int, out: Any) -> None:
    """The contrast: cryptography's builder with every RevokedCertificate given to its constructor."""
    authority = _open(home, url)
    ca = authority.get_ca(CA_NAME)
    key = authority.keystore.signing_key(ca.key_id)
    issuer = x509.load_der_x509_certificate(ca.certificate_der)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    entries = memory_entries(count)
    flags = {
        1: x509.ReasonFlags.key_compromise,
        3: x509.ReasonFlags.affiliation_changed,
        4: x509.ReasonFlags.superseded,
        5: x509.ReasonFlags.cessation_of_operation,
    }

    def build() -> bytes:
        revoked = []
        for serial, at, reason in entries:
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at.replace(microsecond=0))
            if reason:
                entry = entry.add_extension(x509.CRLReason(flags[reason]), critical=False)
            revoked.append(entry.build())
        builder = x509.CertificateRevocationListBuilder(
            issuer_name=issuer.subject,
            last_update=now,
            next_update=now + dt.timedelta(days=1),
            extensions=[x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(1))],
            revoked_certificates=revoked,
        )
        return builder.sign(key, signature_hash(key)).public_bytes(serialization.Encoding.DER)

    der, elapsed, cpu, peak = measure(build)
    out.send((elapsed, cpu, peak, der, count))


def in_child(target: Callable[..., None], *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, send))
    process.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:
        process.join()
        raise SystemExit(f"{target.__name__} failed in its process (exit code {process.exitcode})") from None
    process.join()
    return result


def best_run(
    repeat: int, check: Callable[[bytes, int], None], target: Callable[..., None], *args: Any
) -> tuple[float, float, float, int]:
    """Fastest wall time (with its CPU time), largest peak and the CRL's size over `repeat` fresh processes;
    every CRL is checked."""
    runs = []
    for _ in range(repeat):
        elapsed, cpu, peak, der, count = in_child(target, *args)
        check(der, count)
        runs.append((elapsed, cpu, peak, len(der)))
    fastest = min(runs)
    return fastest[0], fastest[1], max(run[2] for run in runs), fastest[3]


# ----- the limit, measured here ---------------------------------------------------------------------


def raw_iterate(authority: Any, ca_id: int) -> tuple[float, int]:
    """Seconds to fetch (serial, revoked_at, reason) of every revoked row with a raw DB-API cursor, in
    bounded memory (a server-side cursor on PostgreSQL), and how many rows."""
    sql = "SELECT serial, revoked_at, revocation_reason FROM certificates WHERE ca_id = {0} AND revoked_at IS NOT NULL"
    raw = authority.database.engine.raw_connection()
    try:
        if authority.database.is_sqlite:
            cursor = raw.driver_connection.cursor()
            start = time.perf_counter()
            cursor.execute(sql.format("?"), (ca_id,))
            rows = sum(1 for _ in cursor)
        else:
            connection = raw.driver_connection
            start = time.perf_counter()
            with connection.transaction(), connection.cursor(name="bench_crl") as cursor:
                cursor.itersize = 20_000
                cursor.execute(sql.format("%s"), (ca_id,))
                rows = sum(1 for _ in cursor)
        return time.perf_counter() - start, rows
    finally:
        raw.close()


def raw_sign(data: bytes, curve: ec.EllipticCurve) -> float:
    """Seconds for SHA-256 (SHA-384 on P-384) and ECDSA over the CRL's bytes with `cryptography` alone."""
    key = ec.generate_private_key(curve)
    digest = hashes.SHA384() if curve.key_size > 256 else hashes.SHA256()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        key.sign(data, ec.ECDSA(digest))
        best = min(best, time.perf_counter() - start)
    return best


def verify(der: bytes, count: int, ca_certificate: bytes, what: str) -> None:
    """Refuse to report a CRL that does not parse, lists the wrong number of entries or does not verify."""
    crl = x509.load_der_x509_crl(der)
    public = x509.load_der_x509_certificate(ca_certificate).public_key()
    if len(crl) != count:
        raise SystemExit(f"error: {what}: the CRL lists {len(crl)} entries, expected {count}")
    if not crl.is_signature_valid(public):  # type: ignore[arg-type]
        raise SystemExit(f"error: {what}: the CRL signature does not verify against the CA certificate")


# ----- main -----------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] <= 0:
        raise SystemExit("error: --n takes positive sizes, e.g. 10000,100000,1000000")
    return sizes


def load_load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def run(args: argparse.Namespace, home: Path, url: str) -> list[str]:
    settings = load_settings({"MPKI_HOME": str(home), "MPKI_DATABASE_URL": url})
    authority = open_authority(settings, create_keystore=True)
    create_dev_hierarchy(authority)
    ca = authority.get_ca(CA_NAME)
    with authority.database.reader() as session:
        ca_id = CaRepository(session).by_name(CA_NAME).id
    ca_public = x509.load_der_x509_certificate(ca.certificate_der).public_key()
    assert isinstance(ca_public, ec.EllipticCurvePublicKey)
    crls = StatusService(authority).crls

    def check(der: bytes, count: int) -> None:
        verify(der, count, ca.certificate_der, f"CRL of {count} entries")

    lines = [
        f"db: {args.db}",
        f"sizes: {','.join(str(size) for size in args.sizes)}",
        "rows: status revoked, placeholder DER of 2 bytes (CRLs never read it), 16-octet random serials",
        f"entries: one revocation second each, reasons cycling {','.join(map(str, REASONS))}",
        "peak_method: VmHWM (kernel RSS high-water mark) reset before the build, minus VmRSS before; fresh process",
        f"cpu_count: {os.cpu_count()}",
        f"repeat: {args.repeat} (times: the fastest run, with its CPU time; peaks: the largest)",
    ]
    filled = 0
    for size in args.sizes:
        print(f"filling to {size:,} revoked rows (load {load_load()})", file=sys.stderr)
        fill_s = fill(authority, ca_id, filled, size)
        filled = size
        print(f"filled in {fill_s:.1f} s; building (load {load_load()})", file=sys.stderr)
        lines.append(f"crl_{size}_load_before: {load_load()}")

        builds = [in_child(child_build, str(home), url) for _ in range(args.repeat)]
        history = reversed(crls.history(CA_NAME, args.repeat))  # oldest first, as built
        for (_, _, _, number, entries), published in zip(builds, history, strict=True):
            if published.number != number or entries != size:
                raise SystemExit(f"error: publish reported {entries} entries in CRL {number}, expected {size}")
            verify(published.der, size, ca.certificate_der, f"published CRL {number} of {size}")
        build_s, build_cpu, _, _, _ = min(builds)
        build_mb = max(build[2] for build in builds)

        encode_s, encode_cpu, encode_mb, _ = best_run(args.repeat, check, child_encode, str(home), url, size)

        iterate_s, rows = min(raw_iterate(authority, ca_id) for _ in range(args.repeat))
        if rows != size:
            raise SystemExit(f"error: the raw cursor saw {rows} rows, expected {size}")
        crl_bytes = len(crls.latest(CA_NAME).der)
        sign_s = raw_sign(crls.latest(CA_NAME).der, ca_public.curve)
        limit_s = iterate_s + sign_s
        lines += [
            f"crl_{size}_fill_s: {fill_s:.1f}",
            f"crl_{size}_build_s: {build_s:.3f}",
            f"crl_{size}_build_cpu_s: {build_cpu:.3f}",
            f"crl_{size}_peak_mb: {build_mb:.1f}",
            f"crl_{size}_bytes: {crl_bytes}",
            f"crl_{size}_encode_only_s: {encode_s:.3f}",
            f"crl_{size}_encode_only_cpu_s: {encode_cpu:.3f}",
            f"crl_{size}_encode_only_peak_mb: {encode_mb:.1f}",
            f"crl_{size}_raw_db_iterate_s: {iterate_s:.3f}",
            f"crl_{size}_raw_sign_s: {sign_s:.3f}",
            f"crl_{size}_limit_s: {limit_s:.3f}",
            f"crl_{size}_ratio: {limit_s / build_s:.3f}",
        ]
        print(f"built {size:,} in {build_s:.2f} s ({build_cpu:.2f} s CPU), peak +{build_mb:.0f} MB", file=sys.stderr)

    if args.contrast:
        count = args.contrast
        print(f"cryptography builder with {count:,} entries (load {load_load()})", file=sys.stderr)
        crypto_s, crypto_cpu, crypto_mb, crypto_bytes = best_run(
            args.repeat, check, child_cryptography, str(home), url, count
        )
        encode_s, encode_cpu, encode_mb, _ = best_run(args.repeat, check, child_encode, str(home), url, count)
        lines += [
            f"cryptography_builder_{count}_s: {crypto_s:.3f}",
            f"cryptography_builder_{count}_cpu_s: {crypto_cpu:.3f}",
            f"cryptography_builder_{count}_peak_mb: {crypto_mb:.1f}",
            f"cryptography_builder_{count}_bytes: {crypto_bytes}",
            f"mpki_encode_only_{count}_s: {encode_s:.3f}",
            f"mpki_encode_only_{count}_cpu_s: {encode_cpu:.3f}",
            f"mpki_encode_only_{count}_peak_mb: {encode_mb:.1f}",
            f"cryptography_to_mpki_peak_ratio: {crypto_mb / max(encode_mb, 0.1):.1f}",
        ]
    largest = args.sizes[-1]
    if largest >= 1_000_000:
        build = next(float(line.split()[1]) for line in lines if line.startswith(f"crl_{largest}_build_s:"))
        lines.append(f"target_1m_under_5_s: {'met' if build < 5.0 else 'missed'}")
    lines.append(f"load_after: {load_load()}")
    authority.database.dispose()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", default=DEFAULT_SIZES, help="CRL sizes, comma-separated (default %(default)s)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (fastest reported)")
    parser.add_argument(
        "--contrast",
        type=int,
        default=100_000,
        help="entries for the cryptography CertificateRevocationListBuilder contrast; 0 skips it",
    )
    args = parser.parse_args()
    args.sizes = parse_sizes(args.n)
    with tempfile.TemporaryDirectory(prefix="mpki-bench-crl-") as tmp:
        home = Path(tmp)
        url, schema = database_url(args.db, home)
        try:
            lines = run(args, home, url)
        finally:
            if schema:
                drop_schema(schema)
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
