"""Issuance reports per organisation and period (reads only): figures from the store's aggregate queries,
SLA compliance against configured targets, JSON, CSV and HTML (with inline SVG charts) renderers, and the
schedule that keeps the last complete week's and month's reports."""

from mpki.reports.builder import OrganisationRow, Report, ReportBuilder, SlaSummary, Turnaround
from mpki.reports.period import Period
from mpki.reports.render import (
    CSV_COLUMNS,
    FORMATS,
    charts,
    duration,
    reason_name,
    render,
    render_csv,
    render_html,
    render_json,
    to_dict,
)

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "OrganisationRow",
    "Period",
    "Report",
    "ReportBuilder",
    "SlaSummary",
    "Turnaround",
    "charts",
    "duration",
    "reason_name",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "to_dict",
]
