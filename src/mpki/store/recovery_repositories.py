"""Storage for the recovery procedures: their records and items, device flags, and the certificates
a procedure works through (read a page at a time, so a 100,000-certificate CA never sits in memory)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from mpki.domain import NotFound
from mpki.store.schema import DeviceFlag, IssuedCertificate, RecoveryItem, RecoveryRecord


class RecoveryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, record: RecoveryRecord) -> RecoveryRecord:
        self.session.add(record)
        self.session.flush()
        return record

    def by_id(self, recovery_id: int, *, lock: bool = False) -> RecoveryRecord:
        query = select(RecoveryRecord).where(RecoveryRecord.id == recovery_id)
        if lock:
            query = query.with_for_update()
        found = self.session.scalars(query).first()
        if found is None:
            raise NotFound(f"no recovery record {recovery_id}")
        return found

    def search(self, status: str | None = None, limit: int = 100) -> Sequence[RecoveryRecord]:
        query = select(RecoveryRecord)
        if status is not None:
            query = query.where(RecoveryRecord.status == status)
        return self.session.scalars(query.order_by(RecoveryRecord.id.desc()).limit(limit)).all()

    def claim(self, recovery_id: int, from_status: str, to_status: str, **values: object) -> bool:
        """Move a record between states only if nobody moved it first (a second approver loses the race)."""
        moved = self.session.execute(
            update(RecoveryRecord)
            .where(RecoveryRecord.id == recovery_id, RecoveryRecord.status == from_status)
            .values(status=to_status, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(moved, "rowcount", 0))

    # ----- items -----------------------------------------------------------------------------

    def add_items(self, recovery_id: int, kind: str, subjects: Sequence[str], at: dt.datetime) -> None:
        if subjects:
            self.session.add_all(
                RecoveryItem(recovery_id=recovery_id, kind=kind, subject=s, created_at=at) for s in subjects
            )
            self.session.flush()

    def settle_items(self, recovery_id: int, kind: str, replacements: dict[str, str]) -> None:
        """One statement for a whole chunk (executemany), by the (recovery, kind, subject) unique key."""
        if not replacements:
            return
        items = cast(Table, RecoveryItem.__table__)
        statement = (
            update(items)
            .where(
                items.c.recovery_id == recovery_id,
                items.c.kind == kind,
                items.c.subject == bindparam("item_subject"),
            )
            .values(replacement=bindparam("item_replacement"))
        )
        self.session.execute(
            statement,
            [{"item_subject": subject, "item_replacement": value} for subject, value in replacements.items()],
        )

    def open_items(self, recovery_id: int, kind: str, after_id: int, limit: int) -> Sequence[RecoveryItem]:
        """Items not yet done, a page at a time in id order."""
        return self.session.scalars(
            select(RecoveryItem)
            .where(
                RecoveryItem.recovery_id == recovery_id,
                RecoveryItem.kind == kind,
                RecoveryItem.replacement.is_(None),
                RecoveryItem.id > after_id,
            )
            .order_by(RecoveryItem.id)
            .limit(limit)
        ).all()

    def items(self, recovery_id: int, limit: int = 1000) -> Sequence[RecoveryItem]:
        return self.session.scalars(
            select(RecoveryItem).where(RecoveryItem.recovery_id == recovery_id).order_by(RecoveryItem.id).limit(limit)
        ).all()

    def item_counts(self, recovery_id: int) -> dict[str, tuple[int, int]]:
        """Per kind: (items, items with their replacement recorded)."""
        rows = self.session.execute(
            select(RecoveryItem.kind, func.count(), func.count(RecoveryItem.replacement))
            .where(RecoveryItem.recovery_id == recovery_id)
            .group_by(RecoveryItem.kind)
        ).all()
        return {str(kind): (int(total), int(done)) for kind, total, done in rows}


class DeviceFlagRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def flag(self, eui64s: Sequence[str], recovery_id: int, at: dt.datetime) -> None:
        self.session.add_all(
            DeviceFlag(eui64=e, recovery_id=recovery_id, status="flagged", flagged_at=at) for e in eui64s
        )
        self.session.flush()

    def flagged(self, eui64s: Sequence[str]) -> dict[str, int]:
        """The devices among `eui64s` still flagged, with the recovery that flagged them."""
        found: dict[str, int] = {}
        ordered = sorted(set(eui64s))
        for start in range(0, len(ordered), 500):
            rows = self.session.execute(
                select(DeviceFlag.eui64, DeviceFlag.recovery_id).where(
                    DeviceFlag.eui64.in_(ordered[start : start + 500]), DeviceFlag.status == "flagged"
                )
            ).all()
            found.update((str(e), int(r)) for e, r in rows)
        return found

    def clear(self, eui64: str, replacement_serial: str, at: dt.datetime) -> int:
        moved = self.session.execute(
            update(DeviceFlag)
            .where(DeviceFlag.eui64 == eui64, DeviceFlag.status == "flagged")
            .values(status="re-enrolled", cleared_at=at, replacement_serial=replacement_serial)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(moved, "rowcount", 0))

    def of_recovery(self, recovery_id: int) -> Sequence[DeviceFlag]:
        return self.session.scalars(
            select(DeviceFlag).where(DeviceFlag.recovery_id == recovery_id).order_by(DeviceFlag.id)
        ).all()


class RecoveryCertificates:
    """The certificates the procedures act on."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def live_of_ca(self, ca_id: int, profiles: Sequence[str]) -> list[str]:
        """Serials of the CA's certificates that are issued and not revoked, of the given profiles."""
        return list(
            self.session.scalars(
                select(IssuedCertificate.serial)
                .where(
                    IssuedCertificate.ca_id == ca_id,
                    IssuedCertificate.status == "issued",
                    IssuedCertificate.revoked_at.is_(None),
                    IssuedCertificate.profile.in_(list(profiles)),
                )
                .order_by(IssuedCertificate.id)
            )
        )

    def live_of_organisation(self, organisation_id: int) -> Sequence[IssuedCertificate]:
        return self.session.scalars(
            select(IssuedCertificate)
            .where(
                IssuedCertificate.organisation_id == organisation_id,
                IssuedCertificate.status == "issued",
                IssuedCertificate.revoked_at.is_(None),
            )
            .order_by(IssuedCertificate.id)
        ).all()

    def live_of_devices(self, eui64s: Sequence[str], profile: str) -> Sequence[IssuedCertificate]:
        return self.session.scalars(
            select(IssuedCertificate)
            .where(
                IssuedCertificate.eui64.in_(list(eui64s)),
                IssuedCertificate.profile == profile,
                IssuedCertificate.status == "issued",
                IssuedCertificate.revoked_at.is_(None),
            )
            .order_by(IssuedCertificate.id)
        ).all()

    def mark_not_in_use(self, ids: Sequence[int], at: dt.datetime) -> None:
        if ids:
            self.session.execute(
                update(IssuedCertificate)
                .where(IssuedCertificate.id.in_(list(ids)))
                .values(not_in_use_at=at)
                .execution_options(synchronize_session=False)
            )

    def not_in_use_of_device(self, eui64: str) -> Sequence[IssuedCertificate]:
        return self.session.scalars(
            select(IssuedCertificate).where(
                IssuedCertificate.eui64 == eui64,
                IssuedCertificate.not_in_use_at.is_not(None),
                IssuedCertificate.status == "issued",
            )
        ).all()

    def count_by_status(self, ca_id: int, profiles: Sequence[str]) -> dict[str, int]:
        rows = self.session.execute(
            select(IssuedCertificate.status, func.count())
            .where(IssuedCertificate.ca_id == ca_id, IssuedCertificate.profile.in_(list(profiles)))
            .group_by(IssuedCertificate.status)
        ).all()
        return {str(status): int(count) for status, count in rows}
