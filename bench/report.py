"""Monthly issuance report over 10^6 certificates: time to build it (JSON) against a physical limit.

A fresh installation is filled by bulk insert through the store layer (nothing is signed): `--n` requests
across 20 organisations, all in November 2026 (submitted, decided and issued with varied turnarounds; 2% of
them rejected, 1% left pending, held for review), one certificate per issued request, 3% of those revoked in
the month with a mix of reasons, one batch per 1,000 requests (the requests are its items), and the device
CA's CRLs (a full one every 6 hours, a delta every 30 minutes) for revocation response times. Then
`mpki report --period 2026-11 --format json` runs its real path in-process:
`ReportBuilder(database, settings).build(Period.parse("2026-11"))` and `render_json`. `report_1m_s` is
the fastest of `--repeat` runs (wall time; CPU time of this process is printed too, which on SQLite is the
whole of the work, so a machine loaded by other jobs can be told apart).

The physical limit, measured in the same run over the same rows, is what any report must at least read:
one raw DB-API `SELECT organisation_id, count(*), sum(...) ... GROUP BY organisation_id` over the month's
requests and one over its certificates (no percentiles, no rendering). The ratio is report / limit.

    python bench/report.py                          # 1,000,000 into SQLite
    python bench/report.py --n 100000 --db postgres
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mpki.ca.runtime import open_authority
from mpki.ceremony import create_dev_hierarchy
from mpki.config import load_settings
from mpki.reports import Period, ReportBuilder, render_json
from mpki.store import (
    Batch,
    BatchRepository,
    CaRepository,
    CertificateRepository,
    Crl,
    Organisation,
    OrganisationRepository,
    RequestRepository,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from issue import database_url, drop_schema
from rows import PLACEHOLDER_DER, device_certificate_row

ORGANISATIONS = 20
FILL_CHUNK = 50_000
MONTH_START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
MONTH_SECONDS = 30 * 86_400 - 3 * 86_400  # submissions end 3 days before the month does
REASONS = (0, 1, 3, 4, 5)

PHYSICAL_REQUESTS = (
    "SELECT organisation_id, count(*), sum(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END) "
    "FROM requests WHERE submitted_at >= :s AND submitted_at < :e GROUP BY organisation_id"
)
PHYSICAL_CERTIFICATES = (
    "SELECT organisation_id, count(*), sum(CASE WHEN revoked_at IS NOT NULL THEN 1 ELSE 0 END) "
    "FROM certificates WHERE created_at >= :s AND created_at < :e GROUP BY organisation_id"
)


def fill(authority: Any, n: int) -> float:
    """n requests and their certificates, in chunks, through the store's add_many."""
    began = time.perf_counter()
    with authority.database.transaction() as session:
        orgs = OrganisationRepository(session)
        org_ids = [
            orgs.add(Organisation(name=f"Org {i:02d}", status="active", created_at=MONTH_START)).id
            for i in range(ORGANISATIONS)
        ]
        ca_id = CaRepository(session).by_name("smki-device-ca").id
        batches = BatchRepository(session)
        batch_ids = []
        for index in range(0, n, 1000):
            submitted = MONTH_START + dt.timedelta(seconds=index * MONTH_SECONDS // n)
            batch_ids.append(
                batches.add(
                    Batch(
                        organisation_id=org_ids[(index // 1000) % ORGANISATIONS],
                        profile="smki-device",
                        submitted_by="bench",
                        submitted_at=submitted,
                        size=1000,
                        status="completed",
                        started_at=submitted + dt.timedelta(seconds=2),
                        completed_at=submitted + dt.timedelta(seconds=90),
                    )
                ).id
            )
        for number, minutes in enumerate(range(0, 31 * 24 * 60, 30), start=1):
            this_update = MONTH_START + dt.timedelta(minutes=minutes)
            session.add(
                Crl(
                    ca_id=ca_id,
                    number=number,
                    kind="full" if minutes % 360 == 0 else "delta",
                    base_number=None,
                    status="published",
                    this_update=this_update,
                    next_update=this_update + dt.timedelta(days=1),
                    entries=0,
                    der=None,
                    created_at=this_update,
                )
            )
    columns = (TextColumn("fill"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("fill", total=n)
        for low in range(0, n, FILL_CHUNK):
            high = min(n, low + FILL_CHUNK)
            requests, certificates = [], []
            for i in range(low, high):
                org = org_ids[i % ORGANISATIONS]
                submitted = MONTH_START + dt.timedelta(seconds=i * MONTH_SECONDS // n, microseconds=i % 1000)
                decided = submitted + dt.timedelta(seconds=(i * 7919) % 172_800)  # up to 2 days
                issued = decided + dt.timedelta(seconds=(i * 104_729) % 5400)  # up to 90 min
                status = "rejected" if i % 50 == 0 else "pending" if i % 100 == 1 else "issued"
                requests.append(
                    {
                        "profile": "smki-device",
                        "csr_der": PLACEHOLDER_DER,
                        "status": status,
                        "submitted_by": "bench",
                        "submitted_at": submitted,
                        "decided_by": None if status == "pending" else "bench",
                        "decided_at": None if status == "pending" else decided,
                        "organisation_id": org,
                        "kind": "new",
                        "issued_at": issued if status == "issued" else None,
                        "batch_id": batch_ids[i // 1000],
                        "hold_reason": "awaiting RA agent approval" if status == "pending" else None,
                    }
                )
                if status != "issued":
                    continue
                serial = f"{i + 1:040x}"
                revoked = i % 33 == 2
                certificates.append(
                    device_certificate_row(
                        ca_id,
                        serial,
                        not_before=issued,
                        not_after=issued + dt.timedelta(days=3650),
                        created_at=issued,
                        organisation_id=org,
                        revoked_at=issued + dt.timedelta(hours=1, seconds=i % 1800) if revoked else None,
                        revocation_reason=REASONS[i % len(REASONS)] if revoked else None,
                    )
                )
            with authority.database.transaction() as session:
                RequestRepository(session).add_many(requests)
                CertificateRepository(session).add_many(certificates)
            progress.update(task, completed=high)
    return time.perf_counter() - began


def physical_limit(authority: Any, period: Period) -> float:
    """The two GROUP BY scans through a raw DB-API cursor (SQLAlchemy's text() only for the parameters)."""
    from sqlalchemy import text

    start = time.perf_counter()
    with authority.database.engine.connect() as connection:
        for statement in (PHYSICAL_REQUESTS, PHYSICAL_CERTIFICATES):
            rows = connection.execute(text(statement), {"s": period.start, "e": period.end}).all()
            assert len(rows) == ORGANISATIONS, rows
    return time.perf_counter() - start


def run(args: argparse.Namespace, home: Path, url: str) -> None:
    settings = load_settings({"MPKI_HOME": str(home), "MPKI_DATABASE_URL": url})
    authority = open_authority(settings, create_keystore=True)
    create_dev_hierarchy(authority)
    print(f"filling {args.n:,} requests ({args.db})", file=sys.stderr)
    fill_s = fill(authority, args.n)
    print(f"filled in {fill_s:.1f} s", file=sys.stderr)
    if args.db == "postgres":
        with authority.database.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    period = Period.parse("2026-11")
    builder = ReportBuilder(authority.database, settings)
    report_times, limit_times, report_cpu, limit_cpu = [], [], [], []
    for _ in range(args.repeat):
        cpu = time.process_time()
        start = time.perf_counter()
        report = builder.build(period)
        document = render_json(report)
        report_times.append(time.perf_counter() - start)
        report_cpu.append(time.process_time() - cpu)
        cpu = time.process_time()
        limit_times.append(physical_limit(authority, period))
        limit_cpu.append(time.process_time() - cpu)
    data = json.loads(document)
    totals = data["totals"]
    expected_issued = sum(1 for i in range(args.n) if not (i % 50 == 0 or i % 100 == 1))
    assert totals["issued"] == expected_issued, (totals["issued"], expected_issued)
    assert totals["submitted"] == args.n and len(data["organisations"]) == ORGANISATIONS
    report_s, limit_s = min(report_times), min(limit_times)
    machine = f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}"
    print(f"machine: {machine}, Python {platform.python_version()}")
    print(f"db: {args.db}; requests: {args.n:,}; certificates: {totals['issued']:,}; fill_s: {fill_s:.1f}")
    print(
        f"totals: submitted {totals['submitted']:,} issued {totals['issued']:,} rejected {totals['rejected']:,} "
        f"pending {totals['pending']:,} revoked {totals['revoked']:,}; approval p50/p95/max "
        f"{totals['approval']['p50_s']}/{totals['approval']['p95_s']}/{totals['approval']['max_s']} s; "
        f"issuance p50/p95/max {totals['issuance']['p50_s']}/{totals['issuance']['p95_s']}/"
        f"{totals['issuance']['max_s']} s"
    )
    published = totals["revocation_publication"]
    returned = sum(1 for org in data["organisations"] for batch in org["batches"] if batch["returned_at"])
    print(
        f"revocation to CRL p50/p95/max {published['p50_s']}/{published['p95_s']}/{published['max_s']} s over "
        f"{published['count']:,} (awaiting {totals['awaiting_publication']:,}); batches returned {returned:,}"
    )
    print(f"report_1m_s: {report_s:.2f}  (runs: {', '.join(f'{t:.2f}' for t in report_times)})")
    print(f"physical_limit_s: {limit_s:.2f}  (runs: {', '.join(f'{t:.2f}' for t in limit_times)})")
    print(f"ratio: {report_s / limit_s:.1f}")
    # SQLite runs in this process, so CPU time is the work itself on a machine other jobs may be loading.
    print(f"cpu_s: report {min(report_cpu):.2f}, physical limit {min(limit_cpu):.2f}; load {os.getloadavg()[0]:.1f}")
    authority.database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="requests (and about as many certificates)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (fastest reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = database_url(args.db, Path(tmp))
        try:
            run(args, Path(tmp), url)
        finally:
            if schema:
                drop_schema(schema)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
