"""The CA: creates CA certificates, issues from approved orders, and accounts for every serial."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from mpki.audit import AuditRecord, append
from mpki.ca.model import CaView, IssuanceOrder, IssuanceResult, IssuedView
from mpki.ca.owner import owner_is_dead, this_owner
from mpki.ca.parameters import profile_parameters
from mpki.ca.serials import new_serials
from mpki.ca.signing import Issuer, draft_certificate, draft_key, sign_certificate, signature_hash, spki_sha256
from mpki.ca.views import ca_view, issued_view
from mpki.config import Settings
from mpki.domain import (
    CertificateStatus,
    InvalidRequest,
    KeyStoreError,
    MpkiError,
    NotFound,
    SerialStatus,
    parse_serial,
    utcnow,
)
from mpki.domain import format_serial as _format_serial
from mpki.keys import INACTIVE_MESSAGE, KeyAlgorithm
from mpki.keys.purposes import Purpose
from mpki.profiles import (
    CheckedRequest,
    Profile,
    ProfileKind,
    ca_subject,
    check_csr,
    check_public_key,
    check_reissue,
    get_profile,
    key_identifier,
    load_csr,
    validity,
)
from mpki.signer.signing_keys import SigningKeys
from mpki.store import (
    CaRepository,
    CertificateAuthority,
    CertificateRepository,
    Database,
    SerialRepository,
)

Progress = Callable[[int, int], None]


StoredHook = Callable[[Session, list[tuple[str, IssuedView]]], None]


@dataclass(frozen=True, slots=True)
class _Accepted:
    index: int
    order: IssuanceOrder
    request: CheckedRequest
    # The certificate this one replaces under a new CA (issuing-CA recovery): its row id and serial.
    replaces: tuple[int, str] | None = None


class CertificationAuthority:
    """The signer room's front door. Every state change is written with its audit events."""

    def __init__(self, settings: Settings, database: Database, keystore: SigningKeys) -> None:
        self.settings = settings
        self.parameters = profile_parameters(settings)
        self.database = database
        self.keystore = keystore

    # ----- CA certificates -------------------------------------------------------------------

    def create_ca(
        self,
        *,
        name: str,
        profile_name: str,
        common_name: str,
        actor: str,
        parent: str | None = None,
        algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
        issues: Sequence[str] = (),
        token: str | None = None,
        extra_extensions: Sequence[x509.ExtensionType] = (),
    ) -> CaView:
        """Generate a key in the keystore and certify it: self-signed for a root, by `parent` otherwise."""
        profile = get_profile(profile_name)
        if not profile.is_ca:
            raise InvalidRequest(f"profile {profile_name} is not a CA profile")
        if (profile.kind is ProfileKind.ROOT) != (parent is None):
            raise InvalidRequest("a root has no parent; an issuing CA needs one")
        for issued in issues:
            get_profile(issued)
        with self.database.reader() as session:
            if any(ca.name == name for ca in CaRepository(session).all()):
                raise InvalidRequest(f"a CA named {name!r} already exists")
        subject = ca_subject(profile, common_name)  # refuse a bad name before a key is made
        info = self.keystore.generate(name, algorithm, token)
        public_key = info.public_key()
        check_public_key(profile, public_key)
        request = CheckedRequest(profile=profile.name, public_key=public_key, subject=subject)
        [(serial, serial_text)] = new_serials(1)
        now = utcnow()
        owner = this_owner()
        with self.database.transaction() as session:
            cas = CaRepository(session)
            parent_row = cas.by_name(parent) if parent else None
            row = cas.add(
                CertificateAuthority(
                    name=name,
                    profile=profile.name,
                    subject=request.subject_text,
                    parent_id=parent_row.id if parent_row else None,
                    key_id=info.key_id,
                    key_backend=info.backend,
                    key_identifier=key_identifier(profile, public_key).hex(),
                    serial=serial_text,
                    not_before=now,
                    not_after=now,
                    certificate_der=b"",
                    fingerprint_sha256=f"pending:{info.key_id}",
                    issues_profiles=",".join(issues),
                    status="pending",
                    created_at=now,
                )
            )
            reserving_ca = parent_row.id if parent_row else row.id
            SerialRepository(session).reserve(reserving_ca, [serial_text], owner, now)
            append(
                session,
                [
                    AuditRecord(
                        action="key.generated",
                        actor=actor,
                        ca=name,
                        details={
                            "key_id": info.key_id,
                            "backend": info.backend,
                            "token": info.token,
                            "algorithm": algorithm.value,
                            "public_key_sha256": hashlib.sha256(info.public_key_der).hexdigest(),
                        },
                    )
                ],
            )
            row_id = row.id
        if parent_row is None:
            issuer = Issuer(request.subject, self.keystore.signing_key(info.key_id, Purpose.CERTIFICATE), None, None)
        else:
            issuer = self._issuer(parent_row)
        period = validity(profile, self.parameters, now, issuer.not_after)
        certificate = sign_certificate(profile, request, issuer, serial, period, self.parameters, extra_extensions)
        der = certificate.public_bytes(serialization.Encoding.DER)
        fingerprint = hashlib.sha256(der).hexdigest()
        with self.database.transaction() as session:
            cas = CaRepository(session)
            row = cas.by_id(row_id)
            row.certificate_der = der
            row.fingerprint_sha256 = fingerprint
            row.not_before = period.not_before
            row.not_after = period.not_after
            row.status = "active"
            SerialRepository(session).settle(reserving_ca, [serial_text], SerialStatus.USED, utcnow())
            append(
                session,
                [
                    AuditRecord(
                        action="ca.created",
                        actor=actor,
                        ca=name,
                        serial=serial_text,
                        details={
                            "profile": profile.name,
                            "subject": request.subject_text,
                            "parent": parent,
                            "key_id": info.key_id,
                            "key_backend": info.backend,
                            "algorithm": algorithm.value,
                            "fingerprint_sha256": fingerprint,
                            "issues": list(issues),
                            "extra_extensions": [e.oid.dotted_string for e in extra_extensions],
                        },
                    )
                ],
            )
            return ca_view(row, parent)

    def _issuer(self, ca: CertificateAuthority) -> Issuer:
        certificate = x509.load_der_x509_certificate(ca.certificate_der)
        return Issuer(
            name=certificate.subject,
            key=self.keystore.signing_key(ca.key_id, Purpose.CERTIFICATE),
            key_identifier=bytes.fromhex(ca.key_identifier),
            not_after=ca.not_after,
            ca_name=ca.name,
        )

    def recertify(self, name: str, *, parent: str, actor: str) -> CaView:
        """Certify an existing CA's key again under a new parent (root recovery).

        Same key, same subject, same key identifier: every certificate the CA issued chains to the new
        root without being reissued. The old certificate's serial and fingerprint go into the audit event.
        """
        with self.database.reader() as session:
            cas = CaRepository(session)
            row, parent_row = cas.by_name(name), cas.by_name(parent)
            if parent_row.status != "active":
                raise InvalidRequest(f"CA {parent} is {parent_row.status}; only an active CA certifies")
            if row.parent_id is None:
                raise InvalidRequest(f"{name} is a root; a root is replaced, not re-certified")
            if row.status != "active":
                raise InvalidRequest(f"CA {name} is {row.status}; only an active CA is re-certified")
            old_serial, old_fingerprint, row_id = row.serial, row.fingerprint_sha256, row.id
            old_parent = cas.by_id(row.parent_id).name
            profile = get_profile(row.profile)
            subject = x509.load_der_x509_certificate(row.certificate_der).subject
            key_id = row.key_id
        public_key = check_public_key(profile, self.keystore.info(key_id).public_key())
        request = CheckedRequest(profile=profile.name, public_key=public_key, subject=subject)
        issuer = self._issuer(parent_row)
        [(serial, serial_text)] = new_serials(1)
        now = utcnow()
        with self.database.transaction() as session:
            SerialRepository(session).reserve(parent_row.id, [serial_text], this_owner(), now)
        period = validity(profile, self.parameters, now, issuer.not_after)
        der = sign_certificate(profile, request, issuer, serial, period, self.parameters).public_bytes(
            serialization.Encoding.DER
        )
        fingerprint = hashlib.sha256(der).hexdigest()
        with self.database.transaction() as session:
            row = CaRepository(session).by_id(row_id)
            row.certificate_der, row.fingerprint_sha256, row.serial = der, fingerprint, serial_text
            row.not_before, row.not_after, row.parent_id = period.not_before, period.not_after, parent_row.id
            SerialRepository(session).settle(parent_row.id, [serial_text], SerialStatus.USED, utcnow())
            append(
                session,
                [
                    AuditRecord(
                        action="ca.recertified",
                        actor=actor,
                        ca=name,
                        serial=serial_text,
                        details={
                            "parent": parent,
                            "previous_parent": old_parent,
                            "previous_serial": old_serial,
                            "previous_fingerprint_sha256": old_fingerprint,
                            "fingerprint_sha256": fingerprint,
                        },
                    )
                ],
            )
            return ca_view(row, parent)

    def retire(self, name: str, *, status: str, actor: str, reason: str) -> CaView:
        """Take a CA out of service for good (a compromised root has nobody above it to revoke it)."""
        if status not in ("compromised", "retired"):
            raise InvalidRequest("a CA is retired as compromised or retired")
        with self.database.transaction() as session:
            cas = CaRepository(session)
            row = cas.by_name(name)
            if row.status != "active":
                raise InvalidRequest(f"CA {name} is {row.status}, not active")
            previous = row.issues_profiles
            row.status, row.issues_profiles = status, ""
            append(
                session,
                [
                    AuditRecord(
                        action=f"ca.{status}",
                        actor=actor,
                        ca=name,
                        serial=row.serial,
                        details={"reason": reason, "issued_profiles": [p for p in previous.split(",") if p]},
                    )
                ],
            )
            return ca_view(row, cas.by_id(row.parent_id).name if row.parent_id else None)

    def list_cas(self) -> list[CaView]:
        with self.database.reader() as session:
            rows = CaRepository(session).all()
            names = {row.id: row.name for row in rows}
            return [ca_view(row, names.get(row.parent_id or -1)) for row in rows if row.status != "pending"]

    def get_ca(self, name: str) -> CaView:
        for view in self.list_cas():
            if view.name == name:
                return view
        raise NotFound(f"no CA named {name!r}")

    def chain(self, name: str) -> list[CaView]:
        """The CA and its ancestors up to the root, leaf-most first."""
        by_name = {view.name: view for view in self.list_cas()}
        if name not in by_name:
            raise NotFound(f"no CA named {name!r}")
        chain = [by_name[name]]
        while chain[-1].parent:
            chain.append(by_name[chain[-1].parent])
        return chain

    # ----- issuance --------------------------------------------------------------------------

    def issue(self, order: IssuanceOrder) -> IssuedView:
        """Issue one certificate; a bad order raises InvalidRequest with the reason."""
        [result] = self.issue_many([order], actor=order.approved_by)
        if result.certificate is None:
            raise InvalidRequest(result.error or "the order was rejected")
        return result.certificate

    def issue_many(
        self, orders: Sequence[IssuanceOrder], *, actor: str, progress: Progress | None = None
    ) -> list[IssuanceResult]:
        """Check every order, then reserve, sign and store in chunks; one result per order, in order.

        Each chunk commits its serial reservations before signing and its certificates after, so a
        crash leaves only reservations that reconciliation marks abandoned; a bad order never costs
        its neighbours their certificates.
        """
        if not self.keystore.is_active():
            raise KeyStoreError(INACTIVE_MESSAGE)
        results: dict[int, IssuanceResult] = {}
        by_ca: dict[str, list[_Accepted]] = {}
        rejections: list[AuditRecord] = []
        with self.database.reader() as session:
            cas = CaRepository(session)
            issuing_names: dict[str, str] = {}
            for index, order in enumerate(orders):
                try:
                    profile = get_profile(order.profile)
                    if order.profile not in issuing_names:
                        issuing_names[order.profile] = cas.issuing_for(order.profile).name
                    checked = check_csr(profile, load_csr(order.csr), self.parameters, order.key_usage)
                except MpkiError as error:
                    results[index] = IssuanceResult(index, error=str(error))
                    rejections.append(
                        AuditRecord(
                            action="certificate.rejected",
                            actor=actor,
                            request_id=order.request_id,
                            details={"profile": order.profile, "reason": str(error), "item": index},
                        )
                    )
                    continue
                by_ca.setdefault(issuing_names[order.profile], []).append(_Accepted(index, order, checked))
        if rejections:
            with self.database.transaction() as session:
                append(session, rejections)
        return self._issue_accepted(by_ca, results, len(orders), actor, progress)

    def _issue_accepted(
        self,
        by_ca: dict[str, list[_Accepted]],
        results: dict[int, IssuanceResult],
        total: int,
        actor: str,
        progress: Progress | None,
        replacing: tuple[int, StoredHook | None] | None = None,
    ) -> list[IssuanceResult]:
        """Issue the accepted orders chunk by chunk per CA; `results` already holds the refused ones."""
        done = len(results)
        if progress:
            progress(done, total)
        chunk_size = self.settings.issuance_chunk_size
        for ca_name, accepted in by_ca.items():
            for start in range(0, len(accepted), chunk_size):
                chunk = accepted[start : start + chunk_size]
                views = self._issue_chunk(ca_name, chunk, actor, replacing)
                for item, view in zip(chunk, views, strict=True):
                    results[item.index] = IssuanceResult(item.index, certificate=view)
                done += len(chunk)
                if progress:
                    progress(done, total)
        return [results[i] for i in range(total)]

    def reissue(
        self,
        old_ca: str,
        serials: Sequence[str],
        *,
        actor: str,
        on_stored: StoredHook | None = None,
        progress: Progress | None = None,
    ) -> list[IssuanceResult]:
        """Issue each certificate again under the active CA that now issues its profile (issuing-CA
        recovery): same key and identity, re-checked against the profile, new serial and issuer. The old
        one is marked superseded in the transaction that stores its replacement, where `on_stored` may
        record more (the recovery's items); a certificate no longer live is refused, not reissued twice."""
        if not self.keystore.is_active():
            raise KeyStoreError(INACTIVE_MESSAGE)
        results: dict[int, IssuanceResult] = {}
        accepted: dict[str, list[_Accepted]] = {}
        with self.database.reader() as session:
            cas = CaRepository(session)
            source_id = cas.by_name(old_ca).id
            rows = {row.serial: row for row in CertificateRepository(session).by_serials(source_id, list(serials))}
            targets: dict[str, str] = {}
            named: set[str] = set()
            for index, serial in enumerate(serials):
                row = rows.get(serial)
                try:
                    if serial in named:
                        # Reissued twice in one chunk, the supersede count would refuse the whole chunk.
                        raise InvalidRequest(f"certificate {serial} is named twice")
                    named.add(serial)
                    if row is None:
                        raise NotFound(f"no certificate {serial} under {old_ca}")
                    if row.status != CertificateStatus.ISSUED.value or row.revoked_at is not None:
                        raise InvalidRequest(
                            f"certificate {serial} is {row.status}; only a live certificate is reissued"
                        )
                    if row.profile not in targets:
                        target = cas.issuing_for(row.profile).name
                        if target == old_ca:
                            raise InvalidRequest(f"{old_ca} still issues {row.profile}; stand the new CA up first")
                        targets[row.profile] = target
                    profile = get_profile(row.profile)
                    checked = check_reissue(profile, x509.load_der_x509_certificate(row.der), self.parameters)
                except MpkiError as error:
                    results[index] = IssuanceResult(index, error=str(error))
                    continue
                order = IssuanceOrder(
                    row.profile, b"", approved_by=actor, request_id=row.request_id, organisation_id=row.organisation_id
                )
                accepted.setdefault(targets[row.profile], []).append(_Accepted(index, order, checked, (row.id, serial)))
        return self._issue_accepted(accepted, results, len(serials), actor, progress, (source_id, on_stored))

    def _issue_chunk(
        self,
        ca_name: str,
        chunk: Sequence[_Accepted],
        actor: str,
        replacing: tuple[int, StoredHook | None] | None = None,
    ) -> list[IssuedView]:
        owner = this_owner()
        now = utcnow()
        serials = new_serials(len(chunk))
        serial_texts = [text for _, text in serials]
        with self.database.transaction() as session:
            ca = CaRepository(session).by_name(ca_name)
            SerialRepository(session).reserve(ca.id, serial_texts, owner, now)
            append(
                session,
                [
                    AuditRecord(
                        action="serials.reserved",
                        actor=actor,
                        ca=ca_name,
                        details={"count": len(serial_texts), "first": serial_texts[0], "owner": owner},
                    )
                ],
                at=now,
            )
        try:
            issuer = self._issuer(ca)
            rows, records = self._sign_chunk(ca, issuer, chunk, serials, actor, now)
            views = [_row_view(row, ca) for row in rows]
            with self.database.transaction() as session:
                certificates = CertificateRepository(session)
                certificates.add_many(rows)
                SerialRepository(session).settle(ca.id, serial_texts, SerialStatus.USED, utcnow())
                append(session, records)
                if replacing is not None:
                    self._supersede_replaced(session, replacing, chunk, views, actor)
        except BaseException:
            self._abandon(ca.id, ca.name, serial_texts, actor, "issuance failed before the certificates were stored")
            raise
        return views

    def _supersede_replaced(
        self,
        session: Session,
        replacing: tuple[int, StoredHook | None],
        chunk: Sequence[_Accepted],
        views: Sequence[IssuedView],
        actor: str,
    ) -> None:
        source_id, on_stored = replacing
        replaced = [item.replaces for item in chunk if item.replaces is not None]
        pairs = [(serial, view) for (_, serial), view in zip(replaced, views, strict=True)]
        moved = CertificateRepository(session).supersede_live([row_id for row_id, _ in replaced])
        if moved != len(pairs):
            # Someone revoked or replaced one of these meanwhile: store nothing of this chunk.
            raise InvalidRequest("a certificate being reissued changed meanwhile; run the reissue again")
        source = CaRepository(session).by_id(source_id).name
        append(
            session,
            [
                AuditRecord(
                    action="certificate.superseded",
                    actor=actor,
                    ca=source,
                    serial=old,
                    details={"superseded_by": view.serial, "superseded_by_ca": view.ca, "reason": "reissued"},
                )
                for old, view in pairs
            ],
        )
        if on_stored is not None:
            on_stored(session, pairs)

    def _sign_chunk(
        self,
        ca: CertificateAuthority,
        issuer: Issuer,
        chunk: Sequence[_Accepted],
        serials: Sequence[tuple[int, str]],
        actor: str,
        now: dt.datetime,
    ) -> tuple[list[dict[str, Any]], list[AuditRecord]]:
        rows: list[dict[str, Any]] = []
        records: list[AuditRecord] = []
        periods: dict[str, Any] = {}
        draft = draft_key(issuer.key)
        drafts = []
        for item, (serial, _) in zip(chunk, serials, strict=True):
            profile: Profile = get_profile(item.order.profile)
            period = periods.get(profile.name)
            if period is None:
                period = periods[profile.name] = validity(profile, self.parameters, now, issuer.not_after)
            drafts.append(draft_certificate(profile, item.request, issuer, draft, serial, period, self.parameters))
        # The whole chunk is signed in one request to the signer.
        signatures = self.keystore.sign_many(
            ca.key_id, Purpose.CERTIFICATE, signature_hash(issuer.key).name, [unsigned.tbs for unsigned in drafts]
        )
        for item, (_, serial_text), unsigned, signature in zip(chunk, serials, drafts, signatures, strict=True):
            profile = get_profile(item.order.profile)
            period = periods[profile.name]
            der = unsigned.signed(signature)
            fingerprint = hashlib.sha256(der).hexdigest()
            request = item.request
            rows.append(
                {
                    "ca_id": ca.id,
                    "serial": serial_text,
                    "subject": request.subject_text,
                    "eui64": request.eui64.hex if request.eui64 else None,
                    "role_code": request.role.code if request.role is not None else None,
                    "profile": profile.name,
                    "key_usage": request.key_usage.value if request.key_usage else None,
                    "status": CertificateStatus.ISSUED.value,
                    "not_before": period.not_before,
                    "not_after": period.not_after,
                    "der": der,
                    "fingerprint_sha256": fingerprint,
                    "public_key_sha256": spki_sha256(request),
                    "request_id": item.order.request_id,
                    "organisation_id": item.order.organisation_id,
                    "created_at": now,
                }
            )
            records.append(
                AuditRecord(
                    action="certificate.issued",
                    actor=actor,
                    ca=ca.name,
                    serial=serial_text,
                    request_id=item.order.request_id,
                    details={
                        "profile": profile.name,
                        "subject": request.subject_text,
                        "eui64": request.eui64.hex if request.eui64 else None,
                        "key_usage": request.key_usage.value if request.key_usage else None,
                        "approved_by": item.order.approved_by,
                        "fingerprint_sha256": fingerprint,
                    },
                )
            )
        return rows, records

    def _abandon(self, ca_id: int, ca_name: str, serials: Sequence[str], actor: str, reason: str) -> int:
        with self.database.transaction() as session:
            moved = SerialRepository(session).settle(ca_id, serials, SerialStatus.ABANDONED, utcnow())
            if moved:
                append(
                    session,
                    [
                        AuditRecord(
                            action="serials.abandoned",
                            actor=actor,
                            ca=ca_name,
                            details={"count": moved, "reason": reason, "serials": list(serials)},
                        )
                    ],
                )
            return moved

    def reconcile(self, *, actor: str = "system", now: dt.datetime | None = None) -> int:
        """Mark abandoned every reservation whose owner died or whose lease ran out without a certificate."""
        moment = now or utcnow()
        lease = dt.timedelta(seconds=self.settings.reservation_lease_seconds)
        stale: dict[int, list[str]] = {}
        with self.database.reader() as session:
            for reservation in SerialRepository(session).reserved():
                if owner_is_dead(reservation.owner) or moment - reservation.reserved_at > lease:
                    stale.setdefault(reservation.ca_id, []).append(reservation.serial)
        total = 0
        for ca_id, serials in stale.items():
            with self.database.reader() as session:
                # Read the name inside the session: the reader's closing rollback expires the row.
                ca_name = CaRepository(session).by_id(ca_id).name
                stored = CertificateRepository(session).serials_for(ca_id, serials)
            if stored:
                # Stored but never settled cannot happen (same transaction); mark them used to be exact.
                with self.database.transaction() as session:
                    SerialRepository(session).settle(ca_id, sorted(stored), SerialStatus.USED, moment)
            orphans = [s for s in serials if s not in stored]
            total += self._abandon(ca_id, ca_name, orphans, actor, "reservation left by a process that stopped")
        return total

    # ----- reading -----------------------------------------------------------------------------

    def find_certificate(self, serial: str, ca_name: str | None = None) -> IssuedView:
        text = _format_serial(parse_serial(serial))
        with self.database.reader() as session:
            ca_id = CaRepository(session).by_name(ca_name).id if ca_name else None
            row = CertificateRepository(session).by_serial(text, ca_id)
            return issued_view(row, CaRepository(session).by_id(row.ca_id))

    def certificate_record(self, serial: str) -> tuple[IssuedView, int | None, str]:
        """A certificate with the request it was issued for and its public key's SHA-256."""
        text = _format_serial(parse_serial(serial))
        with self.database.reader() as session:
            row = CertificateRepository(session).by_serial(text)
            return issued_view(row, CaRepository(session).by_id(row.ca_id)), row.request_id, row.public_key_sha256

    def supersede(self, serial: str, *, by_serial: str, actor: str) -> None:
        """Mark a certificate superseded by its renewal, re-key or update (it stays valid until revoked)."""
        with self.database.transaction() as session:
            certificates = CertificateRepository(session)
            row = certificates.by_serial(serial)
            if row.status != CertificateStatus.ISSUED.value:
                raise InvalidRequest(f"certificate {serial} is {row.status}, not issued")
            certificates.set_status([row.id], CertificateStatus.SUPERSEDED.value)
            append(
                session,
                [
                    AuditRecord(
                        action="certificate.superseded",
                        actor=actor,
                        ca=CaRepository(session).by_id(row.ca_id).name,
                        serial=serial,
                        details={"superseded_by": by_serial},
                    )
                ],
            )

    def certificates_for_requests(self, request_ids: Sequence[int]) -> dict[int, bytes]:
        """DER of the certificates issued for these requests, by request id."""
        with self.database.reader() as session:
            return CertificateRepository(session).der_for_requests(list(request_ids))

    def list_certificates(
        self, *, profile: str | None = None, status: str | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[IssuedView]:
        with self.database.reader() as session:
            cas = {ca.id: ca for ca in CaRepository(session).all()}
            rows = CertificateRepository(session).search(profile=profile, status=status, limit=limit, after_id=after_id)
            return [issued_view(row, cas[row.ca_id]) for row in rows]


def _row_view(row: dict[str, Any], ca: CertificateAuthority) -> IssuedView:
    return IssuedView(
        serial=row["serial"],
        ca=ca.name,
        issuer=ca.subject,
        subject=row["subject"],
        profile=row["profile"],
        status=row["status"],
        key_usage=row["key_usage"],
        eui64=row["eui64"],
        role_code=row["role_code"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        fingerprint_sha256=row["fingerprint_sha256"],
        der=row["der"],
    )
