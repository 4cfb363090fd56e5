"""Anchoring the audit chain outside the database (issue 13): signed checkpoints in an append-only anchor
directory, every committed event forwarded to syslog, and a verification that compares the chain with
the anchors. Each tampering here passes the chain-only verification; the anchors catch it.

Tampering is done the way an attacker with database access would: plain SQL (as a superuser with
triggers off, see the `sql` fixture), recomputing every hash so the chain is consistent in itself.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, Table, create_engine, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from mpki.audit import AuditAnchoring, AuditRecord, append, install, verify_chain, verify_with_anchors
from mpki.audit.anchoring import SyslogTarget
from mpki.audit.chain import event_hash
from mpki.cli import audit_commands
from mpki.domain import KeyStoreError
from mpki.signer.checkpoints import (
    AnchorDirectory,
    Checkpoint,
    CheckpointForged,
    CheckpointNotary,
    CheckpointRefused,
    SignedCheckpoint,
)
from mpki.store import AuditCheckpoint, AuditEvent, AuditHead, AuditQueries, Database, upgrade

EVENTS = cast(Table, AuditEvent.__table__)
HEAD = cast(Table, AuditHead.__table__)
CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)
EVERY = 5  # a checkpoint once the head is 5 or more past the last one
BATCHES = 7  # transactions of 4 events: checkpoints at 8, 16, 24, and 28 when the anchoring closes
PER_BATCH = 4
TOTAL = BATCHES * PER_BATCH
CHECKPOINTED = [8, 16, 24, 28]


def _public_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class CommittedOnlySigner:
    """The notary, behind a check that it is only ever asked about a head that is already committed."""

    def __init__(self, notary: CheckpointNotary, database: Database) -> None:
        self.notary = notary
        self.database = database
        self.asked: list[int] = []

    def checkpoint(self, sequence: int, chain_hash: str) -> SignedCheckpoint:
        with self.database.reader() as session:  # another connection: sees committed rows only
            assert AuditQueries(session).hash_at(sequence) == chain_hash, "asked to sign an uncommitted head"
        self.asked.append(sequence)
        return self.notary.checkpoint(sequence, chain_hash)


@dataclass
class Anchored:
    database: Database
    anchors: Path
    key: ec.EllipticCurvePrivateKey
    signer: CommittedOnlySigner
    anchoring: AuditAnchoring

    @property
    def trusted(self) -> bytes:
        return _public_der(self.key)

    def anchored(self) -> list[SignedCheckpoint]:
        return AnchorDirectory(self.anchors).read()

    def verify(self) -> Any:
        return verify_with_anchors(self.database, self.anchored(), self.trusted)


def _append_batch(database: Database, batch: int, size: int = PER_BATCH) -> None:
    with database.transaction() as session:
        append(
            session,
            [
                AuditRecord(
                    action="certificate.issued",
                    actor=f'ra-{batch} "quoted" [x]',  # SD-PARAM escaping
                    ca="smki-device-ca",
                    serial=f"{batch:02x}{item:02x}",
                    request_id=batch * 100 + item,
                    details={"batch": batch, "item": item, "note": 'quote " and ] bracket'},
                )
                for item in range(size)
            ],
        )


@pytest.fixture
def anchored(database_url: str, tmp_path: Path) -> Iterator[Anchored]:
    """A chain of 28 events appended in 7 transactions with anchoring installed: 4 checkpoints."""
    database = Database(database_url)
    upgrade(database)
    key = ec.generate_private_key(ec.SECP256R1())
    anchors = tmp_path / "anchors"
    signer = CommittedOnlySigner(
        CheckpointNotary.with_private_key(key, "audit-key-1", AnchorDirectory(anchors)), database
    )
    anchoring = AuditAnchoring(database, every_events=EVERY, every_seconds=3600, signer=signer)
    previous = install(anchoring)
    try:
        for batch in range(BATCHES):
            _append_batch(database, batch)
            assert anchoring.flush()
        assert anchoring.checkpoint_now() is not None
        assert signer.asked == CHECKPOINTED
        yield Anchored(database, anchors, key, signer, anchoring)
    finally:
        anchoring.close()
        install(previous)
        database.dispose()


def _rows(sql: Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in sql.execute(select(EVENTS).order_by(EVENTS.c.seq)).mappings()]


def _replace_from(sql: Connection, start: int, events: list[dict[str, Any]]) -> None:
    """Put `events` in place of everything from `start` on, renumbered and re-chained, and move the head."""
    prev = sql.execute(select(EVENTS.c.hash).where(EVENTS.c.seq == start - 1)).scalar_one()
    sql.execute(delete(EVENTS).where(EVENTS.c.seq >= start))
    for offset, event in enumerate(events):
        fields = {key: event[key] for key in ("at", "actor", "action", "ca", "serial", "request_id", "details")}
        digest = event_hash(seq=start + offset, prev_hash=prev, **fields)
        sql.execute(insert(EVENTS).values(seq=start + offset, prev_hash=prev, hash=digest, **fields))
        prev = digest
    sql.execute(update(HEAD).values(seq=start + len(events) - 1, hash=prev))


def _forged(like: dict[str, Any]) -> dict[str, Any]:
    return like | {"actor": "mallory", "action": "certificate.revoked", "serial": "dead", "details": "{}"}


# Each rewrites the chain from event 19 on (checkpoints at 8 and 16 stay good; 24 and 28 no longer hold).
Rows = list[dict[str, Any]]
TAMPERING: dict[str, Callable[[Rows], Rows]] = {
    "rewrite": lambda tail: [_forged(tail[0]), *tail[1:]],
    "insert": lambda tail: [_forged(tail[0]), *tail],
    "reorder": lambda tail: [tail[1], tail[0], *tail[2:]],
    "delete": lambda tail: tail[1:],
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_rewritten_and_rechained_chain_is_caught_by_the_anchors(anchored: Anchored, sql: Connection, how: str) -> None:
    rows = _rows(sql)
    _replace_from(sql, 19, TAMPERING[how](rows[18:]))
    assert verify_chain(anchored.database).ok  # consistent in itself: the chain alone cannot tell
    result = anchored.verify()
    assert not result.ok
    assert result.broken_at == 17
    assert "events 17 to 24 were rewritten and re-chained" in str(result.reason)
    assert "last good checkpoint: event 16" in str(result.reason)


def test_deleted_tail_with_head_rolled_back_is_caught(anchored: Anchored, sql: Connection) -> None:
    event_26 = sql.execute(select(EVENTS.c.hash).where(EVENTS.c.seq == 26)).scalar_one()
    sql.execute(delete(EVENTS).where(EVENTS.c.seq > 26))
    sql.execute(update(HEAD).values(seq=26, hash=event_26))
    assert verify_chain(anchored.database).ok
    result = anchored.verify()
    assert (result.ok, result.broken_at) == (False, 27)
    assert "events 27 to 28 are missing" in str(result.reason) and "head rolled back" in str(result.reason)
    assert "last good checkpoint: event 24" in str(result.reason)

    # Live, the notary refuses to go back on what it anchored: the next checkpoint fails, loudly.
    lines = (anchored.anchors / "checkpoints.jsonl").read_bytes()
    _append_batch(anchored.database, 99, size=1)
    assert anchored.anchoring.checkpoint_now() is None
    assert anchored.anchoring.stats.checkpoint_failures == 1
    assert (anchored.anchors / "checkpoints.jsonl").read_bytes() == lines


def test_modified_event_is_named_with_the_last_good_checkpoint(anchored: Anchored, sql: Connection) -> None:
    sql.execute(update(EVENTS).where(EVENTS.c.seq == 19).values(actor="mallory"))
    result = anchored.verify()
    assert result.broken_at == 19
    assert "event 19 was modified" in str(result.reason)
    assert "last good checkpoint: event 16" in str(result.reason)


def test_untouched_chain_passes_with_every_checkpoint(anchored: Anchored) -> None:
    result = anchored.verify()
    assert result.ok, result
    assert (result.events, result.checkpoints, result.last_checkpoint) == (TOTAL, len(CHECKPOINTED), TOTAL)
    assert [anchor.sequence for anchor in anchored.anchored()] == CHECKPOINTED
    with anchored.database.reader() as session:
        stored = [row.seq for row in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))]
    assert stored == CHECKPOINTED


def test_checkpoints_in_the_database_must_be_signed_and_agree_with_the_anchors(
    anchored: Anchored, sql: Connection
) -> None:
    row = dict(sql.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.seq == 16)).mappings().one())
    row.pop("id")
    forged = row | {"chain_hash": "ab" * 32}
    sql.execute(insert(CHECKPOINTS).values(forged))  # checkpoint 16's signature over another hash
    result = anchored.verify()
    assert result.broken_at == 16 and "is forged" in str(result.reason), result
    assert "last good checkpoint: event 8" in str(result.reason)

    sql.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.chain_hash == "ab" * 32))
    sql.execute(insert(CHECKPOINTS).values(forged | {"seq": 12, "chain_hash": row["chain_hash"], "signature": b""}))
    result = anchored.verify()
    assert result.broken_at == 12 and "is forged" in str(result.reason), result  # unsigned

    # Signed by the trusted key but never anchored: the database and the anchor directory disagree.
    sql.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.seq == 12))
    head_12 = sql.execute(select(EVENTS.c.hash).where(EVENTS.c.seq == 12)).scalar_one()
    stray = CheckpointNotary.with_private_key(anchored.key, "audit-key-1", None).checkpoint(12, head_12)
    sql.execute(
        insert(CHECKPOINTS).values(
            forged | {"seq": 12, "chain_hash": head_12, "at": stray.at, "signature": stray.signature}
        )
    )
    result = anchored.verify()
    assert result.broken_at == 12 and "missing from the anchor directory" in str(result.reason), result


def test_anchors_signed_by_another_key_are_refused(anchored: Anchored) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    result = verify_with_anchors(anchored.database, anchored.anchored(), _public_der(other))
    assert result.broken_at == 8 and "not signed by the trusted audit key" in str(result.reason)


# ----- the database refuses changes (PostgreSQL) ----------------------------------------------------


def test_postgres_refuses_update_and_delete_on_the_audit_trail(anchored: Anchored, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the append-only trigger and the mpki_app role are PostgreSQL's")
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    statements = [
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3",
        "DELETE FROM audit_events WHERE seq > 20",
        "TRUNCATE audit_events",
        "DELETE FROM audit_checkpoints",
    ]
    try:
        with engine.connect() as connection:
            for statement in statements:  # the owner, a superuser: the trigger says no
                with pytest.raises(DBAPIError, match="the audit trail is append-only"):
                    connection.execute(text(statement))
            connection.execute(text("SET ROLE mpki_app"))
            assert connection.execute(text("SELECT COUNT(*) FROM audit_events")).scalar_one() == TOTAL
            for statement in statements:  # the application's role: no privilege at all
                with pytest.raises(DBAPIError, match="permission denied"):
                    connection.execute(text(statement))
            connection.execute(text("RESET ROLE"))
    finally:
        engine.dispose()
    assert verify_chain(anchored.database).ok and anchored.verify().ok


def test_the_application_role_can_still_append(anchored: Anchored, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the mpki_app role is PostgreSQL's")
    as_app = Database(f"{database_url}%20-crole%3Dmpki_app")  # every session starts as SET ROLE mpki_app
    try:
        with as_app.transaction() as session:
            assert session.execute(text("SELECT current_user")).scalar_one() == "mpki_app"
            assert append(session, [AuditRecord(action="test.as_app", actor="web")]) == [TOTAL + 1]
    finally:
        as_app.dispose()
    assert verify_chain(anchored.database).ok


# ----- syslog -----------------------------------------------------------------------------------------


class SyslogReceiver:
    """A TCP syslog collector on 127.0.0.1: reads RFC 6587 octet-counted frames into `records`."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.records: list[bytes] = []
        self.arrived = threading.Condition()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.server.accept()
        buffer = b""
        with connection:
            while chunk := connection.recv(65536):
                buffer += chunk
                while (space := buffer.find(b" ")) > 0 and len(buffer) >= space + 1 + int(buffer[:space]):
                    size = int(buffer[:space])
                    record, buffer = buffer[space + 1 : space + 1 + size], buffer[space + 1 + size :]
                    with self.arrived:
                        self.records.append(record)
                        self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[bytes]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.records) >= count, timeout)
            return list(self.records)

    def close(self) -> None:
        self.server.close()


RFC5424 = re.compile(
    rb"^<(\d+)>1 (\S+) (\S+) mpki (\d+) (\S+) \[(\S+)@32473((?: \w+=\"(?:[^\"\\]|\\.)*\")+)\] \xef\xbb\xbf(.*)$"
)
SD_PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _parse(record: bytes) -> tuple[int, str, str, str, dict[str, str], str]:
    match = RFC5424.match(record)
    assert match is not None, record
    pri, stamp, _host, _pid, msgid, sd_id, params, message = match.groups()
    values = {name: re.sub(r"\\(.)", r"\1", value) for name, value in SD_PARAM.findall(params.decode())}
    return int(pri), stamp.decode(), msgid.decode(), sd_id.decode(), values, message.decode()


def test_every_committed_event_and_checkpoint_reaches_syslog_in_order(database_url: str, tmp_path: Path) -> None:
    receiver = SyslogReceiver()
    database = Database(database_url)
    upgrade(database)
    key = ec.generate_private_key(ec.SECP256R1())
    notary = CheckpointNotary.with_private_key(key, "audit-key-1", AnchorDirectory(tmp_path / "anchors"))
    target = SyslogTarget.parse(f"tcp://127.0.0.1:{receiver.port}")
    anchoring = AuditAnchoring(database, every_events=EVERY, every_seconds=3600, syslog=target, signer=notary)
    previous = install(anchoring)
    try:
        for batch in range(3):
            _append_batch(database, batch)  # 12 events: a checkpoint at 8
            assert anchoring.flush()
        with pytest.raises(RuntimeError), database.transaction() as session:
            append(session, [AuditRecord(action="rolled.back", actor="nobody")])
            raise RuntimeError("the business step fails: its event is never committed, never forwarded")
        assert anchoring.flush()
        final = anchoring.checkpoint_now()
        assert final is not None and final.sequence == 12
        records = receiver.wait_for(14)
    finally:
        anchoring.close()
        install(previous)
        receiver.close()
    with database.reader() as session:
        stored = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    database.dispose()

    parsed = [_parse(record) for record in records]
    events = [p for p in parsed if p[2] == "audit"]
    checkpoints = [p for p in parsed if p[2] == "checkpoint"]
    assert len(records) == 14 and len(events) == 12 and len(checkpoints) == 2
    assert [int(p[4]["seq"]) for p in events] == list(range(1, 13))  # every event, in sequence order
    for (pri, stamp, _msgid, sd_id, values, message), row in zip(events, stored, strict=True):
        assert (pri, sd_id) == (13 * 8 + 5, "mpki")
        assert stamp == row.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert values == {
            "seq": str(row.seq),
            "action": row.action,
            "actor": row.actor,
            "ca": str(row.ca),
            "serial": str(row.serial),
            "request": str(row.request_id),
            "prev": row.prev_hash,
            "hash": row.hash,
        }
        assert message == row.details and 'quote \\" and ] bracket' in message
    # The checkpoints come after the events they cover, and carry a signature anyone can check.
    assert [int(p[4]["seq"]) for p in checkpoints] == [8, 12]
    assert parsed.index(checkpoints[0]) > 7
    for _pri, _stamp, _msgid, sd_id, values, _message in checkpoints:
        assert sd_id == "mpki-checkpoint"
        signed = SignedCheckpoint.from_json(
            {
                "sequence": values["seq"],
                "chain_hash": values["hash"],
                "at": values["at"],
                "key_id": values["key"],
                "public_key": values["publicKey"],
                "signature": values["signature"],
            }
        )
        signed.verify(_public_der(key))
        assert signed.chain_hash == stored[signed.sequence - 1].hash


def test_a_unix_datagram_target_gets_one_record_per_datagram(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "log.sock"
    collector = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    collector.bind(str(path))
    collector.settimeout(10)
    database = Database(database_url)
    upgrade(database)
    anchoring = AuditAnchoring(database, syslog=SyslogTarget.parse(f"unix:{path}"))
    previous = install(anchoring)
    try:
        _append_batch(database, 0, size=3)
        assert anchoring.flush()
        received = [_parse(collector.recv(65536)) for _ in range(3)]
    finally:
        anchoring.close()
        install(previous)
        collector.close()
        database.dispose()
    assert [int(values["seq"]) for _pri, _stamp, _msgid, _sd, values, _message in received] == [1, 2, 3]


def test_unreachable_syslog_and_signer_never_fail_the_transaction(database_url: str) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()

    class BrokenSigner:
        def checkpoint(self, sequence: int, chain_hash: str) -> SignedCheckpoint:
            raise KeyStoreError("the signer is not running")

    database = Database(database_url)
    upgrade(database)
    anchoring = AuditAnchoring(
        database, every_events=2, syslog=SyslogTarget.parse(f"tcp://127.0.0.1:{port}"), signer=BrokenSigner()
    )
    previous = install(anchoring)
    try:
        _append_batch(database, 0)
        assert anchoring.flush()
        assert anchoring.checkpoint_now() is None
    finally:
        anchoring.close()
        install(previous)
    assert verify_chain(database).events == PER_BATCH  # committed all the same
    assert anchoring.stats.syslog_failures >= 1 and anchoring.stats.forwarded == 0
    assert anchoring.stats.checkpoint_failures >= 1 and anchoring.stats.checkpoints == 0
    database.dispose()


# ----- the anchor directory and the notary ------------------------------------------------------------


def _notary(tmp_path: Path) -> tuple[CheckpointNotary, AnchorDirectory]:
    anchors = AnchorDirectory(tmp_path / "anchors")
    return CheckpointNotary.with_private_key(ec.generate_private_key(ec.SECP256R1()), "k", anchors), anchors


def test_the_anchor_log_refuses_going_back_and_rewriting(tmp_path: Path) -> None:
    notary, anchors = _notary(tmp_path)
    first = notary.checkpoint(10, "aa" * 32)
    notary.checkpoint(10, "aa" * 32)  # the same head again (another node, a later tick) is fine
    fresh, _ = _notary(tmp_path)  # a new process (another key even): what it knows is the log
    with pytest.raises(CheckpointRefused, match="cut back"):
        fresh.checkpoint(9, "bb" * 32)
    with pytest.raises(CheckpointRefused, match="rewritten"):
        fresh.checkpoint(10, "cc" * 32)
    fresh.checkpoint(11, "dd" * 32)
    with pytest.raises(KeyStoreError):  # the kind the signer's socket carries back to the client
        anchors.append(first)  # an old checkpoint replayed straight into the log
    assert [(a.sequence, a.chain_hash[:2]) for a in anchors.read()] == [(10, "aa"), (10, "aa"), (11, "dd")]
    assert stat.S_IMODE(os.stat(anchors.file).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(anchors.path).st_mode) == 0o750


def test_a_torn_last_line_is_skipped_and_closed_by_the_next_append(tmp_path: Path) -> None:
    notary, anchors = _notary(tmp_path)
    notary.checkpoint(5, "aa" * 32)
    with open(anchors.file, "ab") as handle:
        handle.write(b'{"at":"2026-12-01T00:00:00.000000Z","chain_hash":"bb')  # a crash mid-write
    assert [a.sequence for a in anchors.read()] == [5]
    notary.checkpoint(6, "bb" * 32)
    assert [a.sequence for a in anchors.read()] == [5, 6]
    with open(anchors.file, "ab") as handle:
        handle.write(b'{"sequence": "garbage"}\n')
    with pytest.raises(Exception, match="corrupt"):
        anchors.read()


def test_signed_checkpoints_round_trip_and_refuse_tampering(tmp_path: Path) -> None:
    notary, _ = _notary(tmp_path)
    signed = notary.checkpoint(3, "ab" * 32, at=dt.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=dt.UTC))
    assert signed.checkpoint.signed_bytes().startswith(b"mpki-audit-checkpoint\n")
    again = SignedCheckpoint.from_json(signed.to_json())
    assert again == signed
    again.verify(notary.public_key_der)
    moved = SignedCheckpoint(Checkpoint(4, "ab" * 32, signed.at), "k", signed.public_key_der, signed.signature)
    with pytest.raises(CheckpointForged, match="does not verify"):
        moved.verify()


# ----- the command ------------------------------------------------------------------------------------


def test_cli_verify_with_anchors(
    anchored: Anchored, sql: Connection, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    done = runner.invoke(audit_commands.app, ["verify", "--anchors", str(anchored.anchors)])
    assert done.exit_code == 0, done.output
    assert f"audit chain OK: {TOTAL} events, 4 signed checkpoints match, the last at event {TOTAL}" in done.output

    event_26 = sql.execute(select(EVENTS.c.hash).where(EVENTS.c.seq == 26)).scalar_one()
    sql.execute(delete(EVENTS).where(EVENTS.c.seq > 26))
    sql.execute(update(HEAD).values(seq=26, hash=event_26))
    assert runner.invoke(audit_commands.app, ["verify"]).exit_code == 0  # no anchors: the chain alone holds

    monkeypatch.setenv("MPKI_AUDIT_ANCHOR_DIR", str(anchored.anchors))  # the default anchor directory
    failed = runner.invoke(audit_commands.app, ["verify"])
    assert failed.exit_code == 1
    lines = [line for line in failed.output.splitlines() if line.strip()]
    assert len(lines) == 1, failed.output
    assert "audit chain broken at event 27: events 27 to 28 are missing" in lines[0]
    assert "last good checkpoint: event 24" in lines[0]

    other = anchored.anchors.parent / "other.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    wrong_key = runner.invoke(audit_commands.app, ["verify", "--trusted-key", str(other)])
    assert wrong_key.exit_code == 1 and "not signed by the trusted audit key" in wrong_key.output
