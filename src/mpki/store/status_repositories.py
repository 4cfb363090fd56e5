"""SQL for certificate status: revocations, CRL numbers and CRLs, OCSP responders and pre-signed responses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mpki.domain import MpkiError, NotFound
from mpki.store.schema import (
    CaRevocation,
    CertificateAuthority,
    Crl,
    IssuedCertificate,
    OcspResponder,
    OcspResponse,
)

STREAM_CHUNK = 20_000
RESERVE_ATTEMPTS = 5
HOLD = 6  # CRLReason certificateHold: the one revocation a later one may replace


@dataclass(frozen=True, slots=True)
class CertificateState:
    """What OCSP and CRLs need to know about one serial of one CA."""

    serial: str
    status: str
    revoked_at: dt.datetime | None
    reason: int | None
    is_ca: bool


class RevocationRepository:
    """Revocation state of end-entity certificates (table certificates) and CA certificates (table cas)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def revoke(self, ids: Sequence[int], *, at: dt.datetime, reason: int, by: str) -> int:
        """Revoke the certificates that are not revoked yet (or only on hold); returns how many changed, so
        that a caller racing another revocation sees the difference and rolls back."""
        changed = 0
        for start in range(0, len(ids), 500):
            result = self.session.execute(
                update(IssuedCertificate)
                .where(
                    IssuedCertificate.id.in_(list(ids[start : start + 500])),
                    or_(IssuedCertificate.revoked_at.is_(None), IssuedCertificate.revocation_reason == HOLD),
                )
                .values(status="revoked", revoked_at=at, revocation_reason=reason, revoked_by=by, hold_released_at=None)
                .execution_options(synchronize_session=False)
            )
            changed += result.rowcount  # type: ignore[attr-defined]
        return changed

    def release_hold(self, certificate_id: int, *, at: dt.datetime) -> None:
        self.session.execute(
            update(IssuedCertificate)
            .where(IssuedCertificate.id == certificate_id)
            .values(status="issued", revoked_at=None, revocation_reason=None, hold_released_at=at)
            .execution_options(synchronize_session=False)
        )

    def revoke_ca(self, ca_id: int, *, at: dt.datetime, reason: int) -> bool:
        """Revoke an active CA; False if it was not active any more (a concurrent approval won)."""
        result = self.session.execute(
            update(CertificateAuthority)
            .where(CertificateAuthority.id == ca_id, CertificateAuthority.status == "active")
            .values(status="revoked", revoked_at=at, revocation_reason=reason)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def certificates(self, ca_id: int | None, serials: Sequence[str]) -> list[IssuedCertificate]:
        found: list[IssuedCertificate] = []
        for start in range(0, len(serials), 500):
            query = select(IssuedCertificate).where(IssuedCertificate.serial.in_(list(serials[start : start + 500])))
            if ca_id is not None:
                query = query.where(IssuedCertificate.ca_id == ca_id)
            found.extend(self.session.scalars(query))
        return found

    def crl_entries(self, ca_id: int, *, since: dt.datetime | None = None) -> Iterator[tuple[str, dt.datetime, int]]:
        """(serial, revocation time, reason) of every revoked certificate the CA issued, CA certificates
        included, streamed so that a million entries never sit in memory as rows. `since` keeps only
        revocations at or after that moment (for a delta CRL).

        The rows are plain columns, so they are read through the session's connection (Core) rather than
        the ORM's loader: the same SQL, transaction and column types, at about half the cost a row."""
        query = select(IssuedCertificate.serial, IssuedCertificate.revoked_at, IssuedCertificate.revocation_reason)
        query = query.where(IssuedCertificate.ca_id == ca_id, IssuedCertificate.revoked_at.is_not(None))
        if since is not None:
            query = query.where(IssuedCertificate.revoked_at >= since)
        self.session.flush()  # what session.execute's autoflush would have done
        rows = self.session.connection().execute(query.execution_options(yield_per=STREAM_CHUNK))
        for serial, revoked_at, reason in rows:
            if revoked_at is not None:
                yield serial, revoked_at, reason if reason is not None else 0
        ca = CertificateAuthority
        cas = select(ca.serial, ca.revoked_at, ca.revocation_reason)
        cas = cas.where(ca.parent_id == ca_id, ca.revoked_at.is_not(None))
        if since is not None:
            cas = cas.where(ca.revoked_at >= since)
        for serial, revoked_at, reason in self.session.execute(cas):
            if revoked_at is not None:
                yield serial, revoked_at, reason if reason is not None else 0

    def last_change(self, ca_id: int) -> dt.datetime | None:
        """The latest revocation or hold release among what this CA issued (index seeks, not scans)."""
        moments = [
            self.session.scalar(select(func.max(IssuedCertificate.revoked_at)).where(IssuedCertificate.ca_id == ca_id)),
            self.session.scalar(
                select(func.max(IssuedCertificate.hold_released_at)).where(IssuedCertificate.ca_id == ca_id)
            ),
            self.session.scalar(
                select(func.max(CertificateAuthority.revoked_at)).where(CertificateAuthority.parent_id == ca_id)
            ),
        ]
        found = [moment for moment in moments if moment is not None]
        return max(found) if found else None

    def states(self, ca_id: int, serials: Sequence[str]) -> list[CertificateState]:
        """The state of each of these serials the CA issued (end-entity certificates, then CAs); unknown
        serials are left out."""
        found: list[CertificateState] = []
        for start in range(0, len(serials), 500):
            chunk = list(serials[start : start + 500])
            rows = self.session.execute(
                select(
                    IssuedCertificate.serial,
                    IssuedCertificate.status,
                    IssuedCertificate.revoked_at,
                    IssuedCertificate.revocation_reason,
                ).where(IssuedCertificate.ca_id == ca_id, IssuedCertificate.serial.in_(chunk))
            )
            found += [CertificateState(s, st, at, r, is_ca=False) for s, st, at, r in rows]
            children = self.session.execute(
                select(
                    CertificateAuthority.serial,
                    CertificateAuthority.status,
                    CertificateAuthority.revoked_at,
                    CertificateAuthority.revocation_reason,
                ).where(
                    CertificateAuthority.parent_id == ca_id,
                    CertificateAuthority.serial.in_(chunk),
                    CertificateAuthority.status != "pending",
                )
            )
            found += [CertificateState(s, st, at, r, is_ca=True) for s, st, at, r in children]
        return found

    def released_since(self, ca_id: int, since: dt.datetime) -> list[tuple[str, dt.datetime]]:
        """Holds released at or after `since`: a delta CRL lists them with removeFromCRL."""
        rows = self.session.execute(
            select(IssuedCertificate.serial, IssuedCertificate.hold_released_at).where(
                IssuedCertificate.ca_id == ca_id, IssuedCertificate.hold_released_at >= since
            )
        )
        return [(serial, at) for serial, at in rows if at is not None]

    def state(self, ca_id: int, serial: str) -> CertificateState | None:
        """The serial's state under this CA: an end-entity certificate, a subordinate CA, or None (unknown)."""
        found = self.states(ca_id, [serial])
        return found[0] if found else None

    def revoked_since(self, ca_ids: Sequence[int], since: dt.datetime) -> list[tuple[int, str]]:
        """(CA id, serial) of certificates of these CAs whose status changed at or after `since` (index
        seeks per CA), and of subordinate CAs revoked since then: caches drop them."""
        found: list[tuple[int, str]] = []
        for ca_id in ca_ids:
            for column in (IssuedCertificate.revoked_at, IssuedCertificate.hold_released_at):
                rows = self.session.scalars(
                    select(IssuedCertificate.serial).where(IssuedCertificate.ca_id == ca_id, column >= since)
                )
                found += [(ca_id, serial) for serial in rows]
        children = self.session.execute(
            select(CertificateAuthority.parent_id, CertificateAuthority.serial).where(
                CertificateAuthority.revoked_at >= since
            )
        ).all()
        return found + [(int(parent), serial) for parent, serial in children if parent is not None]


class CrlRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def reserve(
        self,
        ca_id: int,
        *,
        kind: str,
        base_number: int | None,
        this_update: dt.datetime,
        next_update: dt.datetime,
    ) -> Crl:
        """Take the CA's next cRLNumber (full and delta CRLs share one sequence, RFC 5280 5.2.3). Two nodes
        may read the same highest number: the unique constraint refuses one, which tries the next."""
        for _ in range(RESERVE_ATTEMPTS):
            highest = self.session.scalar(select(func.max(Crl.number)).where(Crl.ca_id == ca_id))
            row = Crl(
                ca_id=ca_id,
                number=(highest or 0) + 1,
                kind=kind,
                base_number=base_number,
                status="building",
                this_update=this_update,
                next_update=next_update,
                entries=0,
                der=None,
                created_at=this_update,
            )
            try:
                with self.session.begin_nested():
                    self.session.add(row)
            except IntegrityError:
                continue
            return row
        raise MpkiError(f"could not reserve a cRLNumber for CA {ca_id} after {RESERVE_ATTEMPTS} attempts")

    def publish(self, crl_id: int, der: bytes, entries: int) -> None:
        self.session.execute(
            update(Crl)
            .where(Crl.id == crl_id)
            .values(status="published", der=der, entries=entries)
            .execution_options(synchronize_session=False)
        )

    def latest(self, ca_id: int, kind: str = "full") -> Crl | None:
        return self.session.scalar(
            select(Crl)
            .where(Crl.ca_id == ca_id, Crl.kind == kind, Crl.status == "published")
            .order_by(Crl.number.desc())
            .limit(1)
        )

    def latest_number(self, ca_id: int, kind: str) -> int | None:
        """The newest published number of this kind (an index seek; the DER is not read)."""
        return self.session.scalar(
            select(func.max(Crl.number)).where(Crl.ca_id == ca_id, Crl.kind == kind, Crl.status == "published")
        )

    def latest_numbers(self) -> dict[tuple[int, str], tuple[int, dt.datetime, dt.datetime]]:
        """(CA id, kind) -> (number, thisUpdate, nextUpdate) of the newest published CRL of each."""
        newest = (
            select(Crl.ca_id, Crl.kind, func.max(Crl.number).label("number"))
            .where(Crl.status == "published")
            .group_by(Crl.ca_id, Crl.kind)
            .subquery()
        )
        rows = self.session.execute(
            select(Crl.ca_id, Crl.kind, Crl.number, Crl.this_update, Crl.next_update).join(
                newest, (Crl.ca_id == newest.c.ca_id) & (Crl.number == newest.c.number)
            )
        )
        return {(int(ca), kind): (int(n), this, nxt) for ca, kind, n, this, nxt in rows}

    def history(self, ca_id: int, limit: int = 20) -> Sequence[Crl]:
        return self.session.scalars(
            select(Crl).where(Crl.ca_id == ca_id, Crl.status == "published").order_by(Crl.number.desc()).limit(limit)
        ).all()


def _needs_signing(revoked_at: Any, signed_before: dt.datetime, responder_id: int) -> ColumnElement[bool]:
    """A stored response (outer-joined) is missing, old, from another responder, or says the wrong status."""
    return or_(
        OcspResponse.id.is_(None),
        OcspResponse.this_update < signed_before,
        OcspResponse.responder_id != responder_id,
        OcspResponse.status != case((revoked_at.is_(None), "good"), else_="revoked"),
    )


class OcspRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_responder(self, responder: OcspResponder) -> OcspResponder:
        self.session.add(responder)
        self.session.flush()
        return responder

    def current_responder(self, ca_id: int, now: dt.datetime) -> OcspResponder | None:
        """The newest responder certificate of the CA that is valid now."""
        return self.session.scalar(
            select(OcspResponder)
            .where(OcspResponder.ca_id == ca_id, OcspResponder.not_before <= now, OcspResponder.not_after > now)
            .order_by(OcspResponder.not_after.desc(), OcspResponder.id.desc())
            .limit(1)
        )

    def response(self, ca_id: int, serial: str) -> tuple[bytes, dt.datetime] | None:
        row = self.session.execute(
            select(OcspResponse.der, OcspResponse.next_update).where(
                OcspResponse.ca_id == ca_id, OcspResponse.serial == serial
            )
        ).first()
        return (bytes(row[0]), row[1]) if row is not None else None

    def store(self, ca_id: int, rows: list[dict[str, Any]]) -> int:
        """Replace the pre-signed responses of these serials, keeping only answers that still say what the
        certificate's state is now: its row is locked first (PostgreSQL; SQLite writers are serialised), so
        a revocation that committed after the answer was signed is never overwritten by a stale "good".
        Returns how many were stored."""
        if not rows:
            return 0
        serials = [row["serial"] for row in rows]
        current: dict[str, str] = {}
        for start in range(0, len(serials), 500):
            chunk = serials[start : start + 500]
            locked = self.session.execute(
                select(IssuedCertificate.serial, IssuedCertificate.revoked_at)
                .where(IssuedCertificate.ca_id == ca_id, IssuedCertificate.serial.in_(chunk))
                .with_for_update()
            )
            current.update({serial: "good" if at is None else "revoked" for serial, at in locked})
            children = self.session.execute(
                select(CertificateAuthority.serial, CertificateAuthority.revoked_at).where(
                    CertificateAuthority.parent_id == ca_id, CertificateAuthority.serial.in_(chunk)
                )
            )
            current.update({serial: "good" if at is None else "revoked" for serial, at in children})
        keep = [row for row in rows if current.get(row["serial"]) == row["status"]]
        kept = [row["serial"] for row in keep]
        for start in range(0, len(kept), 500):
            self.session.execute(
                delete(OcspResponse).where(
                    OcspResponse.ca_id == ca_id, OcspResponse.serial.in_(kept[start : start + 500])
                )
            )
        if keep:
            try:
                with self.session.begin_nested():
                    self.session.execute(insert(OcspResponse), keep)
            except IntegrityError:
                return 0  # another process stored the same serials a moment ago: theirs stand
        return len(keep)

    def stale_certificates(
        self, ca_id: int, *, signed_before: dt.datetime, responder_id: int, after_id: int, limit: int
    ) -> list[tuple[int, CertificateState]]:
        """End-entity certificates of the CA, by id after `after_id`, whose response is missing, signed
        before `signed_before`, or signed by another responder: the next ones to (re-)sign."""
        query = (
            select(
                IssuedCertificate.id,
                IssuedCertificate.serial,
                IssuedCertificate.status,
                IssuedCertificate.revoked_at,
                IssuedCertificate.revocation_reason,
            )
            .outerjoin(
                OcspResponse,
                (OcspResponse.ca_id == IssuedCertificate.ca_id) & (OcspResponse.serial == IssuedCertificate.serial),
            )
            .where(
                IssuedCertificate.ca_id == ca_id,
                IssuedCertificate.id > after_id,
                _needs_signing(IssuedCertificate.revoked_at, signed_before, responder_id),
            )
            .order_by(IssuedCertificate.id)
            .limit(limit)
        )
        return [
            (int(cid), CertificateState(s, st, at, r, is_ca=False)) for cid, s, st, at, r in self.session.execute(query)
        ]

    def stale_children(self, ca_id: int, *, signed_before: dt.datetime, responder_id: int) -> list[CertificateState]:
        """The same for the CA certificates this CA issued (a root's subordinate CAs)."""
        child = CertificateAuthority
        query = (
            select(child.serial, child.status, child.revoked_at, child.revocation_reason)
            .outerjoin(OcspResponse, (OcspResponse.ca_id == child.parent_id) & (OcspResponse.serial == child.serial))
            .where(
                child.parent_id == ca_id,
                child.status != "pending",
                _needs_signing(child.revoked_at, signed_before, responder_id),
            )
        )
        return [CertificateState(s, st, at, r, is_ca=True) for s, st, at, r in self.session.execute(query)]

    def forget(self, ca_id: int, serials: Sequence[str]) -> None:
        """Drop pre-signed responses whose certificate's status just changed (in the same transaction)."""
        for start in range(0, len(serials), 500):
            self.session.execute(
                delete(OcspResponse).where(
                    OcspResponse.ca_id == ca_id, OcspResponse.serial.in_(list(serials[start : start + 500]))
                )
            )

    def fresh_responses(
        self, *, valid_after: dt.datetime, after_id: int, limit: int
    ) -> list[tuple[int, int, str, bytes, dt.datetime]]:
        """(id, CA id, serial, DER, nextUpdate) of stored responses valid past `valid_after`, by id."""
        rows = self.session.execute(
            select(OcspResponse.id, OcspResponse.ca_id, OcspResponse.serial, OcspResponse.der, OcspResponse.next_update)
            .where(OcspResponse.id > after_id, OcspResponse.next_update > valid_after)
            .order_by(OcspResponse.id)
            .limit(limit)
        )
        return [(int(i), int(ca), serial, bytes(der), nxt) for i, ca, serial, der, nxt in rows]


class CaRevocationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, proposal: CaRevocation) -> CaRevocation:
        self.session.add(proposal)
        self.session.flush()
        return proposal

    def by_id(self, proposal_id: int) -> CaRevocation:
        found = self.session.get(CaRevocation, proposal_id)
        if found is None:
            raise NotFound(f"no CA revocation proposal {proposal_id}")
        return found

    def settle(self, proposal_id: int, status: str, *, by: str | None = None, at: dt.datetime | None = None) -> bool:
        """Move a pending proposal to done or withdrawn; False if it was not pending any more (two
        approvers at once: one wins, the other's transaction rolls back)."""
        values: dict[str, Any] = {"status": status}
        if status == "done":
            values |= {"approved_by": by, "approved_at": at}
        result = self.session.execute(
            update(CaRevocation)
            .where(CaRevocation.id == proposal_id, CaRevocation.status == "pending")
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def pending(self, ca_id: int | None = None) -> Sequence[CaRevocation]:
        query = select(CaRevocation).where(CaRevocation.status == "pending")
        if ca_id is not None:
            query = query.where(CaRevocation.ca_id == ca_id)
        return self.session.scalars(query.order_by(CaRevocation.id)).all()
