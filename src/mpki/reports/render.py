"""Report renderers: JSON (the whole report), CSV (one row per organisation, fixed column order) and a
self-contained HTML page with inline SVG charts (Jinja2 with autoescaping: organisation names are data)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from mpki.domain import RevocationReason
from mpki.reports.builder import OrganisationRow, Report, Turnaround
from mpki.reports.charts import bar_chart
from mpki.store import BatchLine

FORMATS = ("json", "csv", "html")
CSV_COLUMNS = (
    "organisation",
    "submitted",
    "issued",
    "rejected",
    "pending",
    "revoked",
    "approval_count",
    "approval_p50_s",
    "approval_p95_s",
    "approval_max_s",
    "approval_within_target",
    "approval_sla_met",
    "issuance_count",
    "issuance_p50_s",
    "issuance_p95_s",
    "issuance_max_s",
    "issuance_within_target",
    "issuance_sla_met",
    "revocation_count",
    "revocation_p50_s",
    "revocation_p95_s",
    "revocation_max_s",
    "revocation_within_target",
    "revocation_sla_met",
    "awaiting_publication",
    "sla_targets_measured",
    "sla_targets_met",
    "batches",
    "batch_items",
    "batches_returned",
)

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)


def reason_name(code: int) -> str:
    try:
        return RevocationReason(code).rfc_name
    except ValueError:
        return str(code)


def _turnaround(value: Turnaround) -> dict[str, Any]:
    return {
        "count": value.count,
        "p50_s": value.p50_s,
        "p95_s": value.p95_s,
        "max_s": value.max_s,
        "target_s": value.target_s,
        "within_target": value.within_target,
        "compliance": value.compliance,
        "sla_met": value.meets_target,
    }


def _batch(batch: BatchLine, organisation: str) -> dict[str, Any]:
    def iso(moment: Any) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "id": batch.id,
        "organisation": organisation,
        "size": batch.size,
        "status": batch.status,
        "issued": batch.issued,
        "rejected": batch.rejected,
        "held": batch.held,
        "submitted_at": iso(batch.submitted_at),
        "started_at": iso(batch.started_at),
        "completed_at": iso(batch.completed_at),
        "approved_at": iso(batch.approved_at),
        "returned_at": iso(batch.returned_at),
    }


def _row(row: OrganisationRow) -> dict[str, Any]:
    return {
        "organisation": row.organisation,
        "submitted": row.submitted,
        "issued": row.issued,
        "rejected": row.rejected,
        "pending": row.pending,
        "revoked": row.revoked,
        "approval": _turnaround(row.approval),
        "issuance": _turnaround(row.issuance),
        "revocation_reasons": {reason_name(code): count for code, count in row.revocation_reasons.items()},
        "revocation_publication": _turnaround(row.revocation),
        "awaiting_publication": row.awaiting_publication,
        "sla": {
            "approval": row.approval.meets_target,
            "issuance": row.issuance.meets_target,
            "revocation": row.revocation.meets_target,
            "measured": row.sla.measured,
            "met": row.sla.met,
            "all_met": row.sla.all_met,
        },
        "batches": [_batch(batch, row.organisation) for batch in row.batches],
    }


def to_dict(report: Report) -> dict[str, Any]:
    totals = _row(report.totals)
    del totals["batches"]  # each batch is listed once, under its organisation
    return {
        "period": report.period.label,
        "start": report.period.start.isoformat(),
        "end": report.period.end.isoformat(),
        "generated_at": report.generated_at.isoformat(),
        "organisation_filter": report.organisation_filter,
        "targets": {
            "approval_p95_hours": report.targets.approval_p95_hours,
            "issuance_p95_minutes": report.targets.issuance_p95_minutes,
            "revocation_p95_minutes": report.targets.revocation_p95_minutes,
        },
        "organisations": [_row(row) for row in report.rows],
        "totals": totals,
        "issued_per_day": {day.isoformat(): count for day, count in report.issued_per_day},
        "turnaround_histogram": {
            "buckets": list(report.histogram_labels),
            "approval": report.approval_histogram,
            "issuance": report.issuance_histogram,
        },
    }


def render_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2) + "\n"


def _csv_row(row: OrganisationRow) -> list[Any]:
    def blank(value: Any) -> Any:
        return "" if value is None else value

    cells: list[Any] = [row.organisation, row.submitted, row.issued, row.rejected, row.pending, row.revoked]
    for value in (row.approval, row.issuance, row.revocation):
        met = value.meets_target
        cells += [value.count, blank(value.p50_s), blank(value.p95_s), blank(value.max_s), value.within_target]
        cells.append("" if met is None else ("yes" if met else "no"))
    cells += [row.awaiting_publication, row.sla.measured, row.sla.met]
    cells += [len(row.batches), sum(b.size for b in row.batches), sum(b.returned_at is not None for b in row.batches)]
    return cells


def render_csv(report: Report) -> str:
    """One line per organisation, then the totals line; the columns are CSV_COLUMNS in that order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in [*report.rows, report.totals]:
        writer.writerow(_csv_row(row))
    return out.getvalue()


def duration(seconds: float | None) -> str:
    """A duration for people: seconds below two minutes, minutes below two hours, else hours."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def charts(report: Report) -> dict[str, Markup]:
    """The two charts as inline SVG images (bar_chart escapes every label it draws: safe markup)."""
    days = [day.isoformat()[5:] for day, _ in report.issued_per_day]
    per_day = [count for _, count in report.issued_per_day]
    issued_chart = bar_chart(
        "issued",
        f"Certificates issued per day, {report.period.label}",
        f"{report.totals.issued} certificates over {len(days)} days; the busiest day had {max(per_day, default=0)}.",
        days,
        per_day,
    )
    combined = [a + i for a, i in zip(report.approval_histogram, report.issuance_histogram, strict=True)]
    turnaround_chart = bar_chart(
        "turnaround",
        f"Turnaround distribution, {report.period.label}",
        "Requests by time from submission to approval plus approvals by time to issuance, in buckets: "
        + ", ".join(f"{label} {count}" for label, count in zip(report.histogram_labels, combined, strict=True)),
        report.histogram_labels,
        combined,
    )
    return {"issued": Markup(issued_chart), "turnaround": Markup(turnaround_chart)}


def render_html(report: Report) -> str:
    drawn = charts(report)
    return _templates.get_template("report.html").render(
        report=report,
        data=to_dict(report),
        issued_chart=drawn["issued"],
        turnaround_chart=drawn["turnaround"],
        duration=duration,
        reason_name=reason_name,
    )


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"unknown report format {fmt!r}")
