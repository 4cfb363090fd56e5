"""Issuance reports per organisation and period (reads only): figures from the store's aggregate queries,
SLA compliance against configured targets, and JSON, CSV and HTML (with inline SVG charts) renderers."""

from mpki.reports.builder import OrganisationRow, Report, ReportBuilder, Turnaround
from mpki.reports.period import Period
from mpki.reports.render import CSV_COLUMNS, FORMATS, render, render_csv, render_html, render_json

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "OrganisationRow",
    "Period",
    "Report",
    "ReportBuilder",
    "Turnaround",
    "render",
    "render_csv",
    "render_html",
    "render_json",
]
