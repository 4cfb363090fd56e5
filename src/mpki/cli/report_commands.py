"""`mpki report`: an issuance report for one ISO week or month, as HTML, CSV or JSON."""

from __future__ import annotations

import typer

from mpki.ca.runtime import open_database
from mpki.cli.context import clean_errors, fail, settings, write_output
from mpki.reports import FORMATS, Period, ReportBuilder, render


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
