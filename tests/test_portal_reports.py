"""Portal reports: the kept reports' list, opening (a standalone document with its own narrow CSP) and
downloading them, making a report now (shown in the page, as an htmx fragment, or downloaded), bad input
answered 400 with its reason, and who may see what: an organisation's RA officer only its own
organisation's reports, a subscriber none."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import Connection, text

from mpki.reports.schedule import ReportSchedule
from tests.support.portal import ORG, PortalWorld, portal

__all__ = ["portal"]

KEPT_AT = dt.datetime(2026, 11, 23, 6, tzinfo=dt.UTC)  # W47 and October are due
HTMX = {"HX-Request": "true"}


@pytest.fixture
def kept(portal: PortalWorld) -> dict[tuple[str, str | None], int]:
    """The due reports kept by the schedule: (period, organisation name or None) -> id."""
    stored = ReportSchedule(portal.authority.database, portal.authority.settings).run(KEPT_AT)
    return {(line.period, line.organisation): line.id for line in stored}


def test_reports_list_every_kept_report_for_provider_staff(
    portal: PortalWorld, kept: dict[tuple[str, str | None], int]
) -> None:
    for label in ("agent", "manager", "auditor", "admin"):
        page = portal.sign_in(label).get("/portal/reports")
        assert page.status_code == 200, (label, page.text)
        assert '<a href="/portal/reports" aria-current="page">Reports</a>' in page.text
        for report_id in kept.values():
            for fmt in ("html", "csv", "json"):
                assert f'href="/portal/reports/{report_id}.{fmt}"' in page.text
        assert page.text.count("All organisations</td>") == 2  # W47 and October
        assert '<label for="period">' in page.text and '<input type="text" id="period" name="period"' in page.text
        assert '<option value="">All organisations</option>' in page.text or "All organisations</option>" in page.text


def test_an_officer_sees_only_its_own_organisations_reports(
    portal: PortalWorld, kept: dict[tuple[str, str | None], int]
) -> None:
    officer = portal.sign_in("officer-A")
    page = officer.get("/portal/reports")
    assert page.status_code == 200
    mine = {kept[("2026-W47", ORG["A"])], kept[("2026-10", ORG["A"])]}
    others = set(kept.values()) - mine
    for report_id in mine:
        assert f"/portal/reports/{report_id}.html" in page.text
    for report_id in others:
        assert f"/portal/reports/{report_id}.html" not in page.text
    assert "All organisations" not in page.text  # neither listed nor offered in the form
    assert f'<option value="{portal.org_ids["B"]}"' not in page.text
    own = officer.get(f"/portal/reports/{kept[('2026-W47', ORG['A'])]}.json")
    assert own.status_code == 200 and json.loads(own.text)["organisation_filter"] == ORG["A"]
    for report_id in (kept[("2026-W47", ORG["B"])], kept[("2026-W47", None)], kept[("2026-10", None)]):
        for fmt in ("html", "csv", "json"):
            refused = officer.get(f"/portal/reports/{report_id}.{fmt}")
            assert refused.status_code == 403, (report_id, fmt)
            assert "<h1>Not allowed</h1>" in refused.text
            assert "organisation_filter" not in refused.text and "<svg" not in refused.text


def test_a_subscriber_may_not_open_reports(portal: PortalWorld, kept: dict[tuple[str, str | None], int]) -> None:
    subscriber = portal.sign_in("subscriber-A")
    assert "/portal/reports" not in subscriber.get("/portal/").text  # not in the menu
    for path in (
        "/portal/reports",
        "/portal/reports/run?period=2026-W47&organisation=&format=html",
        f"/portal/reports/run?period=2026-W47&organisation={portal.org_ids['A']}&format=csv",
        f"/portal/reports/{kept[('2026-W47', ORG['A'])]}.html",
        f"/portal/reports/{kept[('2026-W47', ORG['A'])]}.csv",
    ):
        page = subscriber.get(path)
        assert page.status_code == 403, path
        assert "<h1>Not allowed</h1>" in page.text


def test_signed_out_visitors_are_sent_to_sign_in(portal: PortalWorld, kept: dict[tuple[str, str | None], int]) -> None:
    anonymous = portal.anonymous()
    for path in ("/portal/reports", f"/portal/reports/{kept[('2026-W47', None)]}.json", "/portal/reports/run"):
        response = anonymous.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/portal/login?next=")


def test_a_kept_report_opens_as_its_own_document_and_downloads(
    portal: PortalWorld, kept: dict[tuple[str, str | None], int], sql: Connection
) -> None:
    agent = portal.sign_in("agent")
    report_id = kept[("2026-W47", None)]
    page = agent.get(f"/portal/reports/{report_id}.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert page.text.startswith("<!doctype html>") and page.text.count("<svg") == 2 and "<script" not in page.text
    bodies = dict(
        sql.execute(
            text(
                "SELECT 'csv', csv_body FROM stored_reports WHERE id = :i UNION ALL "
                "SELECT 'json', json_body FROM stored_reports WHERE id = :i"
            ),
            {"i": report_id},
        ).all()
    )
    as_csv = agent.get(f"/portal/reports/{report_id}.csv")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"] == 'attachment; filename="mpki-report-2026-W47-all.csv"'
    assert as_csv.text == bodies["csv"]
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert [row[0] for row in rows[1:]] == [ORG["A"], ORG["B"], "all organisations"]
    as_json = agent.get(f"/portal/reports/{report_id}.json")
    assert as_json.headers["content-type"] == "application/json"
    assert json.loads(as_json.text) == json.loads(bodies["json"])
    assert agent.get(f"/portal/reports/{report_id}.pdf").status_code == 404
    missing = agent.get("/portal/reports/999999.html")
    assert missing.status_code == 404 and "no kept report 999999" in missing.text


def test_make_a_report_now_in_the_page_as_a_fragment_and_as_downloads(portal: PortalWorld) -> None:
    agent = portal.sign_in("agent")
    page = agent.get("/portal/reports/run", params={"period": "2026-W47", "organisation": "", "format": "html"})
    assert page.status_code == 200
    assert "Report 2026-W47 · all organisations" in page.text and page.text.count("<svg") == 2
    assert 'value="2026-W47"' in page.text  # the form keeps what was asked
    assert "default-src 'self'" in page.headers["content-security-policy"]  # the portal's own policy
    assert "Service levels" in page.text and "Revocation to CRL" in page.text
    fragment = agent.get("/portal/reports/run", params={"period": "2026-11", "format": "html"}, headers=HTMX)
    assert fragment.status_code == 200 and "Report 2026-11" in fragment.text
    assert "<html" not in fragment.text and "<nav" not in fragment.text
    org_b = str(portal.org_ids["B"])
    one = agent.get("/portal/reports/run", params={"period": "2026-11", "organisation": org_b, "format": "html"})
    assert f"Report 2026-11 · {ORG['B']}" in one.text
    assert f'<option value="{org_b}" selected>' in one.text
    assert f"/portal/reports/run?period=2026-11&amp;organisation={org_b}&amp;format=csv" in one.text
    as_csv = agent.get("/portal/reports/run", params={"period": "2026-11", "organisation": org_b, "format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert f'filename="mpki-report-2026-11-org{org_b}.csv"' in as_csv.headers["content-disposition"]
    assert [row[0] for row in csv.reader(io.StringIO(as_csv.text))][1:] == [ORG["B"], ORG["B"]]
    as_json = agent.get("/portal/reports/run", params={"period": "2026-W47", "format": "json"})
    assert json.loads(as_json.text)["period"] == "2026-W47"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": "2026-W99"}, "2026 has no week 99"),
        ({"period": "November"}, "is not a report period"),
        ({"period": "2026-13"}, "is not a month"),
        ({"period": ""}, "enter a period"),
        ({"period": "x" * 150}, "is not a report period"),
        ({"period": "2026-11", "format": "pdf"}, "the format must be one of json, csv, html"),
        ({"period": "2026-11", "organisation": "Acme"}, "is not an organisation"),
        ({"period": "2026-11", "organisation": "999999"}, "there is no organisation 999999"),
    ],
)
def test_bad_input_is_answered_400_with_its_reason(
    portal: PortalWorld, sql: Connection, params: dict[str, str], message: str
) -> None:
    agent = portal.sign_in("agent")
    before = sql.execute(text("SELECT COUNT(*) FROM stored_reports")).scalar_one()
    page = agent.get("/portal/reports/run", params={"format": "html", **params})
    assert page.status_code == 400, page.text
    assert 'role="alert"' in page.text and message in " ".join(page.text.split()).replace("&#39;", "'")
    assert "<svg" not in page.text and '<form method="get" action="/portal/reports/run"' in page.text
    fragment = agent.get("/portal/reports/run", params={"format": "html", **params}, headers=HTMX)
    assert fragment.status_code == 400 and message in fragment.text.replace("&#39;", "'")
    assert "<nav" not in fragment.text
    assert sql.execute(text("SELECT COUNT(*) FROM stored_reports")).scalar_one() == before  # nothing written


def test_an_officer_makes_reports_for_its_own_organisation_only(portal: PortalWorld) -> None:
    officer = portal.sign_in("officer-A")
    own = officer.get(
        "/portal/reports/run", params={"period": "2026-W47", "organisation": str(portal.org_ids["A"]), "format": "html"}
    )
    assert own.status_code == 200 and f"Report 2026-W47 · {ORG['A']}" in own.text
    for organisation in ("", str(portal.org_ids["B"])):
        for fmt in ("html", "csv", "json"):
            refused = officer.get(
                "/portal/reports/run", params={"period": "2026-W47", "organisation": organisation, "format": fmt}
            )
            assert refused.status_code == 403, (organisation, fmt)
            assert "<h1>Not allowed</h1>" in refused.text and ORG["B"] not in refused.text
