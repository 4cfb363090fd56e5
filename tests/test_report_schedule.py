"""Scheduled reports: which periods are due at the boundaries (Monday 00:00 UTC, the 1st of a month, the
year turn with ISO week 53), that each due report is stored once per scope with its audit event, that a
second run and a racing node store nothing more, the worker thread, and the report-schedule and
report-list commands."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import pytest
import typer
from sqlalchemy import Connection, text
from typer.testing import CliRunner

from mpki.ca import CertificationAuthority
from mpki.cli import report_commands
from mpki.config import Settings
from mpki.reports import Period
from mpki.reports.archive import KeptReports
from mpki.reports.schedule import ReportSchedule, due_periods
from mpki.store import StoredReportRepository
from mpki.web.report_worker import ReportWorker
from tests.test_reports import ACME, BETA, known  # `known` is a fixture

__all__ = ["known"]

UTC = dt.UTC
MONDAY_AFTER_W47 = dt.datetime(2026, 11, 23, tzinfo=UTC)


def labels(now: dt.datetime) -> list[str]:
    return [period.label for period in due_periods(now)]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (MONDAY_AFTER_W47, ["2026-W47", "2026-10"]),  # Monday 00:00: the week that has just ended
        (MONDAY_AFTER_W47 - dt.timedelta(microseconds=1), ["2026-W46", "2026-10"]),
        (dt.datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC), ["2026-W47", "2026-10"]),
        (dt.datetime(2026, 12, 1, tzinfo=UTC), ["2026-W48", "2026-11"]),  # the 1st at 00:00: the month just ended
        (dt.datetime(2026, 11, 30, 23, 59, 59, 999_999, tzinfo=UTC), ["2026-W48", "2026-10"]),
        (dt.datetime(2027, 1, 1, tzinfo=UTC), ["2026-W52", "2026-12"]),  # a Friday: week 53 is not over
        (dt.datetime(2027, 1, 4, tzinfo=UTC), ["2026-W53", "2026-12"]),  # Monday: 2026's ISO week 53 is
        (dt.datetime(2027, 1, 3, 23, 59, tzinfo=UTC), ["2026-W52", "2026-12"]),
        (dt.datetime(2026, 1, 1, 12, tzinfo=UTC), ["2025-W52", "2025-12"]),  # 2025 has no week 53
        (dt.datetime(2026, 1, 5, tzinfo=UTC), ["2026-W01", "2025-12"]),  # ISO week 1 of 2026 began in 2025
        # Local times count by their UTC instant: 01:00 at +02:00 on the 23rd is still the 22nd in UTC.
        (dt.datetime(2026, 11, 23, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))), ["2026-W46", "2026-10"]),
    ],
)
def test_due_periods_at_the_boundaries(now: dt.datetime, expected: list[str]) -> None:
    assert labels(now) == expected
    week, month = due_periods(now)
    assert (week.kind, month.kind) == ("week", "month")
    assert week.end <= now.astimezone(UTC) and month.end <= now.astimezone(UTC)  # complete
    assert now.astimezone(UTC) < week.end + dt.timedelta(days=7)  # and the latest complete one
    assert Period.parse(week.label) == week


def stored_rows(sql: Connection) -> list[tuple[str, str, int | None]]:
    rows = sql.execute(text("SELECT period, kind, organisation_id FROM stored_reports ORDER BY id")).all()
    return [(period, kind, org) for period, kind, org in rows]


def events(sql: Connection) -> list[dict[str, Any]]:
    rows = sql.execute(text("SELECT actor, details FROM audit_events WHERE action = 'report.generated' ORDER BY seq"))
    return [json.loads(details) | {"actor": actor} for actor, details in rows]


def test_due_reports_are_stored_once_per_scope_with_their_audit_events(
    known: CertificationAuthority, settings: Settings, sql: Connection
) -> None:
    schedule = ReportSchedule(known.database, settings)
    stored = schedule.run(MONDAY_AFTER_W47)
    # Both due periods, each for every organisation together (first) and for each organisation.
    assert [(line.period, line.kind, line.organisation) for line in stored] == [
        ("2026-W47", "week", None),
        ("2026-W47", "week", ACME),
        ("2026-W47", "week", BETA),
        ("2026-10", "month", None),
        ("2026-10", "month", ACME),
        ("2026-10", "month", BETA),
    ]
    assert len(stored_rows(sql)) == 6
    assert [(e["period"], e["organisation"], e["report"]) for e in events(sql)] == [
        (line.period, line.organisation, line.id) for line in stored
    ]
    assert {e["actor"] for e in events(sql)} == {"mpki-report-schedule"}
    # Called again (and later the same week): nothing more is stored, and no event is written.
    assert schedule.run(MONDAY_AFTER_W47) == []
    assert schedule.run(MONDAY_AFTER_W47 + dt.timedelta(days=3)) == []
    assert len(stored_rows(sql)) == 6 and len(events(sql)) == 6
    # The kept bodies are the report of that scope, as at the run.
    kept = KeptReports(known.database)
    beta = next(line for line in stored if line.period == "2026-W47" and line.organisation == BETA)
    data = json.loads(kept.body(beta.id, "json").body)
    assert (data["organisation_filter"], data["totals"]["issued"], data["totals"]["revoked"]) == (BETA, 20, 2)
    everyone = json.loads(kept.body(stored[0].id, "json").body)
    assert everyone["organisation_filter"] is None and everyone["totals"]["submitted"] == 27
    assert kept.body(stored[0].id, "csv").body.splitlines()[-1].startswith("all organisations,27,25")
    assert kept.body(stored[0].id, "html").body.count("<svg") == 2
    # The next Monday the new week is due; the month is already kept.
    later = schedule.run(MONDAY_AFTER_W47 + dt.timedelta(days=7))
    assert [(line.period, line.organisation) for line in later] == [
        ("2026-W48", None),
        ("2026-W48", ACME),
        ("2026-W48", BETA),
    ]


def test_a_report_another_node_stored_meanwhile_is_not_stored_again(
    known: CertificationAuthority, settings: Settings, sql: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule = ReportSchedule(known.database, settings)
    first = schedule.run(MONDAY_AFTER_W47)
    assert len(first) == 6
    # This node decided what was missing before the other node committed: every scope looks missing.
    everything = {period: {None, *(org for org in range(1, 100))} for period in due_periods(MONDAY_AFTER_W47)}
    monkeypatch.setattr(ReportSchedule, "missing", lambda self, now: everything)
    assert schedule.run(MONDAY_AFTER_W47) == []  # found under the lock
    # And had it not looked, the unique constraint refuses an organisation's second copy.
    monkeypatch.setattr(StoredReportRepository, "find", lambda self, period, org: None)
    only_orgs = {period: scopes - {None} for period, scopes in everything.items()}
    monkeypatch.setattr(ReportSchedule, "missing", lambda self, now: only_orgs)
    assert schedule.run(MONDAY_AFTER_W47) == []
    assert len(stored_rows(sql)) == 6 and len(events(sql)) == 6


def test_two_nodes_racing_store_one_copy_of_each(
    known: CertificationAuthority, settings: Settings, sql: Connection
) -> None:
    nodes = [ReportSchedule(known.database, settings), ReportSchedule(known.database, settings)]
    start = threading.Barrier(len(nodes))
    results: list[list[Any]] = []
    errors: list[BaseException] = []

    def node(schedule: ReportSchedule) -> None:
        try:
            start.wait()
            results.append(schedule.run(MONDAY_AFTER_W47))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=node, args=(schedule,)) for schedule in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sum(len(stored) for stored in results) == 6
    rows = stored_rows(sql)
    assert len(rows) == len(set(rows)) == 6  # the all-organisations report (NULL scope) too
    assert len(events(sql)) == 6


def test_worker_runs_the_schedule_until_stopped_and_outlives_a_failure() -> None:
    calls: list[float] = []

    class Flaky:
        def run(self) -> object:
            calls.append(time.monotonic())
            if len(calls) == 1:
                raise RuntimeError("the database is away")
            return []

    worker = ReportWorker(Flaky(), interval=0.02)
    worker.start()
    deadline = time.monotonic() + 10
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    count = len(calls)
    assert count >= 3  # ran at start, failed, and kept checking
    time.sleep(0.1)
    assert len(calls) == count  # stopped


def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("report-schedule")(report_commands.report_schedule)
    app.command("report-list")(report_commands.report_list)
    return app


def test_report_schedule_and_list_commands(
    known: CertificationAuthority, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    empty = runner.invoke(cli(), ["report-list"])
    assert empty.exit_code == 0, empty.output
    assert "no kept reports yet" in empty.output
    done = runner.invoke(cli(), ["report-schedule"])
    assert done.exit_code == 0, done.output
    stored = [line for line in done.output.splitlines() if line.startswith("stored report")]
    assert len(stored) == 6  # every due period (from today's clock) for all, Acme and Beta
    assert sum("all organisations" in line for line in stored) == 2
    again = runner.invoke(cli(), ["report-schedule"])
    assert again.exit_code == 0 and "nothing due" in again.output
    listing = runner.invoke(cli(), ["report-list"])
    lines = listing.output.splitlines()
    assert len(lines) == 6
    assert {line.split("\t")[2] for line in lines} == {"week", "month"}
    assert sum(line.split("\t")[3] == ACME for line in lines) == 2
    assert all(line.split("\t")[5] == "mpki-cli-report-schedule" for line in lines)
