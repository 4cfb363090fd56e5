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
from mpki.store.report_queries import RevocationTimes

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
class SlaSummary:
    """The three service-level targets (approval, issuance, revocation publication) for one organisation:
    how many could be measured (something was timed) and how many of those were met."""

    measured: int
    met: int

    @property
    def all_met(self) -> bool | None:
        return None if not self.measured else self.met == self.measured


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
    # Revocation to its first publication in a CRL, and revocations of the period no CRL lists yet.
    revocation: Turnaround
    awaiting_publication: int

    @property
    def sla(self) -> SlaSummary:
        verdicts = [t.meets_target for t in (self.approval, self.issuance, self.revocation)]
        return SlaSummary(sum(v is not None for v in verdicts), sum(v is True for v in verdicts))


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


@dataclass(frozen=True, slots=True)
class _Figures:
    """Everything the store returned for one period, keyed by organisation id (None: no organisation)."""

    names: dict[int | None, str]
    requests: dict[int | None, RequestCounts]
    certificates: dict[int | None, CertificateFigures]
    turnarounds: dict[int | None, Turnarounds]
    revocations: dict[int | None, RevocationTimes]
    batches: list[BatchLine]

    def keys(self) -> set[int | None]:
        found = set(self.names) | set(self.requests) | set(self.certificates) | set(self.turnarounds)
        return found | set(self.revocations) | {batch.organisation_id for batch in self.batches}


def _turnaround(stats: DurationStats, target_s: int) -> Turnaround:
    def seconds(ms: int | None) -> float | None:
        return None if ms is None else ms / 1000

    return Turnaround(
        stats.count, seconds(stats.p50_ms), seconds(stats.p95_ms), seconds(stats.max_ms), target_s, stats.within_target
    )


def _merge(lists: list[list[int]]) -> list[int]:
    """Sorted lists merged into one sorted list (one list is returned as it is: nothing to merge)."""
    return lists[0] if len(lists) == 1 else list(heapq.merge(*lists))


class ReportBuilder:
    """Reads the period's aggregates in one read-only snapshot and assembles a Report."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.targets = settings.reports

    def build(self, period: Period, organisation: str | None = None, *, now: dt.datetime | None = None) -> Report:
        """The report for every organisation, or for the one named (NotFound if there is none)."""
        with self.database.reader() as session:
            queries = ReportQueries(session)
            only: int | None = None
            if organisation is not None:
                only = queries.organisation_id(organisation)
                if only is None:
                    raise NotFound(f"no organisation named {organisation!r}")
            figures = self._read(queries, period, only)
        keys = figures.keys()
        if only is not None:
            keys = {only}
        return self._assemble(period, figures, keys, organisation, now or dt.datetime.now(dt.UTC))

    def build_each(self, period: Period, *, now: dt.datetime | None = None) -> tuple[Report, dict[int, Report]]:
        """The all-organisations report and one per organisation, from one read of the period's figures
        (the schedule keeps them all; reading once costs one report, not one per organisation)."""
        moment = now or dt.datetime.now(dt.UTC)
        with self.database.reader() as session:
            figures = self._read(ReportQueries(session), period, None)
        everyone = self._assemble(period, figures, figures.keys(), None, moment)
        each = {
            key: self._assemble(period, figures, {key}, name, moment)
            for key, name in figures.names.items()
            if key is not None
        }
        return everyone, each

    @staticmethod
    def _read(queries: ReportQueries, period: Period, only: int | None) -> _Figures:
        start, end = period.start, period.end
        names: dict[int | None, str] = {key: name for key, name in queries.organisations(only).items()}
        return _Figures(
            names=names,
            requests=queries.request_counts(start, end, only),
            certificates=queries.certificate_figures(start, end, only),
            turnarounds=queries.turnarounds(start, end, only),
            revocations=queries.revocation_times(start, end, only),
            batches=queries.batches(start, end, only),
        )

    def _assemble(
        self,
        period: Period,
        figures: _Figures,
        keys: set[int | None],
        organisation: str | None,
        now: dt.datetime,
    ) -> Report:
        approval_target = self.targets.approval_p95_hours * 3600
        issuance_target = self.targets.issuance_p95_minutes * 60
        revocation_target = self.targets.revocation_p95_minutes * 60
        names = dict(figures.names)
        if None in keys:
            names[None] = NO_ORGANISATION
        empty, unpublished = Turnarounds(), RevocationTimes()

        def merged(members: set[int | None]) -> tuple[list[int], list[int], list[int]]:
            """Approval, issuance and revocation durations of these organisations, ranked together."""
            approval = _merge([figures.turnarounds.get(k, empty).approval_ms for k in members])
            issuance = _merge([figures.turnarounds.get(k, empty).issuance_ms for k in members])
            revocation = _merge([figures.revocations.get(k, unpublished).published_ms for k in members])
            return approval, issuance, revocation

        def row(
            name: str, members: set[int | None], durations: tuple[list[int], list[int], list[int]]
        ) -> OrganisationRow:
            approval, issuance, revocation = durations
            reasons: dict[int, int] = {}
            issued = 0
            for key in members:
                certificates = figures.certificates.get(key, CertificateFigures())
                issued += sum(certificates.issued_per_day.values())
                for code, count in certificates.revoked_by_reason.items():
                    reasons[code] = reasons.get(code, 0) + count
            counts = [figures.requests.get(key, RequestCounts()) for key in members]
            return OrganisationRow(
                organisation=name,
                submitted=sum(c.submitted for c in counts),
                issued=issued,
                rejected=sum(c.rejected for c in counts),
                pending=sum(c.pending for c in counts),
                revoked=sum(reasons.values()),
                approval=_turnaround(summarise(approval, approval_target * 1000), approval_target),
                issuance=_turnaround(summarise(issuance, issuance_target * 1000), issuance_target),
                revocation_reasons=dict(sorted(reasons.items())),
                batches=[b for b in figures.batches if b.organisation_id in members],
                revocation=_turnaround(summarise(revocation, revocation_target * 1000), revocation_target),
                awaiting_publication=sum(figures.revocations.get(k, unpublished).awaiting for k in members),
            )

        ordered = sorted(keys, key=lambda k: names.get(k, str(k)))
        rows = [row(names.get(key, str(key)), {key}, merged({key})) for key in ordered]
        everything = merged(keys)
        totals = row("all organisations" if organisation is None else organisation, keys, everything)
        per_day: dict[dt.date, int] = {}
        for key in keys:
            for day, count in figures.certificates.get(key, CertificateFigures()).issued_per_day.items():
                per_day[day] = per_day.get(day, 0) + count
        edges = [edge * 1000 for edge in HISTOGRAM_EDGES_S]
        approval_all, issuance_all, _ = everything
        return Report(
            period=period,
            generated_at=now,
            organisation_filter=organisation,
            targets=self.targets,
            rows=rows,
            totals=totals,
            issued_per_day=[(day, per_day.get(day, 0)) for day in period.days],
            approval_histogram=histogram(approval_all, edges),
            issuance_histogram=histogram(issuance_all, edges),
        )
