"""Scheduled reports: the last complete ISO week and the last complete month (UTC) are kept, one report for
every organisation together and one per organisation, generated once when missing.

Any node may run the schedule at any time. What is due is worked out from the clock and what is already
stored, so a run that finds everything kept reads nothing but the archive's index. Each report is stored
in its own transaction with its `report.generated` audit event, under the archive's lock for its scope:
two nodes racing store one copy, and the loser's unique-constraint error means "someone else did it".
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from mpki.audit import AuditRecord, append
from mpki.config.settings import Settings
from mpki.reports.builder import Report, ReportBuilder
from mpki.reports.period import Period
from mpki.reports.render import render_csv, render_html, render_json
from mpki.store import Database, ReportQueries, StoredReport, StoredReportRepository
from mpki.store.report_archive import ReportArchive

log = logging.getLogger("mpki.reports.schedule")
SCHEDULE_ACTOR = "mpki-report-schedule"


@dataclass(frozen=True, slots=True)
class StoredLine:
    """One report the run stored."""

    id: int
    period: str
    kind: str
    organisation: str | None  # None: every organisation


def due_periods(now: dt.datetime) -> list[Period]:
    """The periods the schedule keeps as of `now`: the last complete ISO week, then the last complete month."""
    return [Period.last_complete_week(now), Period.last_complete_month(now)]


class ReportSchedule:
    """Generates and keeps every due report that is missing."""

    def __init__(self, database: Database, settings: Settings, *, actor: str = SCHEDULE_ACTOR) -> None:
        self.database = database
        self.builder = ReportBuilder(database, settings)
        self.actor = actor

    def missing(self, now: dt.datetime) -> dict[Period, set[int | None]]:
        """Per due period, the scopes (organisation id, None for all) with no kept report."""
        periods = due_periods(now)
        with self.database.reader() as session:
            organisations: set[int | None] = set(ReportQueries(session).organisations())
            stored = ReportArchive(session).stored_scopes(period.label for period in periods)
        wanted = organisations | {None}
        found = {period: {scope for scope in wanted if (period.label, scope) not in stored} for period in periods}
        return {period: scopes for period, scopes in found.items() if scopes}

    def run(self, now: dt.datetime | None = None) -> list[StoredLine]:
        """Store what is due and missing; returns what this run stored (nothing when all is kept)."""
        moment = now or dt.datetime.now(dt.UTC)
        stored: list[StoredLine] = []
        for period, scopes in self.missing(moment).items():
            everyone, each = self.builder.build_each(period, now=moment)
            for scope in sorted(scopes, key=lambda s: -1 if s is None else s):
                report = everyone if scope is None else each.get(scope)
                if report is None:  # an organisation created after the read: the next run keeps it
                    continue
                line = self._store(report, scope)
                if line is not None:
                    stored.append(line)
        return stored

    def _store(self, report: Report, scope: int | None) -> StoredLine | None:
        period = report.period
        bodies = {"json_body": render_json(report), "html_body": render_html(report), "csv_body": render_csv(report)}
        try:
            with self.database.transaction() as session:
                archive = ReportArchive(session)
                archive.lock(period.label, scope)
                repository = StoredReportRepository(session)
                if repository.find(period.label, scope) is not None:
                    return None  # another node stored it while this one was building
                row = repository.add(
                    StoredReport(
                        period=period.label,
                        kind=period.kind,
                        organisation_id=scope,
                        generated_at=report.generated_at,
                        generated_by=self.actor,
                        **bodies,
                    )
                )
                append(
                    session,
                    [
                        AuditRecord(
                            action="report.generated",
                            actor=self.actor,
                            details={
                                "report": row.id,
                                "period": period.label,
                                "kind": period.kind,
                                "organisation": report.organisation_filter,
                            },
                        )
                    ],
                )
                return StoredLine(row.id, period.label, period.kind, report.organisation_filter)
        except IntegrityError:
            log.info("report %s for %s was stored by another node", period.label, scope)
            return None
