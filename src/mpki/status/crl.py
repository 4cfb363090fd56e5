"""CRLs per issuing CA and ARLs per root: full and delta, on schedule and right after a revocation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509
from sqlalchemy.orm import Session

from mpki.audit import AuditRecord, append
from mpki.ca.crl import CrlScope, CrlSpec
from mpki.ca.status_signer import StatusSigner
from mpki.config import Settings
from mpki.domain import InvalidRequest, KeyStoreError, NotFound, RevocationReason, utcnow
from mpki.keys import INACTIVE_MESSAGE
from mpki.profiles import ProfileKind, delta_crl_url, get_profile, status_urls
from mpki.store import CaRepository, CertificateAuthority, Crl, CrlRepository, Database, RevocationRepository

FULL = "full"
DELTA = "delta"


@dataclass(frozen=True, slots=True)
class PublishedCrl:
    """A signed CRL as the repository serves it."""

    ca: str
    kind: str
    number: int
    base_number: int | None
    this_update: dt.datetime
    next_update: dt.datetime
    entries: int
    der: bytes

    @property
    def is_arl(self) -> bool:
        return self.kind == FULL and self.scope == CrlScope.CA

    @property
    def scope(self) -> str:
        idp = x509.load_der_x509_crl(self.der).extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        return CrlScope.CA if idp.value.only_contains_ca_certs else CrlScope.USER

    def as_json(self) -> dict[str, object]:
        return {
            "ca": self.ca,
            "kind": self.kind,
            "number": self.number,
            "base_number": self.base_number,
            "this_update": self.this_update.isoformat(),
            "next_update": self.next_update.isoformat(),
            "entries": self.entries,
        }


def crl_url(public_url: str, ca_name: str, kind: str = FULL) -> str:
    full, _, _ = status_urls(public_url, ca_name)
    return full if kind == FULL else delta_crl_url(public_url, ca_name)


def _view(ca_name: str, row: Crl) -> PublishedCrl:
    assert row.der is not None
    return PublishedCrl(
        ca_name, row.kind, row.number, row.base_number, row.this_update, row.next_update, row.entries, bytes(row.der)
    )


class CrlPublisher:
    """Builds, signs (through `ca`) and stores CRLs; cRLNumber is reserved before signing, so it only grows."""

    def __init__(self, settings: Settings, database: Database, signer: StatusSigner) -> None:
        self.settings = settings
        self.database = database
        self.signer = signer
        self._served: dict[tuple[str, str], PublishedCrl] = {}

    # ----- reading ------------------------------------------------------------------------------

    def latest(self, ca_name: str, kind: str = FULL) -> PublishedCrl:
        """The newest CRL of this kind. A large CRL is tens of megabytes: it is read from the database
        once per number and then served from memory (the number is looked up on every call)."""
        with self.database.reader() as session:
            ca = CaRepository(session).by_name(ca_name)
            crls = CrlRepository(session)
            number = crls.latest_number(ca.id, kind)
            cached = self._served.get((ca.name, kind))
            if number is not None and cached is not None and cached.number == number:
                return cached
            row = crls.latest(ca.id, kind)
            if row is None:
                raise NotFound(f"CA {ca_name!r} has no published {'delta CRL' if kind == DELTA else 'CRL'} yet")
            view = _view(ca.name, row)
        self._served[(ca.name, kind)] = view
        return view

    def history(self, ca_name: str, limit: int = 20) -> list[PublishedCrl]:
        with self.database.reader() as session:
            ca = CaRepository(session).by_name(ca_name)
            return [_view(ca.name, row) for row in CrlRepository(session).history(ca.id, limit)]

    def due(self, now: dt.datetime | None = None) -> list[tuple[str, str]]:
        """(CA, kind) pairs whose newest CRL is missing, older than its refresh period, near nextUpdate, or
        older than a revocation (one made while the keys were inactive is published at the next round)."""
        moment = now or utcnow()
        status = self.settings.status
        full_every = dt.timedelta(hours=status.crl_refresh_hours)
        delta_every = dt.timedelta(minutes=status.delta_refresh_minutes)
        with self.database.reader() as session:
            cas = [ca for ca in CaRepository(session).all() if ca.status != "pending"]
            newest = CrlRepository(session).latest_numbers()
            changes = RevocationRepository(session)
            last_change = {ca.id: changes.last_change(ca.id) for ca in cas if ca.status == "active"}
        found: list[tuple[str, str]] = []
        for ca in cas:
            if ca.status == "revoked" or ca.not_after <= moment:
                continue  # a revoked or expired CA publishes no more (its parent's ARL speaks for it)
            changed = last_change.get(ca.id)
            for kind, every in ((FULL, full_every), (DELTA, delta_every)):
                latest = newest.get((ca.id, kind))
                if (
                    latest is None
                    or moment - latest[1] >= every
                    or latest[2] - moment <= every / 2
                    or (changed is not None and changed >= latest[1])
                ):
                    found.append((ca.name, kind))
        return found

    # ----- publishing ---------------------------------------------------------------------------

    def publish(self, ca_name: str, kind: str = FULL, *, actor: str = "mpki-status") -> PublishedCrl:
        """Sign and store a new full CRL (or ARL) or delta CRL for the CA; a delta needs a full one first."""
        with self.database.reader() as session:
            ca = CaRepository(session).by_name(ca_name)
            base = CrlRepository(session).latest(ca.id, FULL) if kind == DELTA else None
        if ca.status == "revoked":
            raise InvalidRequest(f"CA {ca.name} is revoked: it signs nothing more; its parent's ARL speaks for it")
        if not self.signer.keystore.is_active():
            raise KeyStoreError(INACTIVE_MESSAGE)  # before a cRLNumber is reserved for nothing
        if kind == DELTA and base is None:
            self.publish(ca_name, FULL, actor=actor)
            return self.publish(ca_name, DELTA, actor=actor)
        status = self.settings.status
        this_update = utcnow().replace(microsecond=0)
        hours = status.crl_next_update_hours if kind == FULL else status.delta_next_update_hours
        next_update = min(this_update + dt.timedelta(hours=hours), ca.not_after)
        with self.database.transaction() as session:
            reserved = CrlRepository(session).reserve(
                ca.id,
                kind=kind,
                base_number=base.number if base else None,
                this_update=this_update,
                next_update=next_update,
            )
            crl_id, number = reserved.id, reserved.number
        spec = CrlSpec(
            issuer=x509.load_der_x509_certificate(ca.certificate_der),
            number=number,
            this_update=this_update,
            next_update=next_update,
            scope=self._scope(ca),
            distribution_point=crl_url(self.settings.public_url, ca.name) if self._points_here(ca) else None,
            delta_base=base.number if base else None,
            freshest=crl_url(self.settings.public_url, ca.name, DELTA) if kind == FULL else None,
        )
        with self.database.reader() as session:
            overlap = dt.timedelta(minutes=self.settings.status.delta_overlap_minutes)
            entries = self._entries(session, ca.id, base.this_update - overlap if base else None)
            der, count = self.signer.sign_crl(ca, spec, entries)
        with self.database.transaction() as session:
            CrlRepository(session).publish(crl_id, der, count)
            append(
                session,
                [
                    AuditRecord(
                        action="crl.published",
                        actor=actor,
                        ca=ca.name,
                        details={
                            "kind": "arl" if spec.scope == CrlScope.CA and kind == FULL else kind,
                            "number": number,
                            "base_number": spec.delta_base,
                            "entries": count,
                            "this_update": this_update.isoformat(),
                            "next_update": next_update.isoformat(),
                        },
                    )
                ],
            )
        return PublishedCrl(ca.name, kind, number, spec.delta_base, this_update, next_update, count, der)

    def publish_for(self, ca_names: set[str], *, actor: str) -> list[PublishedCrl]:
        """Immediate regeneration after a revocation: a full CRL and a delta for each CA touched."""
        published = []
        for name in sorted(ca_names):
            published.append(self.publish(name, FULL, actor=actor))
            published.append(self.publish(name, DELTA, actor=actor))
        return published

    @staticmethod
    def _scope(ca: CertificateAuthority) -> str:
        return CrlScope.CA if get_profile(ca.profile).kind is ProfileKind.ROOT else CrlScope.USER

    @staticmethod
    def _points_here(ca: CertificateAuthority) -> bool:
        """Whether the IDP names this CRL's URL: when the certificates it covers carry a CRL distribution
        point (RFC 5280 6.3.3 (b)(2)(i) then matches them); certificates without one, like SMKI's, match a
        CRL without it. A root's ARL never names it: the self-signed root has no distribution point, and
        a relying party checking the whole chain (`openssl verify -crl_check_all`) checks the root against
        its own ARL too; an IDP without a name covers the root and its subordinates alike."""
        if get_profile(ca.profile).kind is ProfileKind.ROOT:
            return False
        covered = ca.issues_profiles.split(",")
        return any(
            spec.name == "cRLDistributionPoints" for name in covered if name for spec in get_profile(name).extensions
        )

    @staticmethod
    def _entries(session: Session, ca_id: int, since: dt.datetime | None) -> Iterator[tuple[int, dt.datetime, int]]:
        revocations = RevocationRepository(session)
        for serial, revoked_at, reason in revocations.crl_entries(ca_id, since=since):
            yield int(serial, 16), revoked_at, reason
        if since is not None:
            for serial, released_at in revocations.released_since(ca_id, since):
                yield int(serial, 16), released_at, RevocationReason.REMOVE_FROM_CRL.value
