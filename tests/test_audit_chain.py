"""The audit chain: `mpki audit verify` passes an untouched chain and names the first broken link of a
modified, deleted, swapped or inserted one; `mpki audit export` writes one JSON object per event.

Tampering is done the way an attacker with database access would do it: plain SQL on the tables.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import Connection, insert, select, text, update

from mpki.audit import AuditRecord, append, verify_chain
from mpki.audit.chain import GENESIS_HASH, event_hash
from mpki.ca import CertificationAuthority
from mpki.store import AuditEvent, AuditRepository

# The dev hierarchy writes 5 events; these add 20 more so tampering lands well inside the chain.
EXTRA_EVENTS = 20
TOTAL = 2 * 5 + EXTRA_EVENTS  # per dev CA: key.generated and ca.created


@pytest.fixture
def chain(authority: CertificationAuthority) -> CertificationAuthority:
    """A dev hierarchy plus a run of ordinary events, appended in three transactions."""
    for batch in range(3):
        with authority.database.transaction() as session:
            size = 7 if batch < 2 else EXTRA_EVENTS - 14
            append(
                session,
                [
                    AuditRecord(
                        action="test.event",
                        actor=f"tester-{batch}",
                        ca="smki-device-ca",
                        serial=f"{batch:02x}{i:02x}",
                        details={"batch": batch, "item": i, "note": "naïve ünïcode"},
                    )
                    for i in range(size)
                ],
            )
    result = verify_chain(authority.database)
    assert result.ok and result.events == TOTAL, result
    return authority


EVENTS = AuditEvent.__table__


def _event(sql: Connection, seq: int) -> dict[str, object]:
    """One stored event, read through the typed table so `at` comes back as an aware datetime."""
    row = sql.execute(select(EVENTS).where(EVENTS.c.seq == seq)).mappings().one()
    return dict(row)


def _verify_fails(mpki, seq: int, words: str) -> None:  # type: ignore[no-untyped-def]
    run = mpki("audit", "verify")
    assert run.returncode != 0, run.stdout
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert f"broken at event {seq}:" in lines[0], lines[0]
    assert words in lines[0], lines[0]
    assert "Traceback" not in run.stderr


def test_untampered_chain_verifies(chain: CertificationAuthority, mpki) -> None:  # type: ignore[no-untyped-def]
    run = mpki("audit", "verify")
    assert run.returncode == 0, run.stderr
    assert f"audit chain OK: {TOTAL} events" in run.stdout


def test_empty_chain_verifies(settings, mpki) -> None:  # type: ignore[no-untyped-def]
    from mpki.ca.runtime import open_database

    database = open_database(settings)
    try:
        assert verify_chain(database).ok
        assert verify_chain(database).events == 0
    finally:
        database.dispose()
    run = mpki("audit", "verify")
    assert run.returncode == 0, run.stderr
    assert "0 events" in run.stdout


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", "mallory"),
        ("action", "certificate.revoked"),
        ("ca", "smki-org-ca"),
        ("serial", "ffff"),
        ("details", '{"batch":0,"item":3,"note":"edited"}'),
    ],
)
def test_modified_event_is_named(chain, sql, mpki, column: str, value: str) -> None:  # type: ignore[no-untyped-def]
    sql.execute(text(f"UPDATE audit_events SET {column} = :value WHERE seq = 9"), {"value": value})
    assert verify_chain(chain.database).broken_at == 9
    _verify_fails(mpki, 9, "modified")


def test_modified_time_is_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    moment = _event(sql, 12)["at"]
    assert isinstance(moment, dt.datetime)
    sql.execute(update(EVENTS).where(EVENTS.c.seq == 12).values(at=moment - dt.timedelta(microseconds=1)))
    _verify_fails(mpki, 12, "modified")


def test_modified_event_with_recomputed_hash_breaks_the_next_link(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    """An attacker who re-hashes the edited event still cannot make the next event point at it."""
    row = _event(sql, 9)
    forged = event_hash(
        seq=9,
        at=row["at"],  # type: ignore[arg-type]
        actor="mallory",
        action=str(row["action"]),
        ca=row["ca"],  # type: ignore[arg-type]
        serial=row["serial"],  # type: ignore[arg-type]
        request_id=row["request_id"],  # type: ignore[arg-type]
        details=str(row["details"]),
        prev_hash=str(row["prev_hash"]),
    )
    sql.execute(text("UPDATE audit_events SET actor = 'mallory', hash = :h WHERE seq = 9"), {"h": forged})
    assert verify_chain(chain.database).broken_at == 10
    _verify_fails(mpki, 10, "does not follow event 9")


def test_deleted_event_is_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    sql.execute(text("DELETE FROM audit_events WHERE seq = 7"))
    _verify_fails(mpki, 7, "missing")


def test_deleted_first_event_is_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    sql.execute(text("DELETE FROM audit_events WHERE seq = 1"))
    _verify_fails(mpki, 1, "missing")


def test_deleted_last_event_is_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    sql.execute(text("DELETE FROM audit_events WHERE seq = :seq"), {"seq": TOTAL})
    _verify_fails(mpki, TOTAL, "missing")


def test_truncated_chain_with_rewound_head_is_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    """Deleting the tail and rewinding the head's seq (but not knowing how to fix its hash) is caught."""
    sql.execute(text("DELETE FROM audit_events WHERE seq > 20"))
    sql.execute(text("UPDATE audit_head SET seq = 20"))
    _verify_fails(mpki, 20, "tip")


def test_swapped_events_are_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    """Exchange the positions of events 8 and 9 (renumbering them): the chain breaks at 8."""
    sql.execute(text("UPDATE audit_events SET seq = -1 WHERE seq = 8"))
    sql.execute(text("UPDATE audit_events SET seq = 8 WHERE seq = 9"))
    sql.execute(text("UPDATE audit_events SET seq = 9 WHERE seq = -1"))
    assert verify_chain(chain.database).broken_at == 8
    _verify_fails(mpki, 8, "does not follow")


def test_swapped_contents_are_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    """Exchange what events 15 and 16 say while leaving seq, prev_hash and hash in place."""
    first, second = _event(sql, 15), _event(sql, 16)
    assert first["details"] != second["details"]
    for seq, row in ((15, second), (16, first)):
        sql.execute(
            text("UPDATE audit_events SET actor = :actor, serial = :serial, details = :details WHERE seq = :seq"),
            {"actor": row["actor"], "serial": row["serial"], "details": row["details"], "seq": seq},
        )
    _verify_fails(mpki, 15, "modified")


def test_inserted_event_is_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    """A well-formed event slipped in at 11 (later events renumbered): event 12 no longer follows it."""
    previous = _event(sql, 10)
    for seq in range(TOTAL, 10, -1):
        sql.execute(text("UPDATE audit_events SET seq = :new WHERE seq = :old"), {"new": seq + 1, "old": seq})
    _insert_forged(sql, 11, previous)
    sql.execute(text("UPDATE audit_head SET seq = :seq"), {"seq": TOTAL + 1})
    assert verify_chain(chain.database).broken_at == 12
    _verify_fails(mpki, 12, "does not follow event 11")


def test_inserted_event_with_bad_hash_is_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    for seq in range(TOTAL, 10, -1):
        sql.execute(text("UPDATE audit_events SET seq = :new WHERE seq = :old"), {"new": seq + 1, "old": seq})
    _insert_forged(sql, 11, _event(sql, 10), hash_override="ab" * 32)
    _verify_fails(mpki, 11, "modified")


def test_appended_event_is_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    """A perfectly hashed event added after the tip, without the head row moving, is caught."""
    _insert_forged(sql, TOTAL + 1, _event(sql, TOTAL))
    assert verify_chain(chain.database).broken_at == TOTAL + 1
    _verify_fails(mpki, TOTAL + 1, "tip")


def test_tampered_head_is_named(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    sql.execute(text("UPDATE audit_head SET hash = :h"), {"h": GENESIS_HASH})
    _verify_fails(mpki, TOTAL, "tip")


def test_chain_keeps_growing_after_verification(chain: CertificationAuthority) -> None:
    with chain.database.transaction() as session:
        seqs = append(session, [AuditRecord(action="test.more", actor="tester")])
    assert seqs == [TOTAL + 1]
    result = verify_chain(chain.database)
    assert result.ok and result.events == TOTAL + 1


def test_export_writes_one_json_object_per_event(chain, sql, mpki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    count = sql.execute(text("SELECT COUNT(*) FROM audit_events")).scalar_one()
    assert count == TOTAL

    run = mpki("audit", "export")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == count
    events = [json.loads(line) for line in lines]
    assert all(isinstance(event, dict) for event in events)
    assert [event["seq"] for event in events] == list(range(1, count + 1))
    assert events[0]["prev_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]
    assert [e["action"] for e in events[:2]] == ["key.generated", "ca.created"]
    assert events[-1]["details"]["note"] == "naïve ünïcode"
    # Each exported event still hashes to its stored hash, so the export can be checked offline.
    for event in events:
        assert event["hash"] == event_hash(
            seq=event["seq"],
            at=dt.datetime.strptime(event["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC),
            actor=event["actor"],
            action=event["action"],
            ca=event["ca"],
            serial=event["serial"],
            request_id=event["request_id"],
            details=json.dumps(event["details"], sort_keys=True, separators=(",", ":"), ensure_ascii=False),
            prev_hash=event["prev_hash"],
        )

    out = tmp_path / "audit.jsonl"
    run = mpki("audit", "export", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert f"{count} events" in run.stdout
    assert out.read_text(encoding="utf-8").splitlines() == lines


def _insert_forged(sql: Connection, seq: int, previous: dict[str, object], hash_override: str | None = None) -> None:
    at = previous["at"]
    assert isinstance(at, dt.datetime)
    details = '{"forged":true}'
    digest = hash_override or event_hash(
        seq=seq,
        at=at,
        actor="mallory",
        action="certificate.issued",
        ca="smki-device-ca",
        serial="dead",
        request_id=None,
        details=details,
        prev_hash=str(previous["hash"]),
    )
    sql.execute(
        insert(EVENTS).values(
            seq=seq,
            at=at,
            actor="mallory",
            action="certificate.issued",
            ca="smki-device-ca",
            serial="dead",
            request_id=None,
            details=details,
            prev_hash=previous["hash"],
            hash=digest,
        )
    )


@pytest.mark.parametrize("seq", [0, -7])
def test_event_forged_below_the_chain_is_named(chain, sql, mpki, seq: int) -> None:  # type: ignore[no-untyped-def]
    """A row slipped in before event 1 is part of the table, so verification must see it."""
    _insert_forged(sql, seq, _event(sql, 1))
    assert verify_chain(chain.database).broken_at == seq
    _verify_fails(mpki, seq, "out of sequence")


def test_export_includes_every_row_even_forged_ones(chain, sql, mpki) -> None:  # type: ignore[no-untyped-def]
    _insert_forged(sql, -1, _event(sql, 1))
    run = mpki("audit", "export")
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["seq"] for line in run.stdout.splitlines()] == [-1, *range(1, TOTAL + 1)]


# ----- verifying while others append ------------------------------------------------------------
# An event and the head row counting it commit together, but a verifier reading in READ COMMITTED
# (PostgreSQL) sees the head and the events at different moments. These tests replay those moments.


def test_tip_read_before_concurrent_appends_is_not_tampering(
    chain: CertificationAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first look at the tip predates the last three events, which the walk then finds."""
    real_head = AuditRepository.head
    calls = 0

    def stale_then_real(self: AuditRepository) -> object:
        nonlocal calls
        calls += 1
        head = real_head(self)
        if calls > 1 or head is None:
            return head
        earlier = self.session.get(AuditEvent, head.seq - 3)
        assert earlier is not None
        return SimpleNamespace(seq=earlier.seq, hash=earlier.hash)

    monkeypatch.setattr(AuditRepository, "head", stale_then_real)
    result = verify_chain(chain.database)
    assert result.ok, result
    assert result.events == TOTAL


def test_events_committed_after_the_walk_are_walked_too(
    chain: CertificationAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first walk stops three short (they were not yet committed); the tip read after it has them."""
    real_head, real_iterate = AuditRepository.head, AuditRepository.iterate
    walks: list[int | None] = []
    heads = 0

    def stale_head(self: AuditRepository) -> object:
        nonlocal heads
        heads += 1
        head = real_head(self)
        assert head is not None
        if heads == 1:
            earlier = self.session.get(AuditEvent, TOTAL - 3)
            assert earlier is not None
            return SimpleNamespace(seq=earlier.seq, hash=earlier.hash)
        return head

    def short_first_walk(self: AuditRepository, batch: int = 5000, after: int | None = None) -> Iterator[AuditEvent]:
        walks.append(after)
        for event in real_iterate(self, batch, after):
            if len(walks) == 1 and event.seq > TOTAL - 3:
                return
            yield event

    monkeypatch.setattr(AuditRepository, "head", stale_head)
    monkeypatch.setattr(AuditRepository, "iterate", short_first_walk)
    result = verify_chain(chain.database)
    assert result.ok, result
    assert result.events == TOTAL
    assert walks == [None, TOTAL - 3]


def test_verify_during_real_concurrent_appends(chain: CertificationAuthority) -> None:
    """Readers do not block writers (PostgreSQL; SQLite in WAL mode), so appends interleave with the walk."""
    with chain.database.transaction() as session:
        append(session, [AuditRecord(action="test.bulk", actor="tester", details={"i": i}) for i in range(12_000)])
    stop = threading.Event()
    appended = 0

    def appender() -> None:
        nonlocal appended
        while not stop.is_set():
            with chain.database.transaction() as session:
                appended += len(append(session, [AuditRecord(action="test.live", actor="writer")] * 5))

    thread = threading.Thread(target=appender)
    thread.start()
    try:
        results = [verify_chain(chain.database) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    assert appended > 0
    assert all(result.ok for result in results), results
    final = verify_chain(chain.database)
    assert final.ok and final.events == TOTAL + 12_000 + appended
