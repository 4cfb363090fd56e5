"""Issuance reports against a fixture with known timings: every count and nearest-rank percentile below is
worked out by hand from the rows inserted (written literally, never recomputed by the code under test);
period boundaries (an item exactly at the end is out), ISO week and month parsing, the --org filter, the
JSON, CSV and HTML renderers, SLA compliance, and the `mpki report` command including bad input.

The period is 2026-W47: Monday 2026-11-16 00:00 UTC to Monday 2026-11-23 00:00 UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mpki.ca import CertificationAuthority
from mpki.config import Settings, load_settings
from mpki.config.settings import ReportSettings
from mpki.domain import ConfigError, InvalidRequest, NotFound
from mpki.reports import CSV_COLUMNS, Period, Report, ReportBuilder, Turnaround, render_csv, render_html, render_json
from mpki.reports.stats import histogram, nearest_rank, summarise
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

ACME = "Acme <Energy> & Co"
BETA = "Beta Metering"
END = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=dt.UTC)


def request_row(
    org: int,
    submitted: dt.datetime,
    status: str,
    decided: Any = None,
    issued: Any = None,
    batch_id: int | None = None,
    held: bool = False,
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "hold_reason": "awaiting RA agent approval" if held else None,
        "profile": "smki-device",
        "csr_der": b"\x30\x00",
        "status": status,
        "submitted_by": "fixture",
        "submitted_at": submitted,
        "decided_by": "fixture" if decided else None,
        "decided_at": decided,
        "organisation_id": org,
        "kind": "new",
        "issued_at": issued,
    }


class Certificates:
    def __init__(self, ca_id: int) -> None:
        self.ca_id = ca_id
        self.rows: list[dict[str, Any]] = []

    def add(
        self, org: int, created: dt.datetime, revoked: dt.datetime | None = None, reason: int | None = None
    ) -> None:
        serial = f"{len(self.rows) + 1:040x}"
        self.rows.append(
            {
                "ca_id": self.ca_id,
                "serial": serial,
                "subject": "",
                "eui64": None,
                "role_code": None,
                "profile": "smki-device",
                "key_usage": "digitalSignature",
                "status": "revoked" if revoked else "valid",
                "not_before": created,
                "not_after": created + dt.timedelta(days=365),
                "der": b"\x30\x00",
                "fingerprint_sha256": serial.rjust(64, "f"),
                "public_key_sha256": serial.rjust(64, "e"),
                "request_id": None,
                "organisation_id": org,
                "created_at": created,
                "revoked_at": revoked,
                "revocation_reason": reason,
                "revoked_by": "fixture" if revoked else None,
            }
        )


@pytest.fixture
def known(authority: CertificationAuthority) -> CertificationAuthority:
    """The fixture; the comments give each row's part in the expected figures."""
    database = authority.database
    with database.transaction() as session:
        orgs = OrganisationRepository(session)
        acme = orgs.add(Organisation(name=ACME, status="active", created_at=at(1))).id
        beta = orgs.add(Organisation(name=BETA, status="active", created_at=at(1))).id
        cas = CaRepository(session)
        ca_id = cas.by_name("smki-device-ca").id
        batches = BatchRepository(session)
        # Acme's batch of 3 (rows 0-2 below): one item held for review, approved on the 18th at 10:03.
        acme_batch = batches.add(batch(acme, at(17, 9), 3, at(17, 9, 0, 5), at(17, 11, 5))).id
        # Beta's batch of 20, nothing held: approved and returned when processing finished.
        beta_batch = batches.add(batch(beta, at(19, 9), 20, at(19, 9, 0, 1), at(20, 5))).id
        # Acme's batch whose one item still waits for the RA: neither approved nor returned.
        waiting_batch = batches.add(batch(acme, at(20, 9), 1, at(20, 9, 0, 1), at(20, 9, 0, 2))).id
        batches.add(batch(acme, at(21, 9), 2, at(21, 9, 0, 1), None))  # still processing
        batches.add(batch(beta, END, 7, None, None))  # submitted exactly at the end: not listed
        rows = [
            # Acme, approved and issued in the week: approval 60, 120, 180, 3600, 90000 s; issuance 10..40, 4000 s.
            request_row(acme, at(17, 10), "issued", at(17, 10, 1), at(17, 10, 1, 10), acme_batch),
            request_row(acme, at(17, 11), "issued", at(17, 11, 2), at(17, 11, 2, 20), acme_batch),
            request_row(acme, at(18, 10), "issued", at(18, 10, 3), at(18, 10, 3, 30), acme_batch, held=True),
            request_row(acme, at(18, 12), "issued", at(18, 13), at(18, 13, 0, 40)),
            request_row(acme, at(16, 1), "issued", at(17, 2), at(17, 3, 6, 40)),
            request_row(acme, at(19, 9), "rejected", at(19, 10)),  # rejected in the week
            request_row(acme, at(20, 9), "pending", batch_id=waiting_batch, held=True),  # pending at the end
            # Submitted before, decided exactly at the end: pending at the end, in no turnaround.
            request_row(acme, at(10, 9), "issued", END, END + dt.timedelta(minutes=5)),
            request_row(acme, END, "pending"),  # submitted exactly at the end: not in the week at all
            request_row(acme, at(9, 9), "issued", at(9, 9, 1), at(9, 9, 2)),  # all before the week
            request_row(acme, at(10, 9), "rejected", at(25, 9)),  # rejected after the end: pending at it
        ]
        # Beta: k = 1..20 submitted k hours after 2026-11-19 08:00, approved k minutes later, issued k s later.
        for k in range(1, 21):
            submitted = at(19, 8) + dt.timedelta(hours=k)
            decided = submitted + dt.timedelta(minutes=k)
            rows.append(request_row(beta, submitted, "issued", decided, decided + dt.timedelta(seconds=k), beta_batch))
        RequestRepository(session).add_many(rows)
        certificates = Certificates(ca_id)
        for row in rows[:5]:
            certificates.add(acme, row["issued_at"])  # 17th: 3, 18th: 2
        certificates.rows[0]["revoked_at"] = at(21, 12)  # revoked in the week, superseded
        certificates.rows[0]["revocation_reason"] = 4
        certificates.add(acme, at(10), at(16), 1)  # issued before, revoked at the very start: keyCompromise
        certificates.add(acme, END, END, 1)  # issued and revoked exactly at the end: neither counts
        for row in rows[11:]:
            certificates.add(beta, row["issued_at"])  # 19th: 15, 20th: 5
        certificates.rows[-1]["revoked_at"] = at(22, 23, 59, 59)  # no reason: unspecified (0)
        certificates.rows[-2]["revoked_at"] = at(20, 6)  # Beta, revoked on the 20th at 06:00: unspecified
        CertificateRepository(session).add_many(certificates.rows)
        # CRLs of the device CA: revocation at the 16th 00:00 -> 00:30 full CRL (1800 s); the 20th 06:00 -> the
        # delta at 06:00 exactly (0 s: this_update at the revocation lists it); the 21st 12:00 -> not the one in
        # building at 12:10 nor the earlier ones, the delta at 12:45 (2700 s); the 22nd 23:59:59 -> none yet
        # (awaiting publication): the root's ARL a second later is another CA's.
        root_id = cas.by_name("smki-root").id
        crls = [
            (ca_id, "full", "published", at(15, 23)),
            (ca_id, "full", "published", at(16, 0, 30)),
            (ca_id, "delta", "published", at(20, 6)),
            (ca_id, "full", "published", at(21, 11)),
            (ca_id, "delta", "building", at(21, 12, 10)),
            (ca_id, "delta", "published", at(21, 12, 45)),
            (ca_id, "full", "published", at(22, 12)),
        ]
        crls.append((root_id, "full", "published", at(23)))
        for number, (issuer, kind, status, this_update) in enumerate(crls, start=100):
            session.add(
                Crl(
                    ca_id=issuer,
                    number=number,
                    kind=kind,
                    base_number=None,
                    status=status,
                    this_update=this_update,
                    next_update=this_update + dt.timedelta(days=1),
                    entries=0,
                    der=None,
                    created_at=this_update,
                )
            )
    return authority


def batch(org: int, submitted: dt.datetime, size: int, started: Any, completed: Any) -> Batch:
    return Batch(
        organisation_id=org,
        profile="smki-device",
        submitted_by="fixture",
        submitted_at=submitted,
        size=size,
        status="completed" if completed else "running",
        started_at=started,
        completed_at=completed,
    )


def build(
    authority: CertificationAuthority, settings: Settings, period: str = "2026-W47", org: str | None = None
) -> Report:
    return ReportBuilder(authority.database, settings).build(Period.parse(period), org)


def figures(value: Turnaround) -> tuple[int, float | None, float | None, float | None]:
    return (value.count, value.p50_s, value.p95_s, value.max_s)


# ----- periods ----------------------------------------------------------------------------------------


def test_week_and_month_periods() -> None:
    week = Period.parse("2026-W47")
    assert (week.start, week.end) == (at(16), END)
    assert Period.parse("2026-W01").start == dt.datetime(2025, 12, 29, tzinfo=dt.UTC)  # ISO week 1 starts in 2025
    w53 = Period.parse("2026-W53")  # 2026 starts on a Thursday, so it has an ISO week 53
    assert (w53.start, w53.end) == (at(28, month=12), dt.datetime(2027, 1, 4, tzinfo=dt.UTC))
    month = Period.parse("2026-12")
    assert (month.start, month.end) == (at(1, month=12), dt.datetime(2027, 1, 1, tzinfo=dt.UTC))
    assert Period.parse("2028-02").end - Period.parse("2028-02").start == dt.timedelta(days=29)
    assert len(Period.parse("2026-11").days) == 30


@pytest.mark.parametrize(
    "text",
    ["2025-W53", "2026-W00", "2026-W54", "2026-13", "2026-00", "2026-1", "26-11", "", "W47", "2026-w47", "2026-11-01"],
)
def test_bad_periods(text: str) -> None:
    with pytest.raises(InvalidRequest):
        Period.parse(text)


def test_nearest_rank() -> None:
    assert [nearest_rank([1, 2, 3, 4], p) for p in (1, 25, 50, 51, 75, 95, 100)] == [1, 1, 2, 3, 3, 4, 4]
    assert nearest_rank([7], 50) == nearest_rank([7], 95) == 7
    assert nearest_rank([], 50) is None
    assert nearest_rank(list(range(1, 21)), 95) == 19  # rank ceil(19.0) = 19
    assert nearest_rank(list(range(1, 22)), 95) == 20  # rank ceil(19.95) = 20
    assert histogram([0, 59, 60, 61, 500], [60, 300]) == [2, 2, 1]
    assert summarise([10, 20, 30], target_ms=20).within_target == 2


# ----- figures ----------------------------------------------------------------------------------------


def test_figures_per_organisation(known: CertificationAuthority, settings: Settings) -> None:
    report = build(known, settings)
    acme, beta = report.rows
    assert [acme.organisation, beta.organisation] == [ACME, BETA]
    assert (acme.submitted, acme.issued, acme.rejected, acme.pending, acme.revoked) == (7, 5, 1, 3, 2)
    assert (beta.submitted, beta.issued, beta.rejected, beta.pending, beta.revoked) == (20, 20, 0, 0, 2)
    assert acme.revocation_reasons == {1: 1, 4: 1}
    assert beta.revocation_reasons == {0: 2}
    # Acme approval [60, 120, 180, 3600, 90000]: p50 rank 3, p95 rank ceil(4.75) = 5.
    assert figures(acme.approval) == (5, 180, 90000, 90000)
    assert figures(acme.issuance) == (5, 30, 4000, 4000)
    # Beta approval 60..1200 s by 60: p50 rank 10, p95 rank 19; issuance 1..20 s.
    assert figures(beta.approval) == (20, 600, 1140, 1200)
    assert figures(beta.issuance) == (20, 10, 19, 20)
    # SLA (24 h approval, 60 min issuance): Acme misses both (p95 25 h and 4000 s), Beta meets both.
    assert (acme.approval.meets_target, acme.approval.within_target) == (False, 4)
    assert (acme.issuance.meets_target, acme.issuance.within_target) == (False, 4)
    assert (beta.approval.meets_target, beta.issuance.meets_target) == (True, True)
    assert beta.approval.compliance == 1.0
    assert [(b.size, b.submitted_at, b.started_at, b.completed_at) for b in acme.batches] == [
        (3, at(17, 9), at(17, 9, 0, 5), at(17, 11, 5)),
        (1, at(20, 9), at(20, 9, 0, 1), at(20, 9, 0, 2)),
        (2, at(21, 9), at(21, 9, 0, 1), None),
    ]
    assert [(b.size, b.completed_at) for b in beta.batches] == [(20, at(20, 5))]


def test_revocation_response_and_sla(known: CertificationAuthority, settings: Settings) -> None:
    report = build(known, settings)
    acme, beta = report.rows
    # Acme: 16th 00:00 -> full CRL at 00:30 (1800 s); 21st 12:00 -> delta at 12:45 (2700 s), the CRL in
    # building at 12:10 not counted. p50 rank 1, p95 rank ceil(1.9) = 2.
    assert figures(acme.revocation) == (2, 1800, 2700, 2700)
    assert (acme.revocation.within_target, acme.revocation.meets_target, acme.awaiting_publication) == (2, True, 0)
    # Beta: 20th 06:00 -> delta at 06:00 exactly (0 s); 22nd 23:59:59 -> no CRL of its CA yet.
    assert figures(beta.revocation) == (1, 0, 0, 0)
    assert beta.awaiting_publication == 1
    # Totals [0, 1800, 2700]: p50 rank 2, p95 rank ceil(2.85) = 3.
    assert figures(report.totals.revocation) == (3, 1800, 2700, 2700)
    assert report.totals.awaiting_publication == 1
    # SLA: Acme misses approval and issuance, meets revocation; Beta meets all three.
    assert (acme.sla.measured, acme.sla.met, acme.sla.all_met) == (3, 1, False)
    assert (beta.sla.measured, beta.sla.met, beta.sla.all_met) == (3, 3, True)
    assert (report.totals.sla.measured, report.totals.sla.met) == (3, 3)


def test_revocation_target_from_config(known: CertificationAuthority, env: dict[str, str]) -> None:
    strict = load_settings(env | {"MPKI_REPORTS_REVOCATION_P95_MINUTES": "40"})
    acme, beta = build(known, strict).rows
    assert (acme.revocation.target_s, acme.revocation.within_target, acme.revocation.meets_target) == (2400, 1, False)
    assert (acme.sla.measured, acme.sla.met) == (3, 0)
    assert beta.revocation.meets_target is True


def test_nothing_revoked_or_timed_is_not_measured(known: CertificationAuthority, settings: Settings) -> None:
    quiet = build(known, settings, "2025-W10").rows[0]
    assert figures(quiet.revocation) == (0, None, None, None)
    assert (quiet.sla.measured, quiet.sla.met, quiet.sla.all_met) == (0, 0, None)


def test_batch_timelines(known: CertificationAuthority, settings: Settings) -> None:
    acme, beta = build(known, settings).rows
    # Held item approved on the 18th at 10:03 and issued 30 s later; the others were issued on the 17th.
    assert [(b.held, b.approved_at, b.returned_at) for b in acme.batches] == [
        (1, at(18, 10, 3), at(18, 10, 3, 30)),
        (1, None, None),  # its only item still waits for the RA
        (0, None, None),  # still processing
    ]
    # Nothing held: approved and returned when processing finished (after the last issue at 04:20:20).
    assert [(b.held, b.approved_at, b.returned_at) for b in beta.batches] == [(0, at(20, 5), at(20, 5))]


def test_each_organisation_from_one_read_matches_a_filtered_build(
    known: CertificationAuthority, settings: Settings
) -> None:
    moment = at(28)
    builder = ReportBuilder(known.database, settings)
    everyone, each = builder.build_each(Period.parse("2026-W47"), now=moment)
    assert everyone == builder.build(Period.parse("2026-W47"), now=moment)
    names = {report.organisation_filter for report in each.values()}
    assert names == {ACME, BETA}
    for report in each.values():
        assert report == builder.build(Period.parse("2026-W47"), report.organisation_filter, now=moment)


def test_totals_and_charts(known: CertificationAuthority, settings: Settings) -> None:
    report = build(known, settings)
    totals = report.totals
    assert (totals.submitted, totals.issued, totals.rejected, totals.pending, totals.revoked) == (27, 25, 1, 3, 4)
    assert totals.revocation_reasons == {0: 2, 1: 1, 4: 1}
    # 25 approvals: rank 13 is 600 s, rank ceil(23.75) = 24 is 3600 s. Issuance: rank 13 is 12 s, rank 24 is 40 s.
    assert figures(totals.approval) == (25, 600, 3600, 90000)
    assert figures(totals.issuance) == (25, 12, 40, 4000)
    assert (totals.approval.meets_target, totals.issuance.meets_target) == (True, True)
    assert len(totals.batches) == 4
    assert [count for _, count in report.issued_per_day] == [0, 3, 2, 15, 5, 0, 0]
    assert report.issued_per_day[0][0] == dt.date(2026, 11, 16)
    # Buckets <1m, 1-5m, 5-15m, 15m-1h, 1-4h, 4-24h, 1-3d, >3d.
    # Approval: Acme 60, 120, 180 and Beta 60..240 under 5 min (7); Beta 300..840 (10); Beta 900..1200 (6); Acme
    # 3600 (1-4h); Acme 90000 (1-3d).
    assert report.approval_histogram == [0, 7, 10, 6, 1, 0, 1, 0]
    assert report.issuance_histogram == [24, 0, 0, 0, 1, 0, 0, 0]


def test_month_and_org_filter(known: CertificationAuthority, settings: Settings) -> None:
    month = build(known, settings, "2026-11")
    acme = month.rows[0]
    # Submitted: the week's 7, three on the 9th and 10th, one at 23 November 00:00. Issued: the week's 5, the
    # certificates of the 10th and of the 23rd. Rejected: the 19th and the 25th. Pending on 1 December: the two
    # never decided. Revoked: the 16th, the 21st and the 23rd.
    assert (acme.submitted, acme.issued, acme.rejected, acme.pending, acme.revoked) == (11, 7, 2, 2, 3)
    only = build(known, settings, org=BETA)
    assert [row.organisation for row in only.rows] == [BETA]
    assert (only.totals.submitted, only.totals.issued, only.totals.revoked) == (20, 20, 2)
    assert (only.totals.approval.p50_s, only.totals.approval.p95_s) == (600, 1140)
    assert sum(count for _, count in only.issued_per_day) == 20
    with pytest.raises(NotFound):
        build(known, settings, org="Nobody Ltd")


def test_targets_from_config(known: CertificationAuthority, env: dict[str, str], tmp_path: Path) -> None:
    settings = load_settings(env | {"MPKI_REPORTS_APPROVAL_P95_HOURS": "26", "MPKI_REPORTS_ISSUANCE_P95_MINUTES": "70"})
    assert (settings.reports.approval_p95_hours, settings.reports.issuance_p95_minutes) == (26, 70)
    acme = build(known, settings).rows[0]
    assert (acme.approval.meets_target, acme.issuance.meets_target) == (True, True)
    assert acme.approval.target_s == 26 * 3600
    with pytest.raises(ConfigError):
        load_settings(env | {"MPKI_REPORTS_APPROVAL_P95_HOURS": "0"})
    config = tmp_path / "mpki.toml"
    config.write_text("[reports]\napproval_p95_hours = 12\n")
    from_file = load_settings(env | {"MPKI_CONFIG": str(config)})
    assert (from_file.reports.approval_p95_hours, from_file.reports.issuance_p95_minutes) == (12, 60)
    assert load_settings(env | {"MPKI_CONFIG": str(config), "MPKI_REPORTS_APPROVAL_P95_HOURS": "5"}).reports == (
        ReportSettings(approval_p95_hours=5)
    )


def test_empty_period(known: CertificationAuthority, settings: Settings) -> None:
    report = build(known, settings, "2025-W10")
    assert [(row.submitted, row.approval.p50_s, row.approval.meets_target) for row in report.rows] == [
        (0, None, None),
        (0, None, None),
    ]
    assert "No certificate was revoked" in render_html(report)


# ----- renderers --------------------------------------------------------------------------------------


def test_json_csv_html(known: CertificationAuthority, settings: Settings) -> None:
    report = build(known, settings)
    data = json.loads(render_json(report))
    assert (data["period"], data["start"], data["end"]) == ("2026-W47", "2026-11-16T00:00:00+00:00", END.isoformat())
    assert data["organisations"][0]["approval"] | {} == {
        "count": 5,
        "p50_s": 180,
        "p95_s": 90000,
        "max_s": 90000,
        "target_s": 86400,
        "within_target": 4,
        "compliance": 0.8,
        "sla_met": False,
    }
    assert data["organisations"][0]["revocation_reasons"] == {"keyCompromise": 1, "superseded": 1}
    assert data["organisations"][0]["revocation_publication"] | {} == {
        "count": 2,
        "p50_s": 1800,
        "p95_s": 2700,
        "max_s": 2700,
        "target_s": 3600,
        "within_target": 2,
        "compliance": 1.0,
        "sla_met": True,
    }
    assert data["organisations"][1]["awaiting_publication"] == 1
    assert data["targets"]["revocation_p95_minutes"] == 60
    assert data["organisations"][0]["sla"] == {
        "approval": False,
        "issuance": False,
        "revocation": True,
        "measured": 3,
        "met": 1,
        "all_met": False,
    }
    assert [(b["held"], b["approved_at"], b["returned_at"]) for b in data["organisations"][0]["batches"]] == [
        (1, "2026-11-18T10:03:00+00:00", "2026-11-18T10:03:30+00:00"),
        (1, None, None),
        (0, None, None),
    ]
    assert data["organisations"][1]["batches"][0]["size"] == 20
    assert data["totals"]["submitted"] == 27
    assert data["issued_per_day"]["2026-11-19"] == 15

    lines = list(csv.reader(io.StringIO(render_csv(report))))
    assert tuple(lines[0]) == CSV_COLUMNS
    assert lines[1][:6] == [ACME, "7", "5", "1", "3", "2"]
    assert lines[1][CSV_COLUMNS.index("approval_p95_s")] == "90000.0"
    assert lines[1][CSV_COLUMNS.index("approval_sla_met")] == "no"
    assert lines[2][CSV_COLUMNS.index("issuance_sla_met")] == "yes"
    revocation = [CSV_COLUMNS.index(f"revocation_{name}") for name in ("count", "p50_s", "p95_s", "max_s", "sla_met")]
    assert [lines[1][i] for i in revocation] == ["2", "1800.0", "2700.0", "2700.0", "yes"]
    assert [lines[3][i] for i in revocation] == ["3", "1800.0", "2700.0", "2700.0", "yes"]
    tail = ("awaiting_publication", "sla_targets_measured", "sla_targets_met", "batches", "batch_items")
    assert [lines[1][CSV_COLUMNS.index(c)] for c in (*tail, "batches_returned")] == ["0", "3", "1", "3", "6", "1"]
    assert [lines[2][CSV_COLUMNS.index(c)] for c in (*tail, "batches_returned")] == ["1", "3", "3", "1", "20", "1"]
    assert [lines[3][CSV_COLUMNS.index(c)] for c in (*tail, "batches_returned")] == ["1", "3", "3", "4", "26", "2"]
    assert lines[3][:6] == ["all organisations", "27", "25", "1", "3", "4"]
    assert len(lines) == 4

    page = render_html(report)
    assert "Revocation response" in page and "Service levels" in page and "1 of 3" in page
    assert "2026-11-18T10:03:30+00:00" in page  # Acme's batch returned
    assert page.count("<svg") == 2 and page.count('role="img"') == 2
    assert page.count("<desc id=") == 2 and '<title id="issued-title">' in page
    assert "Acme &lt;Energy&gt; &amp; Co" in page and "<Energy>" not in page
    assert "missed" in page and "met" in page
    assert "<script" not in page


# ----- the command ------------------------------------------------------------------------------------


def test_cli_report(known: CertificationAuthority, mpki: Any, tmp_path: Any) -> None:
    done = mpki("report", "--period", "2026-W47", "--format", "json", check=True)
    assert json.loads(done.stdout)["totals"]["issued"] == 25
    done = mpki("report", "--period", "2026-W47", "--org", BETA, "--format", "csv", check=True)
    assert [line.split(",")[0] for line in done.stdout.splitlines()] == ["organisation", BETA, BETA]
    out = tmp_path / "report.html"
    mpki("report", "--period", "2026-11", "--format", "html", "--out", str(out), check=True)
    assert out.read_text().count("<svg") == 2

    for args, message in [
        (("--period", "2026-W99", "--format", "json"), "no week 99"),
        (("--period", "November", "--format", "json"), "not a report period"),
        (("--period", "2026-11", "--format", "pdf"), "--format must be one of"),
        (("--period", "2026-11", "--org", "Nobody Ltd", "--format", "json"), "Nobody Ltd"),
    ]:
        bad = mpki("report", *args)
        assert bad.returncode != 0, args
        assert message in " ".join(bad.stderr.split()), bad.stderr
        assert bad.stdout == ""
    assert mpki("report", "--format", "json").returncode != 0  # --period is required


def test_settings_default(settings: Settings) -> None:
    assert replace(settings.reports).approval_p95_hours == 24
    assert settings.reports.issuance_p95_minutes == 60
