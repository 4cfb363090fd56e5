"""Revocation: end-entity certificates by their subscriber, an RA agent or a recovery procedure; CA
certificates under dual control. Each change is audited with its time and actor, then the CRLs and
OCSP responses that speak for the certificate are re-signed at once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from mpki.audit import AuditRecord, append
from mpki.domain import (
    CA_REASONS,
    END_ENTITY_REASONS,
    InvalidRequest,
    MpkiError,
    NotFound,
    RevocationReason,
    format_serial,
    parse_serial,
    utcnow,
)
from mpki.profiles import ProfileKind, get_profile
from mpki.status.crl import CrlPublisher
from mpki.status.ocsp import OcspService
from mpki.store import (
    CaRepository,
    CaRevocation,
    CaRevocationRepository,
    Database,
    IssuedCertificate,
    OcspRepository,
    RevocationRepository,
)

log = logging.getLogger("mpki.status.revocation")

R = RevocationReason


@dataclass(frozen=True)
class RevocationOutcome:
    """What was revoked, when, and whether status was re-published straight away."""

    serials: tuple[str, ...]
    reason: RevocationReason
    revoked_at: dt.datetime
    published: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, object]:
        return {
            "serials": list(self.serials),
            "reason": self.reason.rfc_name,
            "revoked_at": self.revoked_at.isoformat(),
            "crls_published": list(self.published),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class CaRevocationView:
    id: int
    ca: str
    reason: RevocationReason
    status: str
    requested_by: str
    requested_at: dt.datetime
    approved_by: str | None
    approved_at: dt.datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "ca": self.ca,
            "reason": self.reason.rfc_name,
            "status": self.status,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at.isoformat(),
            "approved_by": self.approved_by,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
        }


def _proposal_view(row: CaRevocation, ca_name: str) -> CaRevocationView:
    return CaRevocationView(
        row.id,
        ca_name,
        RevocationReason(row.reason),
        row.status,
        row.requested_by,
        row.requested_at,
        row.approved_by,
        row.approved_at,
    )


class Revocations:
    """Changes revocation state; authorisation is the caller's (`ra` for people, `recovery` for procedures)."""

    def __init__(self, database: Database, crls: CrlPublisher, ocsp: OcspService) -> None:
        self.database = database
        self.crls = crls
        self.ocsp = ocsp

    # ----- end-entity certificates ------------------------------------------------------------

    def check_reason(self, certificate: IssuedCertificate, reason: RevocationReason) -> None:
        """Refuse a reason the certificate's profile does not allow, before anything is written."""
        if reason not in END_ENTITY_REASONS:
            allowed = ", ".join(sorted(r.rfc_name for r in END_ENTITY_REASONS))
            raise InvalidRequest(f"{reason.rfc_name} is not a reason for an end-entity certificate; use {allowed}")
        if reason is R.CERTIFICATE_HOLD and not get_profile(certificate.profile).allows_hold:
            raise InvalidRequest(f"profile {certificate.profile} does not allow certificateHold; revoke or leave it")
        if certificate.revoked_at is not None and certificate.revocation_reason != R.CERTIFICATE_HOLD:
            raise InvalidRequest(f"certificate {certificate.serial} is already revoked")
        if certificate.revoked_at is not None and reason is R.CERTIFICATE_HOLD:
            raise InvalidRequest(f"certificate {certificate.serial} is already on hold")

    def find(self, serial: str, ca_name: str | None = None) -> IssuedCertificate:
        text = format_serial(parse_serial(serial))
        with self.database.reader() as session:
            ca_id = CaRepository(session).by_name(ca_name).id if ca_name else None
            found = RevocationRepository(session).certificates(ca_id, [text])
        if not found:
            raise NotFound(f"no certificate with serial {text}")
        if len(found) > 1:
            raise InvalidRequest(f"serial {text} is ambiguous across CAs; name the CA")
        return found[0]

    def revoke(
        self,
        serials: Sequence[str],
        reason: RevocationReason,
        *,
        actor: str,
        ca_name: str | None = None,
        context: dict[str, object] | None = None,
    ) -> RevocationOutcome:
        """Revoke certificates (all or none): one transaction with their audit events, then re-publish."""
        if not serials:
            raise InvalidRequest("name at least one certificate to revoke")
        texts = [format_serial(parse_serial(s)) for s in serials]
        if len(set(texts)) != len(texts):
            raise InvalidRequest("a serial is named twice")
        now = utcnow().replace(microsecond=0)
        with self.database.transaction() as session:
            cas = CaRepository(session)
            ca_id = cas.by_name(ca_name).id if ca_name else None
            revocations = RevocationRepository(session)
            rows = revocations.certificates(ca_id, texts)
            missing = sorted(set(texts) - {row.serial for row in rows})
            if missing:
                raise NotFound(f"no certificate with serial {', '.join(missing[:5])}")
            if len(rows) != len(texts):
                raise InvalidRequest("a serial is ambiguous across CAs; name the CA")
            for row in rows:
                self.check_reason(row, reason)
            if revocations.revoke([row.id for row in rows], at=now, reason=reason.value, by=actor) != len(rows):
                # Another revocation committed between the checks and this update: nothing is written.
                raise InvalidRequest("a certificate named here was revoked a moment ago by someone else; look again")
            names = {ca_id: cas.by_id(ca_id).name for ca_id in {row.ca_id for row in rows}}
            by_ca: dict[int, list[str]] = {}
            for row in rows:
                by_ca.setdefault(row.ca_id, []).append(row.serial)
            for owner, owned in by_ca.items():
                OcspRepository(session).forget(owner, owned)
            append(
                session,
                [
                    AuditRecord(
                        action="certificate.revoked",
                        actor=actor,
                        ca=names[row.ca_id],
                        serial=row.serial,
                        request_id=row.request_id,
                        details={
                            "reason": reason.rfc_name,
                            "revoked_at": now.isoformat(),
                            "previous_status": row.status,
                            **(context or {}),
                        },
                    )
                    for row in rows
                ],
                at=now,
            )
        published, warnings = self._republish(by_ca, names, actor)
        return RevocationOutcome(tuple(texts), reason, now, published, warnings)

    def release_hold(self, serial: str, *, actor: str, ca_name: str | None = None) -> RevocationOutcome:
        """Take a certificate off hold: it leaves the CRL, and the next delta says removeFromCRL."""
        certificate = self.find(serial, ca_name)
        now = utcnow().replace(microsecond=0)
        with self.database.transaction() as session:
            [row] = RevocationRepository(session).certificates(certificate.ca_id, [certificate.serial])
            if row.revoked_at is None or row.revocation_reason != R.CERTIFICATE_HOLD:
                raise InvalidRequest(f"certificate {row.serial} is not on hold")
            RevocationRepository(session).release_hold(row.id, at=now)
            OcspRepository(session).forget(row.ca_id, [row.serial])
            ca = CaRepository(session).by_id(row.ca_id).name
            append(
                session,
                [
                    AuditRecord(
                        action="certificate.hold_released",
                        actor=actor,
                        ca=ca,
                        serial=row.serial,
                        request_id=row.request_id,
                        details={"released_at": now.isoformat()},
                    )
                ],
                at=now,
            )
        published, warnings = self._republish({certificate.ca_id: [certificate.serial]}, {certificate.ca_id: ca}, actor)
        return RevocationOutcome((certificate.serial,), R.REMOVE_FROM_CRL, now, published, warnings)

    def _republish(
        self, by_ca: dict[int, list[str]], names: dict[int, str], actor: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Immediate regeneration; a failure (an inactive keystore) leaves the change standing and is
        reported: the maintenance loop publishes as soon as it can sign."""
        published: list[str] = []
        warnings: list[str] = []
        for ca_id, serials in by_ca.items():
            try:
                for crl in self.crls.publish_for({names[ca_id]}, actor=actor):
                    published.append(f"{crl.ca}#{crl.number}({crl.kind})")
            except MpkiError as error:
                warnings.append(f"CRL for {names[ca_id]} not re-published yet: {error}")
                log.warning(warnings[-1])
            except Exception:  # the revocation is committed; the caller must hear so, not a 500
                warnings.append(f"CRL for {names[ca_id]} not re-published yet: an internal error (logged)")
                log.exception(warnings[-1])
            self.ocsp.refresh(ca_id, serials)
        return tuple(published), tuple(warnings)

    # ----- CA certificates (dual control) -------------------------------------------------------

    def propose_ca_revocation(self, ca_name: str, reason: RevocationReason, *, actor: str) -> CaRevocationView:
        """First half of dual control: recorded, audited, nothing revoked yet."""
        if reason not in CA_REASONS:
            allowed = ", ".join(sorted(r.rfc_name for r in CA_REASONS))
            raise InvalidRequest(f"{reason.rfc_name} is not a reason for a CA certificate; use {allowed}")
        now = utcnow().replace(microsecond=0)
        with self.database.transaction() as session:
            ca = CaRepository(session).by_name(ca_name)
            if get_profile(ca.profile).kind is ProfileKind.ROOT or ca.parent_id is None:
                raise InvalidRequest(
                    f"{ca_name} is a root: nobody above it can list it on an ARL; replace it through root recovery"
                )
            if ca.status == "revoked":
                raise InvalidRequest(f"CA {ca_name} is already revoked")
            proposals = CaRevocationRepository(session)
            if proposals.pending(ca.id):
                raise InvalidRequest(f"a revocation of {ca_name} is already waiting for approval")
            row = proposals.add(
                CaRevocation(ca_id=ca.id, reason=reason.value, status="pending", requested_by=actor, requested_at=now)
            )
            append(
                session,
                [
                    AuditRecord(
                        action="ca.revocation_proposed",
                        actor=actor,
                        ca=ca.name,
                        serial=ca.serial,
                        details={"proposal": row.id, "reason": reason.rfc_name},
                    )
                ],
                at=now,
            )
            return _proposal_view(row, ca.name)

    def approve_ca_revocation(self, proposal_id: int, *, actor: str) -> RevocationOutcome:
        """Second half: a different person approves, the CA is revoked and its parent's ARL re-published."""
        now = utcnow().replace(microsecond=0)
        with self.database.transaction() as session:
            proposals = CaRevocationRepository(session)
            row = proposals.by_id(proposal_id)
            cas = CaRepository(session)
            ca = cas.by_id(row.ca_id)
            if row.status != "pending":
                raise InvalidRequest(f"CA revocation {proposal_id} is {row.status}, not pending")
            if row.requested_by == actor:
                raise InvalidRequest("dual control: the approver must be someone other than the proposer")
            assert ca.parent_id is not None
            parent = cas.by_id(ca.parent_id)
            settled = proposals.settle(proposal_id, "done", by=actor, at=now)
            if not settled or not RevocationRepository(session).revoke_ca(ca.id, at=now, reason=row.reason):
                raise InvalidRequest(f"CA revocation {proposal_id} was settled a moment ago by someone else")
            OcspRepository(session).forget(parent.id, [ca.serial])
            reason = RevocationReason(row.reason)
            append(
                session,
                [
                    AuditRecord(
                        action="ca.revoked",
                        actor=actor,
                        ca=ca.name,
                        serial=ca.serial,
                        details={
                            "proposal": proposal_id,
                            "proposed_by": row.requested_by,
                            "reason": reason.rfc_name,
                            "revoked_at": now.isoformat(),
                            "arl_of": parent.name,
                        },
                    )
                ],
                at=now,
            )
            parent_id, parent_name, serial = parent.id, parent.name, ca.serial
        published, warnings = self._republish({parent_id: [serial]}, {parent_id: parent_name}, actor)
        self.ocsp.reload_issuers()
        return RevocationOutcome((serial,), reason, now, published, warnings)

    def withdraw_ca_revocation(self, proposal_id: int, *, actor: str) -> CaRevocationView:
        with self.database.transaction() as session:
            proposals = CaRevocationRepository(session)
            row = proposals.by_id(proposal_id)
            if row.status != "pending" or not proposals.settle(proposal_id, "withdrawn"):
                raise InvalidRequest(f"CA revocation {proposal_id} is {row.status}, not pending")
            ca = CaRepository(session).by_id(row.ca_id)
            append(
                session,
                [AuditRecord(action="ca.revocation_withdrawn", actor=actor, ca=ca.name, details={"proposal": row.id})],
            )
            return dataclasses.replace(_proposal_view(row, ca.name), status="withdrawn")

    def pending_ca_revocations(self) -> list[CaRevocationView]:
        with self.database.reader() as session:
            cas = {ca.id: ca.name for ca in CaRepository(session).all()}
            return [_proposal_view(row, cas[row.ca_id]) for row in CaRevocationRepository(session).pending()]
