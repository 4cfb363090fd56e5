"""Reading kept reports back: the listing (without bodies) and one report's body in one format. Who may
see which is the caller's business (the portal asks `ra.authorisation` with the report's organisation)."""

from __future__ import annotations

from dataclasses import dataclass

from mpki.domain import InvalidRequest, NotFound
from mpki.reports.render import FORMATS
from mpki.store import Database, StoredReportRepository
from mpki.store.report_archive import ArchivedReport, ReportArchive

__all__ = ["ArchivedReport", "KeptBody", "KeptReports"]


@dataclass(frozen=True, slots=True)
class KeptBody:
    """One kept report in one format, with the scope it covers (None: every organisation)."""

    id: int
    period: str
    organisation_id: int | None
    fmt: str
    body: str

    @property
    def filename(self) -> str:
        scope = "all" if self.organisation_id is None else f"org{self.organisation_id}"
        return f"mpki-report-{self.period}-{scope}.{self.fmt}"


class KeptReports:
    def __init__(self, database: Database) -> None:
        self.database = database

    def listing(self, organisation_id: int | None = None, *, everything: bool = True) -> list[ArchivedReport]:
        with self.database.reader() as session:
            return ReportArchive(session).catalogue(organisation_id, everything=everything)

    def body(self, report_id: int, fmt: str) -> KeptBody:
        if fmt not in FORMATS:
            raise InvalidRequest(f"a kept report is available as {', '.join(FORMATS)}, not {fmt!r}")
        with self.database.reader() as session:
            row = StoredReportRepository(session).by_id(report_id)
            if row is None:
                raise NotFound(f"no kept report {report_id}")
            body = {"json": row.json_body, "csv": row.csv_body, "html": row.html_body}[fmt]
            return KeptBody(row.id, row.period, row.organisation_id, fmt, body)
