"""Build a typed issuance report for one period from the store's aggregate queries (reads only)."""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass, field

from mpki.config.settings import ReportSettings, Settings
from mpki.domain import NotFound
from mpki.reports.period import Period
from mpki.reports.stats import DurationStats, histogram, summarise
from mpki.store import BatchLine, CertificateFigures, Database, ReportQueries, RequestCounts, Turnarounds

# Turnaround histogram buckets (upper edges): 1 min, 5 min, 15 min, 1 h, 4 h, 24 h, 72 h, then beyond.
HISTOGRAM_EDGES_S = (60, 300, 900, 3600, 14_400, 86_400, 259_200)
HISTOGRAM_LABELS = ("<1m", "1-5m", "5-15m", "15m-1h", "1-4h", "4-24h", "1-3d", ">3d")
NO_ORGANISATION = "(no organisation)"


@dataclass(frozen=True, slots=True)
class Turnaround:
    """Nearest-rank percentiles in seconds, and the share within the SLA target (None when nothing was timed)."""

    count: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None
    target_s: int
    within_target: int

    @property
    def compliance(self) -> float | None:
        return self.within_target / self.count if self.count else None

    @property
    def meets_target(self) -> bool | None:
        """The SLA holds when the p95 is within the target; None when there was nothing to time."""
        return None if self.p95_s is None else self.p95_s <= self.target_s


@dataclass(frozen=True, slots=True)
class OrganisationRow:
    """One organisation's figures for the period."""

    organisation: str
    submitted: int
    issued: int
    rejected: int
    pending: int
    revoked: int
    approval: Turnaround
    issuance: Turnaround
    revocation_reasons: dict[int, int]
    batches: list[BatchLine]


@dataclass(frozen=True, slots=True)
class Report:
    """Per-organisation rows (by name), the totals over them, and the chart series."""

    period: Period
    generated_at: dt.datetime
    organisation_filter: str | None
    targets: ReportSettings
    rows: list[OrganisationRow]
    totals: OrganisationRow
    issued_per_day: list[tuple[dt.date, int]]
    approval_histogram: list[int]
    issuance_histogram: list[int]
    histogram_labels: tuple[str, ...] = field(default=HISTOGRAM_LABELS)


def _turnaround(stats: DurationStats, target_s: int) -> Turnaround:
    def seconds(ms: int | None) -> float | None:
        return None if ms is None else ms / 1000

    return Turnaround(
        stats.count, seconds(stats.p50_ms), seconds(stats.p95_ms), seconds(stats.max_ms), target_s, stats.within_target
    )


class ReportBuilder:
    """Reads the period's aggregates in one read-only snapshot and assembles a Report."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.targets = settings.reports

    def build(self, period: Period, organisation: str | None = None, *, now: dt.datetime | None = None) -> Report:
        approval_target = self.targets.approval_p95_hours * 3600
        issuance_target = self.targets.issuance_p95_minutes * 60
        start, end = period.start, period.end
        with self.database.reader() as session:
            queries = ReportQueries(session)
            only: int | None = None
            if organisation is not None:
                only = queries.organisation_id(organisation)
                if only is None:
                    raise NotFound(f"no organisation named {organisation!r}")
            names: dict[int | None, str] = {key: name for key, name in queries.organisations(only).items()}
            requests = queries.request_counts(start, end, only)
            certificates = queries.certificate_figures(start, end, only)
            turnarounds = queries.turnarounds(start, end, only)
            batches = queries.batches(start, end, only)
        keys = set(names) | set(requests) | set(certificates) | set(turnarounds)
        keys |= {batch.organisation_id for batch in batches}
        if only is None and None in keys:
            names[None] = NO_ORGANISATION
        if only is not None:
            keys.discard(None)
        empty = Turnarounds()
        rows = []
        for key in sorted(keys, key=lambda k: names.get(k, str(k))):
            counts = requests.get(key, RequestCounts())
            figures = certificates.get(key, CertificateFigures())
            lists = turnarounds.get(key, empty)
            rows.append(
                OrganisationRow(
                    organisation=names.get(key, str(key)),
                    submitted=counts.submitted,
                    issued=sum(figures.issued_per_day.values()),
                    rejected=counts.rejected,
                    pending=counts.pending,
                    revoked=sum(figures.revoked_by_reason.values()),
                    approval=_turnaround(summarise(lists.approval_ms, approval_target * 1000), approval_target),
                    issuance=_turnaround(summarise(lists.issuance_ms, issuance_target * 1000), issuance_target),
                    revocation_reasons=dict(sorted(figures.revoked_by_reason.items())),
                    batches=[batch for batch in batches if batch.organisation_id == key],
                )
            )
        all_reasons: dict[int, int] = {}
        per_day: dict[dt.date, int] = {}
        for key in keys:
            figures = certificates.get(key, CertificateFigures())
            for code, count in figures.revoked_by_reason.items():
                all_reasons[code] = all_reasons.get(code, 0) + count
            for day, count in figures.issued_per_day.items():
                per_day[day] = per_day.get(day, 0) + count
        # The totals rank the union of every organisation's durations (a merge of sorted lists).
        approval_all = list(heapq.merge(*(turnarounds.get(key, empty).approval_ms for key in keys)))
        issuance_all = list(heapq.merge(*(turnarounds.get(key, empty).issuance_ms for key in keys)))
        totals = OrganisationRow(
            organisation="all organisations" if organisation is None else organisation,
            submitted=sum(row.submitted for row in rows),
            issued=sum(row.issued for row in rows),
            rejected=sum(row.rejected for row in rows),
            pending=sum(row.pending for row in rows),
            revoked=sum(row.revoked for row in rows),
            approval=_turnaround(summarise(approval_all, approval_target * 1000), approval_target),
            issuance=_turnaround(summarise(issuance_all, issuance_target * 1000), issuance_target),
            revocation_reasons=dict(sorted(all_reasons.items())),
            batches=batches,
        )
        edges = [edge * 1000 for edge in HISTOGRAM_EDGES_S]
        return Report(
            period=period,
            generated_at=now or dt.datetime.now(dt.UTC),
            organisation_filter=organisation,
            targets=self.targets,
            rows=rows,
            totals=totals,
            issued_per_day=[(day, per_day.get(day, 0)) for day in period.days],
            approval_histogram=histogram(approval_all, edges),
            issuance_histogram=histogram(issuance_all, edges),
        )
