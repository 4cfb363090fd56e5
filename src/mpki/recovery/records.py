"""Recovery records under dual control: one person proposes a procedure, a different person approves
it, and only then does it run. Every transition is audited with the record's id, so the audit trail
tells the whole story of a compromise: who raised it, who agreed, what was done, and how it ended."""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass
from typing import Any

from mpki.audit import AuditRecord, append
from mpki.domain import Forbidden, InvalidRequest, utcnow
from mpki.store import Database, RecoveryRecord, RecoveryRepository


class Scenario(enum.StrEnum):
    """Seed 000, Part G, in increasing order of severity."""

    DEVICE = "device"
    ORGANISATION = "organisation"
    ISSUING_CA = "issuing-ca"
    ROOT = "root"
    APEX = "apex"


class RecoveryStatus(enum.StrEnum):
    PROPOSED = "proposed"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class RecoveryView:
    id: int
    scenario: Scenario
    subject: str
    parameters: dict[str, Any]
    status: RecoveryStatus
    proposed_by: str
    proposed_at: dt.datetime
    approved_by: str | None
    approved_at: dt.datetime | None
    completed_at: dt.datetime | None
    outcome: dict[str, Any] | None
    items: dict[str, tuple[int, int]]

    @classmethod
    def of(cls, row: RecoveryRecord, items: dict[str, tuple[int, int]] | None = None) -> RecoveryView:
        return cls(
            id=row.id,
            scenario=Scenario(row.scenario),
            subject=row.subject,
            parameters=json.loads(row.parameters),
            status=RecoveryStatus(row.status),
            proposed_by=row.proposed_by,
            proposed_at=row.proposed_at,
            approved_by=row.approved_by,
            approved_at=row.approved_at,
            completed_at=row.completed_at,
            outcome=json.loads(row.outcome) if row.outcome else None,
            items=items or {},
        )

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "scenario": self.scenario.value,
            "subject": self.subject,
            "parameters": self.parameters,
            "status": self.status.value,
            "proposed_by": self.proposed_by,
            "proposed_at": self.proposed_at.isoformat(),
            "approved_by": self.approved_by,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "outcome": self.outcome,
            "items": {kind: {"total": total, "done": done} for kind, (total, done) in self.items.items()},
        }


def _actor(actor: str) -> str:
    name = actor.strip()
    if not name or "\x00" in name or len(name) > 256:
        raise InvalidRequest("name the person acting (--by): 1 to 256 characters")
    return name


class RecoveryDesk:
    """Proposals, approvals and the record of each run; the procedures themselves live beside it."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def propose(self, scenario: Scenario, subject: str, parameters: dict[str, Any], *, actor: str) -> RecoveryView:
        """First half of dual control: recorded and audited; nothing is changed yet."""
        actor = _actor(actor)
        now = utcnow().replace(microsecond=0)
        with self.database.transaction() as session:
            row = RecoveryRepository(session).add(
                RecoveryRecord(
                    scenario=scenario.value,
                    subject=subject[:512],
                    parameters=json.dumps(parameters, sort_keys=True),
                    status=RecoveryStatus.PROPOSED.value,
                    proposed_by=actor,
                    proposed_at=now,
                )
            )
            append(
                session,
                [
                    AuditRecord(
                        action="recovery.proposed",
                        actor=actor,
                        details={"recovery": row.id, "scenario": scenario.value, "subject": subject, **parameters},
                    )
                ],
                at=now,
            )
            return RecoveryView.of(row)

    def begin(self, recovery_id: int, *, actor: str) -> RecoveryView:
        """Second half: someone other than the proposer approves, and the run starts. A failed run may be
        started again (the procedures resume where they stopped); a completed one never."""
        actor = _actor(actor)
        now = utcnow().replace(microsecond=0)
        with self.database.transaction() as session:
            records = RecoveryRepository(session)
            row = records.by_id(recovery_id)
            if row.status not in (RecoveryStatus.PROPOSED, RecoveryStatus.FAILED):
                raise InvalidRequest(f"recovery {recovery_id} is {row.status}; only a proposed or failed one runs")
            if row.proposed_by == actor:
                raise Forbidden("dual control: the approver must be someone other than the proposer")
            first = row.status == RecoveryStatus.PROPOSED
            if not records.claim(
                recovery_id, row.status, RecoveryStatus.RUNNING.value, approved_by=actor, approved_at=now
            ):
                raise InvalidRequest(f"recovery {recovery_id} was started a moment ago by someone else")
            append(
                session,
                [
                    AuditRecord(
                        action="recovery.approved" if first else "recovery.resumed",
                        actor=actor,
                        details={"recovery": recovery_id, "scenario": row.scenario, "proposed_by": row.proposed_by},
                    )
                ],
                at=now,
            )
        return self.show(recovery_id)

    def step(self, recovery_id: int, name: str, actor: str, details: dict[str, Any]) -> None:
        """One step of a run, in the audit trail as it happens (a failure later does not erase it)."""
        with self.database.transaction() as session:
            append(
                session,
                [
                    AuditRecord(
                        action="recovery.step", actor=actor, details={"recovery": recovery_id, "step": name, **details}
                    )
                ],
            )

    def finish(
        self, recovery_id: int, *, actor: str, outcome: dict[str, Any] | None, error: str | None = None
    ) -> RecoveryView:
        now = utcnow().replace(microsecond=0)
        status = RecoveryStatus.FAILED if error is not None else RecoveryStatus.COMPLETED
        body = outcome if error is None else {**(outcome or {}), "error": error}
        with self.database.transaction() as session:
            records = RecoveryRepository(session)
            values: dict[str, object] = {"outcome": json.dumps(body, sort_keys=True, default=str)}
            if error is None:
                values["completed_at"] = now
            if not records.claim(recovery_id, RecoveryStatus.RUNNING.value, status.value, **values):
                raise InvalidRequest(f"recovery {recovery_id} is not running")
            append(
                session,
                [
                    AuditRecord(
                        action=f"recovery.{status.value}",
                        actor=actor,
                        details={"recovery": recovery_id, **(body or {})},
                    )
                ],
                at=now,
            )
        return self.show(recovery_id)

    def withdraw(self, recovery_id: int, *, actor: str) -> RecoveryView:
        actor = _actor(actor)
        with self.database.transaction() as session:
            records = RecoveryRepository(session)
            row = records.by_id(recovery_id)
            if row.status != RecoveryStatus.PROPOSED or not records.claim(
                recovery_id, RecoveryStatus.PROPOSED.value, RecoveryStatus.WITHDRAWN.value
            ):
                raise InvalidRequest(f"recovery {recovery_id} is {row.status}; only a proposed one is withdrawn")
            append(session, [AuditRecord(action="recovery.withdrawn", actor=actor, details={"recovery": recovery_id})])
        return self.show(recovery_id)

    def show(self, recovery_id: int) -> RecoveryView:
        with self.database.reader() as session:
            records = RecoveryRepository(session)
            return RecoveryView.of(records.by_id(recovery_id), records.item_counts(recovery_id))

    def list(self, status: RecoveryStatus | None = None, limit: int = 100) -> list[RecoveryView]:
        with self.database.reader() as session:
            return [
                RecoveryView.of(row)
                for row in RecoveryRepository(session).search(status.value if status else None, limit)
            ]
