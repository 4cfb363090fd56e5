"""`mpki report`: an issuance report for one ISO week or month, as HTML, CSV or JSON; `mpki report-schedule`
keeps the due weekly and monthly reports now; `mpki report-list` lists the kept ones."""

from __future__ import annotations

import typer

from mpki.ca.runtime import open_database
from mpki.cli.context import clean_errors, console, fail, settings, write_output
from mpki.reports import FORMATS, Period, ReportBuilder, render
from mpki.reports.archive import KeptReports
from mpki.reports.schedule import ReportSchedule


@clean_errors
def report(
    period: str = typer.Option(..., "--period", help="An ISO week (2026-W47) or a month (2026-11), UTC."),
    org: str | None = typer.Option(None, "--org", help="Only this organisation (by name)."),
    fmt: str = typer.Option("html", "--format", help="html, csv or json."),
    out: str | None = typer.Option(None, "--out", help="Write to this file instead of stdout."),
) -> None:
    """Issuance figures per organisation: requests, issuance, revocations, turnaround and SLA compliance."""
    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    parsed = Period.parse(period)
    current = settings()
    database = open_database(current)
    try:
        built = ReportBuilder(database, current).build(parsed, org)
    finally:
        database.dispose()
    write_output(render(built, fmt), out)


@clean_errors
def report_schedule() -> None:
    """Keep the last complete week's and month's reports (all organisations and each one) if missing."""
    current = settings()
    database = open_database(current)
    try:
        stored = ReportSchedule(database, current, actor="mpki-cli-report-schedule").run()
    finally:
        database.dispose()
    for line in stored:
        console.print(
            f"stored report {line.id}: {line.period} ({line.kind}) {line.organisation or 'all organisations'}"
        )
    if not stored:
        console.print("nothing due: the last complete week's and month's reports are kept")


@clean_errors
def report_list() -> None:
    """The kept reports, newest first, one per line with tab-separated fields: id, period, kind, scope, when
    and by whom generated."""
    current = settings()
    database = open_database(current)
    try:
        kept = KeptReports(database).listing()
    finally:
        database.dispose()
    for item in kept:
        when = item.generated_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        scope = item.organisation or "all organisations"
        typer.echo(f"{item.id}\t{item.period}\t{item.kind}\t{scope}\t{when}\t{item.generated_by}")
    if not kept:
        console.print("no kept reports yet: `mpki report-schedule` keeps the due ones")
