"""What the RA shows of requests and batches."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mpki.store import Batch, CertificateRequest


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass(frozen=True, slots=True)
class RequestView:
    id: int
    profile: str
    status: str
    organisation_id: int | None
    batch_id: int | None
    item_index: int | None
    eui64: str | None
    key_usage: str | None
    reason: str | None
    submitted_by: str
    submitted_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    issued_at: dt.datetime | None
    serial: str | None

    @classmethod
    def of(cls, row: CertificateRequest) -> RequestView:
        return cls(
            id=row.id,
            profile=row.profile,
            status=row.status,
            organisation_id=row.organisation_id,
            batch_id=row.batch_id,
            item_index=row.item_index,
            eui64=row.eui64,
            key_usage=row.key_usage,
            reason=row.hold_reason if row.status == "pending" else row.reason,
            submitted_by=row.submitted_by,
            submitted_at=row.submitted_at,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            issued_at=row.issued_at,
            serial=row.certificate_serial,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "profile": self.profile,
            "status": self.status,
            "organisation_id": self.organisation_id,
            "batch_id": self.batch_id,
            "item": self.item_index,
            "eui64": self.eui64,
            "key_usage": self.key_usage,
            "reason": self.reason,
            "submitted_by": self.submitted_by,
            "submitted_at": _iso(self.submitted_at),
            "decided_by": self.decided_by,
            "decided_at": _iso(self.decided_at),
            "issued_at": _iso(self.issued_at),
            "serial": self.serial,
        }


@dataclass(frozen=True, slots=True)
class BatchView:
    id: int
    organisation_id: int | None
    profile: str
    status: str
    size: int
    processed: int
    accepted: int
    rejected: int
    held: int
    issued: int
    submitted_by: str
    submitted_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None

    @classmethod
    def of(cls, row: Batch) -> BatchView:
        return cls(
            id=row.id,
            organisation_id=row.organisation_id,
            profile=row.profile,
            status=row.status,
            size=row.size,
            processed=row.processed,
            accepted=row.accepted,
            rejected=row.rejected,
            held=row.held,
            issued=row.issued,
            submitted_by=row.submitted_by,
            submitted_at=row.submitted_at,
            started_at=row.started_at,
            completed_at=row.completed_at,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "organisation_id": self.organisation_id,
            "profile": self.profile,
            "status": self.status,
            "counts": {
                "size": self.size,
                "processed": self.processed,
                "accepted": self.accepted,
                "rejected": self.rejected,
                "held": self.held,
                "issued": self.issued,
            },
            "timeline": {
                "submitted": _iso(self.submitted_at),
                "started": _iso(self.started_at),
                "completed": _iso(self.completed_at),
            },
            "submitted_by": self.submitted_by,
        }
